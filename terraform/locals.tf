locals {
  # Chips of each multi-host TPU v3 slice topology (ct3p-hightpu-4t). The same table lives in
  # operator/gemma_api/facts.py (TPU_V3_TOPOLOGIES); tests/terraform/test_cluster_and_node_pools.py keeps the two equal.
  tpu_v3_slice_chips = {
    "4x4"   = 16
    "4x8"   = 32
    "8x8"   = 64
    "8x16"  = 128
    "16x16" = 256
    "16x32" = 512
    "32x32" = 1024
  }
  tpu_v3_chips_per_host = 4
  tpu_v3_slice_hosts    = local.tpu_v3_slice_chips[var.tpu_v3_slice_topology] / local.tpu_v3_chips_per_host

  # GKE machine types of TPU v3 (single host, slice host; GKE docs "Plan TPUs in GKE") and the node image.
  tpu_v3_single_host_type = "ct3-hightpu-4t"
  tpu_v3_slice_type       = "ct3p-hightpu-4t"
  node_image_type         = "COS_CONTAINERD"

  # GPUs each G2 (L4) and A3 High (H100) machine type carries (Compute Engine "GPU machine types"); the same
  # tables are the machine_types of the nvidia-l4 / nvidia-h100-80gb records in api/accelerators.py.
  l4_machine_gpus = {
    "g2-standard-4"  = 1
    "g2-standard-8"  = 1
    "g2-standard-12" = 1
    "g2-standard-16" = 1
    "g2-standard-32" = 1
    "g2-standard-24" = 2
    "g2-standard-48" = 4
    "g2-standard-96" = 8
  }
  h100_machine_gpus = {
    "a3-highgpu-1g" = 1
    "a3-highgpu-2g" = 2
    "a3-highgpu-4g" = 4
    "a3-highgpu-8g" = 8
  }

  # TPU v5e (tpu-v5-lite-podslice): single-host machine type per topology, and multi-host slices of
  # ct5lp-hightpu-4t hosts with 4 chips each (Cloud TPU "TPU v5e"; the tpu-v5e record's topologies).
  tpu_v5e_single_host_types = {
    "1x1" = "ct5lp-hightpu-1t"
    "2x2" = "ct5lp-hightpu-4t"
    "2x4" = "ct5lp-hightpu-8t"
  }
  tpu_v5e_slice_chips = {
    "4x4"   = 16
    "4x8"   = 32
    "8x8"   = 64
    "8x16"  = 128
    "16x16" = 256
  }
  tpu_v5e_chips_per_host = 4
  tpu_v5e_slice_type     = "ct5lp-hightpu-4t"
  tpu_v5e_slice_hosts    = local.tpu_v5e_slice_chips[var.tpu_v5e_slice_topology] / local.tpu_v5e_chips_per_host

  workload_pool = "${var.project_id}.svc.id.goog"

  network_name    = var.network_name != "" ? var.network_name : "${var.cluster_name}-vpc"
  subnetwork_name = var.subnetwork_name != "" ? var.subnetwork_name : "${var.cluster_name}-nodes"
  network         = var.create_network ? google_compute_network.this[0].id : local.network_name
  subnetwork      = var.create_network ? google_compute_subnetwork.nodes[0].id : local.subnetwork_name

  bucket_name     = var.bucket_name != "" ? var.bucket_name : "${var.project_id}-gemmaft"
  bucket_location = upper(var.bucket_location != "" ? var.bucket_location : var.region)

  # REGION-docker.pkg.dev/PROJECT/REPO, the prefix of every image.
  registry_url      = "${var.region}-docker.pkg.dev/${var.project_id}/${var.registry_repository_id}"
  operator_image    = "gemmaft-operator"
  trainer_image_gpu = "${local.registry_url}/gemmaft-trainer-gpu:${var.image_tag}"
  trainer_image_tpu = "${local.registry_url}/gemmaft-trainer-tpu:${var.image_tag}"
  trainer_image_cpu = "${local.registry_url}/gemmaft-trainer-cpu:${var.image_tag}"

  labels = merge(var.labels, {
    "app"        = "gemma-finetune-operator"
    "managed-by" = "terraform"
  })

  node_oauth_scopes = ["https://www.googleapis.com/auth/cloud-platform"]

  # What every node pool (modules/node-pool) shares.
  node_pool_cluster = {
    project_id      = var.project_id
    region          = var.region
    name            = google_container_cluster.this.name
    location        = var.cluster_location
    image_type      = local.node_image_type
    service_account = google_service_account.nodes.email
    oauth_scopes    = local.node_oauth_scopes
    resource_labels = local.labels
  }

  # Values of the operator chart (keys as in charts/gemma-finetune-operator/values.yaml; checked against its
  # values.schema.json by tests/terraform/test_operator_release.py).
  operator_values = {
    image = {
      registry   = local.registry_url
      repository = local.operator_image
      tag        = var.image_tag
    }
    trainerImages = {
      gpu = local.trainer_image_gpu
      tpu = local.trainer_image_tpu
      cpu = local.trainer_image_cpu
    }
    allowedImagePrefixes = var.restrict_trainer_images ? ["${local.registry_url}/"] : []
    watchNamespaces      = var.trainer_namespaces
    serviceAccount = {
      create = true
      name   = var.operator_ksa_name
      annotations = {
        "iam.gke.io/gcp-service-account" = google_service_account.operator.email
      }
    }
    trainerServiceAccount = {
      create     = true
      name       = var.trainer_ksa_name
      namespaces = var.trainer_namespaces
      annotations = {
        "iam.gke.io/gcp-service-account" = google_service_account.trainer.email
      }
    }
    serving = {
      serviceAccount = {
        create = true
        name   = var.serving_ksa_name
        annotations = {
          "iam.gke.io/gcp-service-account" = google_service_account.server.email
        }
      }
    }
  }
}
