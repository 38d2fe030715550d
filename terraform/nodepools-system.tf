# Small pool for the operator and cluster add-ons; training pods never land here (they need GPUs or TPUs).

module "system_pool" {
  source = "./modules/node-pool"

  project_id      = var.project_id
  region          = var.region
  cluster         = google_container_cluster.this.name
  location        = var.cluster_location
  name            = "system"
  node_count      = var.system_node_count
  machine_type    = var.system_machine_type
  image_type      = local.node_image_type
  disk_size_gb    = 50
  service_account = google_service_account.nodes.email
  oauth_scopes    = local.node_oauth_scopes
  resource_labels = local.labels
}
