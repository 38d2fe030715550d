# NVIDIA T4 pool: N1 machines with 1, 2 or 4 T4, the driver installed by GKE, autoscaled from 0, Spot optional.
# Pods select it with cloud.google.com/gke-accelerator=nvidia-tesla-t4 and tolerate nvidia.com/gpu.

module "t4_pool" {
  source = "./modules/node-pool"
  count  = var.enable_t4_pool ? 1 : 0

  cluster        = local.node_pool_cluster
  name           = "t4-x${var.t4_gpus_per_node}"
  node_locations = length(var.t4_zones) > 0 ? var.t4_zones : null
  autoscaling    = { min_nodes = 0, max_nodes = var.t4_max_nodes }
  machine_type   = var.t4_machine_type
  disk_size_gb   = var.t4_disk_size_gb
  spot           = var.t4_spot
  taint_key      = "nvidia.com/gpu"
  gpu = {
    type           = "nvidia-tesla-t4"
    count          = var.t4_gpus_per_node
    driver_version = var.t4_gpu_driver_version
  }
}

# Fails the plan (a check block would only warn) when 4 GPUs are asked of a machine too small for them.
resource "terraform_data" "t4_machine_fits_gpus" {
  count = var.enable_t4_pool ? 1 : 0

  lifecycle {
    precondition {
      condition     = var.t4_gpus_per_node < 4 || can(regex("-(16|32|64|96)$", var.t4_machine_type))
      error_message = "4 T4 per node need an N1 machine with at least 16 vCPUs (e.g. n1-standard-16)."
    }
  }
}
