# GKE Standard cluster: Workload Identity, a release channel, private nodes, Dataplane V2, shielded nodes, and
# no default node pool (pools are in nodepools-*.tf).

resource "google_container_cluster" "this" {
  project  = var.project_id
  name     = var.cluster_name
  location = var.cluster_location

  network         = local.network
  subnetwork      = local.subnetwork
  networking_mode = "VPC_NATIVE"

  # The default pool is created with one node and removed at once; every pool is a separate resource.
  remove_default_node_pool = true
  initial_node_count       = 1
  deletion_protection      = var.deletion_protection

  resource_labels = local.labels

  release_channel {
    channel = var.release_channel
  }

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  ip_allocation_policy {
    cluster_secondary_range_name  = var.pods_range_name
    services_secondary_range_name = var.services_range_name
  }

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = var.enable_private_endpoint
    master_ipv4_cidr_block  = var.master_ipv4_cidr_block

    master_global_access_config {
      enabled = true
    }
  }

  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.master_authorized_networks
      content {
        cidr_block   = cidr_blocks.value.cidr_block
        display_name = cidr_blocks.value.display_name
      }
    }
  }

  # Dataplane V2 enforces NetworkPolicy (the chart ships one for the operator).
  datapath_provider           = "ADVANCED_DATAPATH"
  enable_intranode_visibility = true
  enable_shielded_nodes       = true
  enable_legacy_abac          = false

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  addons_config {
    gcs_fuse_csi_driver_config {
      enabled = var.enable_gcs_fuse_csi_driver
    }
    gce_persistent_disk_csi_driver_config {
      enabled = true
    }
  }

  database_encryption {
    state    = var.database_encryption_key == "" ? "DECRYPTED" : "ENCRYPTED"
    key_name = var.database_encryption_key == "" ? null : var.database_encryption_key
  }

  logging_config {
    enable_components = ["SYSTEM_COMPONENTS", "WORKLOADS"]
  }

  monitoring_config {
    enable_components = ["SYSTEM_COMPONENTS"]
    managed_prometheus {
      enabled = true
    }
  }

  # Settings of the short-lived default pool; they match the real pools so that no insecure node ever starts.
  node_config {
    service_account = google_service_account.nodes.email
    oauth_scopes    = local.node_oauth_scopes
    image_type      = local.node_image_type

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }

  lifecycle {
    # node_config describes only the removed default pool; changing it later would recreate the cluster.
    ignore_changes = [node_config]

    precondition {
      condition     = startswith(var.cluster_location, var.region)
      error_message = "cluster_location must be var.region or one of its zones."
    }
  }

  depends_on = [google_project_service.apis]
}
