# Small pool for the operator and cluster add-ons; training pods never land here (they need GPUs or TPUs).

module "system_pool" {
  source = "./modules/node-pool"

  cluster      = local.node_pool_cluster
  name         = "system"
  node_count   = var.system_node_count
  machine_type = var.system_machine_type
  disk_size_gb = 50
}
