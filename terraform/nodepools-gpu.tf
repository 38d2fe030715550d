# NVIDIA T4 pool: N1 machines with 1, 2 or 4 T4, the driver installed by GKE, autoscaled from 0, Spot optional.
# Pods select it with cloud.google.com/gke-accelerator=nvidia-tesla-t4 and tolerate nvidia.com/gpu.

resource "google_container_node_pool" "t4" {
  count = var.enable_t4_pool ? 1 : 0

  project            = var.project_id
  name               = "t4-x${var.t4_gpus_per_node}"
  location           = var.cluster_location
  cluster            = google_container_cluster.this.name
  node_locations     = length(var.t4_zones) > 0 ? var.t4_zones : null
  initial_node_count = 0

  autoscaling {
    min_node_count  = 0
    max_node_count  = var.t4_max_nodes
    location_policy = "ANY"
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = var.t4_machine_type
    image_type      = local.node_image_type
    disk_type       = "pd-balanced"
    disk_size_gb    = var.t4_disk_size_gb
    spot            = var.t4_spot
    service_account = google_service_account.nodes.email
    oauth_scopes    = local.node_oauth_scopes
    resource_labels = local.labels

    labels = {
      "gemmaft.dev/pool" = "t4"
    }

    guest_accelerator {
      type  = "nvidia-tesla-t4"
      count = var.t4_gpus_per_node

      gpu_driver_installation_config {
        gpu_driver_version = var.t4_gpu_driver_version
      }
    }

    taint {
      key    = "nvidia.com/gpu"
      value  = "present"
      effect = "NO_SCHEDULE"
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }

  lifecycle {
    precondition {
      condition     = var.t4_gpus_per_node < 4 || can(regex("-(16|32|64|96)$", var.t4_machine_type))
      error_message = "4 T4 per node need an N1 machine with at least 16 vCPUs (e.g. n1-standard-16)."
    }
  }
}
