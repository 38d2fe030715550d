# Inputs of one node pool. The root module validates user input; these checks guard the module's own contract.

variable "cluster" {
  type = object({
    project_id      = string
    region          = string # every zone in node_locations must lie in it
    name            = string # the GKE cluster the pool joins
    location        = string # zone or region of the cluster
    image_type      = string
    service_account = string # Google service account of the nodes
    oauth_scopes    = list(string)
    resource_labels = map(string)
  })
  description = "What every pool of the cluster shares (the root module's local.node_pool_cluster)."
}

variable "name" {
  type        = string
  description = "Node pool name; also the value of the node label gemmaft.dev/pool."
}

variable "node_locations" {
  type        = list(string)
  description = "Zones of the pool's nodes; null: the cluster's zones."
  default     = null
}

variable "machine_type" {
  type        = string
  description = "Machine type of the nodes."
}

variable "disk_size_gb" {
  type        = number
  description = "Boot disk size in GB (image layers plus the model download cache)."

  validation {
    condition     = var.disk_size_gb >= 50
    error_message = "disk_size_gb must be at least 50."
  }
}

variable "spot" {
  type        = bool
  description = "Run the nodes on Spot VMs."
  default     = false
}

variable "node_count" {
  type        = number
  description = "Fixed number of nodes (used when autoscaling is null)."
  default     = 1
}

variable "autoscaling" {
  type = object({
    min_nodes = number
    max_nodes = number
  })
  description = "Autoscaler bounds; null: a fixed node_count."
  default     = null
}

variable "tpu_topology" {
  type        = string
  description = "TPU slice topology of a COMPACT placement policy (multi-host slices only); null: none."
  default     = null
}

variable "gpu" {
  type = object({
    type           = string
    count          = number
    driver_version = string
  })
  description = "GPUs per node and the driver GKE installs; null: no GPU."
  default     = null
}

variable "taint_key" {
  type        = string
  description = "Key of the NoSchedule taint (value present) that keeps other pods off the pool; null: none."
  default     = null
}
