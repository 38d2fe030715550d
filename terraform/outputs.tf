output "cluster_name" {
  description = "Name of the GKE cluster."
  value       = google_container_cluster.this.name
}

output "cluster_location" {
  description = "Zone or region of the GKE cluster."
  value       = google_container_cluster.this.location
}

output "cluster_endpoint" {
  description = "IP address of the cluster's control plane."
  value       = google_container_cluster.this.endpoint
  sensitive   = true
}

output "get_credentials_command" {
  description = "Command that writes a kubeconfig entry for the cluster."
  value       = "gcloud container clusters get-credentials ${google_container_cluster.this.name} --location ${google_container_cluster.this.location} --project ${var.project_id}"
}

output "workload_identity_pool" {
  description = "Workload Identity pool of the cluster (PROJECT.svc.id.goog)."
  value       = local.workload_pool
}

output "bucket_name" {
  description = "Name of the runs bucket."
  value       = google_storage_bucket.runs.name
}

output "bucket_url" {
  description = "gs:// URL of the runs bucket: use it (with a path) as spec.output.uri and for data sets."
  value       = google_storage_bucket.runs.url
}

output "registry_url" {
  description = "Image prefix REGION-docker.pkg.dev/PROJECT/REPO; push gemmaft-operator and gemmaft-trainer-{gpu,tpu,cpu} under it."
  value       = local.registry_url
}

output "operator_image" {
  description = "Operator image the Helm release runs."
  value       = "${local.registry_url}/${local.operator_image}:${var.image_tag}"
}

output "trainer_images" {
  description = "Trainer images per accelerator, as given to the operator."
  value = {
    gpu = local.trainer_image_gpu
    tpu = local.trainer_image_tpu
    cpu = local.trainer_image_cpu
  }
}

output "trainer_service_account_email" {
  description = "Google service account of trainer pods (roles/storage.objectUser on the bucket)."
  value       = google_service_account.trainer.email
}

output "operator_service_account_email" {
  description = "Google service account of the operator (roles/storage.objectViewer on the bucket)."
  value       = google_service_account.operator.email
}

output "trainer_kubernetes_service_accounts" {
  description = "NAMESPACE/NAME of each Kubernetes service account bound to the trainer Google service account."
  value       = [for ns in var.trainer_namespaces : "${ns}/${var.trainer_ksa_name}"]
}

output "node_pools" {
  description = "Names of the node pools that were created."
  value = compact(concat(
    [module.system_pool.name],
    module.t4_pool[*].name,
    module.tpu_v3_single_host_pool[*].name,
    module.tpu_v3_slice_pool[*].name,
    module.l4_pool[*].name,
    module.h100_pool[*].name,
    module.tpu_v5e_single_host_pool[*].name,
    module.tpu_v5e_slice_pool[*].name,
  ))
}

output "tpu_v3_slice_hosts" {
  description = "Hosts (nodes) of the multi-host TPU v3 slice for tpu_v3_slice_topology: chips / 4."
  value       = local.tpu_v3_slice_hosts
}
