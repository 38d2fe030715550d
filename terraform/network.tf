# A VPC for private nodes: one subnetwork with secondary ranges (VPC-native pods and Services), Private Google
# Access, flow logs, and Cloud NAT so nodes without public IPs can still download models and images.

resource "google_compute_network" "this" {
  count = var.create_network ? 1 : 0

  project                 = var.project_id
  name                    = local.network_name
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.apis]
}

resource "google_compute_subnetwork" "nodes" {
  count = var.create_network ? 1 : 0

  project                  = var.project_id
  name                     = local.subnetwork_name
  region                   = var.region
  network                  = google_compute_network.this[0].id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = var.pods_range_name
    ip_cidr_range = var.pods_cidr
  }

  secondary_ip_range {
    range_name    = var.services_range_name
    ip_cidr_range = var.services_cidr
  }

  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_router" "nat" {
  count = var.create_network ? 1 : 0

  project = var.project_id
  name    = "${var.cluster_name}-router"
  region  = var.region
  network = google_compute_network.this[0].id
}

resource "google_compute_router_nat" "nat" {
  count = var.create_network ? 1 : 0

  project                            = var.project_id
  name                               = "${var.cluster_name}-nat"
  router                             = google_compute_router.nat[0].name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# Explicit lowest-priority deny of all ingress (GKE adds its own allow rules for the control plane and pods at
# priority 1000), so that the network never relies on the implied rule alone.
resource "google_compute_firewall" "deny_ingress" {
  count = var.create_network ? 1 : 0

  project   = var.project_id
  name      = "${var.cluster_name}-deny-ingress"
  network   = google_compute_network.this[0].id
  direction = "INGRESS"
  priority  = 65534

  source_ranges = ["0.0.0.0/0"]

  deny {
    protocol = "all"
  }
}
