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

# NVIDIA L4 pool: G2 machines, whose type fixes the GPU count (g2-standard-4..32: 1, -24: 2, -48: 4, -96: 8).
# Pods select it with cloud.google.com/gke-accelerator=nvidia-l4 and tolerate nvidia.com/gpu.
module "l4_pool" {
  source = "./modules/node-pool"
  count  = var.enable_l4_pool ? 1 : 0

  cluster        = local.node_pool_cluster
  name           = "l4-x${local.l4_machine_gpus[var.l4_machine_type]}"
  node_locations = length(var.l4_zones) > 0 ? var.l4_zones : null
  autoscaling    = { min_nodes = 0, max_nodes = var.l4_max_nodes }
  machine_type   = var.l4_machine_type
  disk_size_gb   = var.gpu_disk_size_gb
  spot           = var.l4_spot
  taint_key      = "nvidia.com/gpu"
  gpu = {
    type           = "nvidia-l4"
    count          = local.l4_machine_gpus[var.l4_machine_type]
    driver_version = var.gpu_driver_version
  }
}

# NVIDIA H100 80GB pool: A3 High machines (a3-highgpu-1g/2g/4g/8g: 1, 2, 4, 8 GPUs).
# Pods select it with cloud.google.com/gke-accelerator=nvidia-h100-80gb and tolerate nvidia.com/gpu.
module "h100_pool" {
  source = "./modules/node-pool"
  count  = var.enable_h100_pool ? 1 : 0

  cluster        = local.node_pool_cluster
  name           = "h100-x${local.h100_machine_gpus[var.h100_machine_type]}"
  node_locations = length(var.h100_zones) > 0 ? var.h100_zones : null
  autoscaling    = { min_nodes = 0, max_nodes = var.h100_max_nodes }
  machine_type   = var.h100_machine_type
  disk_size_gb   = var.gpu_disk_size_gb
  spot           = var.h100_spot
  taint_key      = "nvidia.com/gpu"
  gpu = {
    type           = "nvidia-h100-80gb"
    count          = local.h100_machine_gpus[var.h100_machine_type]
    driver_version = var.gpu_driver_version
  }
}
