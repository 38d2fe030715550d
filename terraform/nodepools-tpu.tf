# Cloud TPU v3 pools. Pods select them with cloud.google.com/gke-tpu-accelerator (tpu-v3-device or tpu-v3-slice)
# and cloud.google.com/gke-tpu-topology, request google.com/tpu: 4 per host, and tolerate google.com/tpu.

# Single host: a v3-8 (2x2, 4 chips) per node, autoscaled from 0.
resource "google_container_node_pool" "tpu_v3_single_host" {
  count = var.enable_tpu_v3_single_host ? 1 : 0

  project            = var.project_id
  name               = "tpu-v3-2x2"
  location           = var.cluster_location
  cluster            = google_container_cluster.this.name
  node_locations     = [var.tpu_zone]
  initial_node_count = 0

  autoscaling {
    min_node_count  = 0
    max_node_count  = var.tpu_v3_single_host_max_nodes
    location_policy = "ANY"
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = local.tpu_v3_single_host_type
    image_type      = local.node_image_type
    spot            = var.tpu_spot
    service_account = google_service_account.nodes.email
    oauth_scopes    = local.node_oauth_scopes
    resource_labels = local.labels

    labels = {
      "gemmaft.dev/pool" = "tpu-v3-2x2"
    }

    taint {
      key    = "google.com/tpu"
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
      condition     = startswith(var.tpu_zone, var.region)
      error_message = "tpu_zone must be a zone of var.region."
    }
  }
}

# Multi-host slice: hosts = chips / 4 nodes of ct3p-hightpu-4t in one COMPACT placement with the slice topology.
# A slice is usable only whole, so the pool has exactly that many nodes.
resource "google_container_node_pool" "tpu_v3_slice" {
  count = var.enable_tpu_v3_slice ? 1 : 0

  project        = var.project_id
  name           = "tpu-v3-${var.tpu_v3_slice_topology}"
  location       = var.cluster_location
  cluster        = google_container_cluster.this.name
  node_locations = [var.tpu_zone]
  node_count     = local.tpu_v3_slice_hosts

  placement_policy {
    type         = "COMPACT"
    tpu_topology = var.tpu_v3_slice_topology
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = local.tpu_v3_slice_type
    image_type      = local.node_image_type
    spot            = var.tpu_spot
    service_account = google_service_account.nodes.email
    oauth_scopes    = local.node_oauth_scopes
    resource_labels = local.labels

    labels = {
      "gemmaft.dev/pool" = "tpu-v3-${var.tpu_v3_slice_topology}"
    }

    taint {
      key    = "google.com/tpu"
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
      condition     = startswith(var.tpu_zone, var.region)
      error_message = "tpu_zone must be a zone of var.region."
    }
  }
}
