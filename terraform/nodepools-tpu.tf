# Cloud TPU v3 pools. Pods select them with cloud.google.com/gke-tpu-accelerator (tpu-v3-device or tpu-v3-slice)
# and cloud.google.com/gke-tpu-topology, request google.com/tpu: 4 per host, and tolerate google.com/tpu.
# Each pool has its own zone, validated against the v3 zone table in variables.tf (slices: europe-west4-a only).

# Single host: a v3-8 (2x2, 4 chips) per node, autoscaled from 0.
module "tpu_v3_single_host_pool" {
  source = "./modules/node-pool"
  count  = var.enable_tpu_v3_single_host ? 1 : 0

  cluster        = local.node_pool_cluster
  name           = "tpu-v3-2x2"
  node_locations = [var.tpu_v3_single_host_zone]
  autoscaling    = { min_nodes = 0, max_nodes = var.tpu_v3_single_host_max_nodes }
  machine_type   = local.tpu_v3_single_host_type
  disk_size_gb   = var.tpu_disk_size_gb
  spot           = var.tpu_spot
  taint_key      = "google.com/tpu"
}

# Multi-host slice: hosts = chips / 4 nodes of ct3p-hightpu-4t in one COMPACT placement with the slice topology.
# A slice is usable only whole, so the pool has exactly that many nodes; all pods of one run land on it
# (the operator pins them to this pool by its cloud.google.com/gke-nodepool label).
module "tpu_v3_slice_pool" {
  source = "./modules/node-pool"
  count  = var.enable_tpu_v3_slice ? 1 : 0

  cluster        = local.node_pool_cluster
  name           = "tpu-v3-${var.tpu_v3_slice_topology}"
  node_locations = [var.tpu_v3_slice_zone]
  node_count     = local.tpu_v3_slice_hosts
  tpu_topology   = var.tpu_v3_slice_topology
  machine_type   = local.tpu_v3_slice_type
  disk_size_gb   = var.tpu_disk_size_gb
  spot           = var.tpu_spot
  taint_key      = "google.com/tpu"
}

# Cloud TPU v5e pools (tpu-v5-lite-podslice, one TensorCore per chip). Zones validated against the v5e zone
# table in variables.tf (kept equal to the tpu-v5e record of operator/gemma_api/accelerators.py).

# Single host: 1x1, 2x2 or 2x4 on ct5lp-hightpu-1t/4t/8t, autoscaled from 0.
module "tpu_v5e_single_host_pool" {
  source = "./modules/node-pool"
  count  = var.enable_tpu_v5e_single_host ? 1 : 0

  cluster        = local.node_pool_cluster
  name           = "tpu-v5e-${var.tpu_v5e_single_host_topology}"
  node_locations = [var.tpu_v5e_single_host_zone]
  autoscaling    = { min_nodes = 0, max_nodes = var.tpu_v5e_single_host_max_nodes }
  machine_type   = local.tpu_v5e_single_host_types[var.tpu_v5e_single_host_topology]
  disk_size_gb   = var.tpu_disk_size_gb
  spot           = var.tpu_spot
  taint_key      = "google.com/tpu"
}

# Multi-host slice: chips / 4 nodes of ct5lp-hightpu-4t in one COMPACT placement with the slice topology.
module "tpu_v5e_slice_pool" {
  source = "./modules/node-pool"
  count  = var.enable_tpu_v5e_slice ? 1 : 0

  cluster        = local.node_pool_cluster
  name           = "tpu-v5e-${var.tpu_v5e_slice_topology}"
  node_locations = [var.tpu_v5e_slice_zone]
  node_count     = local.tpu_v5e_slice_hosts
  tpu_topology   = var.tpu_v5e_slice_topology
  machine_type   = local.tpu_v5e_slice_type
  disk_size_gb   = var.tpu_disk_size_gb
  spot           = var.tpu_spot
  taint_key      = "google.com/tpu"
}
