# One hardened GKE node pool. The root module instantiates it once per pool kind (system, T4, TPU v3 single host,
# TPU v3 slice); what differs between kinds is an input, never a copy of this block.

resource "google_container_node_pool" "this" {
  project            = var.cluster.project_id
  name               = var.name
  location           = var.cluster.location
  cluster            = var.cluster.name
  node_locations     = var.node_locations
  node_count         = var.autoscaling == null ? var.node_count : null
  initial_node_count = var.autoscaling == null ? null : 0

  dynamic "autoscaling" {
    for_each = var.autoscaling == null ? [] : [var.autoscaling]
    content {
      min_node_count  = autoscaling.value.min_nodes
      max_node_count  = autoscaling.value.max_nodes
      location_policy = "ANY"
    }
  }

  dynamic "placement_policy" {
    for_each = var.tpu_topology == null ? [] : [var.tpu_topology]
    content {
      type         = "COMPACT"
      tpu_topology = placement_policy.value
    }
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = var.machine_type
    image_type      = var.cluster.image_type
    disk_type       = "pd-balanced"
    disk_size_gb    = var.disk_size_gb
    spot            = var.spot
    service_account = var.cluster.service_account
    oauth_scopes    = var.cluster.oauth_scopes
    resource_labels = var.cluster.resource_labels
    labels          = { "gemmaft.dev/pool" = var.name }

    dynamic "guest_accelerator" {
      for_each = var.gpu == null ? [] : [var.gpu]
      content {
        type  = guest_accelerator.value.type
        count = guest_accelerator.value.count

        gpu_driver_installation_config {
          gpu_driver_version = guest_accelerator.value.driver_version
        }
      }
    }

    dynamic "taint" {
      for_each = var.taint_key == null ? [] : [var.taint_key]
      content {
        key    = taint.value
        value  = "present"
        effect = "NO_SCHEDULE"
      }
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
      condition     = alltrue([for z in coalesce(var.node_locations, []) : startswith(z, "${var.cluster.region}-")])
      error_message = "Node pool ${var.name}: its zones (${join(", ", coalesce(var.node_locations, []))}) must lie in the cluster's region ${var.cluster.region}; a TPU v3 slice (europe-west4-a only) needs region = \"europe-west4\"."
    }
  }
}
