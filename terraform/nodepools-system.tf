# Small pool for the operator and cluster add-ons; training pods never land here (they need GPUs or TPUs).

resource "google_container_node_pool" "system" {
  project    = var.project_id
  name       = "system"
  location   = var.cluster_location
  cluster    = google_container_cluster.this.name
  node_count = var.system_node_count

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = var.system_machine_type
    image_type      = local.node_image_type
    disk_type       = "pd-balanced"
    disk_size_gb    = 50
    service_account = google_service_account.nodes.email
    oauth_scopes    = local.node_oauth_scopes
    resource_labels = local.labels

    labels = {
      "gemmaft.dev/pool" = "system"
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }
}
