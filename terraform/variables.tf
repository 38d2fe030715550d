# Every variable has a type, a description and, where its values are constrained, a validation block.

# ---------------------------------------------------------------------------------------------------------------
# Project and location
# ---------------------------------------------------------------------------------------------------------------

variable "project_id" {
  type        = string
  description = "ID of the Google Cloud project that holds the cluster, bucket, registry and service accounts."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6 to 30 characters: lowercase letters, digits, hyphens; starts with a letter)."
  }
}

variable "region" {
  type        = string
  description = "Region of the Artifact Registry repository, the bucket (unless bucket_location is set) and the subnetwork, e.g. us-central1."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a region name such as us-central1."
  }
}

variable "cluster_location" {
  type        = string
  description = "Zone (zonal cluster, e.g. us-central1-b) or region (regional cluster, e.g. us-central1) of the GKE control plane. Must lie in var.region."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+(-[a-z])?$", var.cluster_location))
    error_message = "cluster_location must be a zone (us-central1-b) or a region (us-central1)."
  }
}

variable "cluster_name" {
  type        = string
  description = "Name of the GKE cluster; also the prefix of the node pools' service account and the network."
  default     = "gemmaft"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,22}[a-z0-9])?$", var.cluster_name))
    error_message = "cluster_name must be 1 to 24 characters: lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels added to the cluster, node pools, bucket and registry."
  default     = {}

  validation {
    condition = alltrue([
      for k, v in var.labels : can(regex("^[a-z][a-z0-9_-]{0,62}$", k)) && can(regex("^[a-z0-9_-]{0,63}$", v))
    ])
    error_message = "labels keys must match ^[a-z][a-z0-9_-]{0,62}$ and values ^[a-z0-9_-]{0,63}$."
  }
}

variable "enable_apis" {
  type        = bool
  description = "Enable the Google APIs this configuration uses (container, compute, storage, artifactregistry, iam). They are never disabled on destroy."
  default     = true
}

# ---------------------------------------------------------------------------------------------------------------
# Cluster
# ---------------------------------------------------------------------------------------------------------------

variable "release_channel" {
  type        = string
  description = "GKE release channel of the cluster: RAPID, REGULAR or STABLE."
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.release_channel)
    error_message = "release_channel must be one of RAPID, REGULAR, STABLE."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to destroy the cluster and the bucket's objects through Terraform (set false before `terraform destroy`)."
  default     = true
}

variable "enable_gcs_fuse_csi_driver" {
  type        = bool
  description = "Enable the Cloud Storage FUSE CSI driver add-on (mount gs:// buckets as volumes): serving pods (spec.serving) read the run's adapter through it."
  default     = true
}

variable "enable_private_endpoint" {
  type        = bool
  description = "Give the control plane only a private endpoint. Terraform (the helm and kubernetes providers) must then run from inside the VPC."
  default     = false
}

variable "master_authorized_networks" {
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  description = "CIDR blocks allowed to reach the control plane endpoint. The machine running Terraform must be in one of them to install the operator."
  default     = []

  validation {
    condition     = alltrue([for n in var.master_authorized_networks : can(cidrhost(n.cidr_block, 0))])
    error_message = "Each master_authorized_networks cidr_block must be a CIDR block such as 203.0.113.0/24."
  }
}

variable "database_encryption_key" {
  type        = string
  description = "Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) that encrypts Kubernetes Secrets in etcd; empty: Google-managed encryption."
  default     = ""

  validation {
    condition     = var.database_encryption_key == "" || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.database_encryption_key))
    error_message = "database_encryption_key must be empty or a Cloud KMS crypto key name projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}

# ---------------------------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------------------------

variable "create_network" {
  type        = bool
  description = "Create a VPC, a subnetwork with secondary ranges for pods and services, and Cloud NAT (private nodes need NAT to download models). false: use network_name and subnetwork_name as they are."
  default     = true
}

variable "network_name" {
  type        = string
  description = "Name of the VPC network (created when create_network is true). Empty: \"<cluster_name>-vpc\"."
  default     = ""

  validation {
    condition     = var.network_name == "" || can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.network_name))
    error_message = "network_name must be empty or a valid network name (lowercase letters, digits, hyphens)."
  }
}

variable "subnetwork_name" {
  type        = string
  description = "Name of the subnetwork in var.region. Empty: \"<cluster_name>-nodes\". When create_network is false it must have secondary ranges named pods_range_name and services_range_name."
  default     = ""

  validation {
    condition     = var.subnetwork_name == "" || can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.subnetwork_name))
    error_message = "subnetwork_name must be empty or a valid subnetwork name."
  }
}

variable "pods_range_name" {
  type        = string
  description = "Name of the subnetwork's secondary range for pod IPs."
  default     = "pods"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.pods_range_name))
    error_message = "pods_range_name must be a valid range name."
  }
}

variable "services_range_name" {
  type        = string
  description = "Name of the subnetwork's secondary range for Service IPs."
  default     = "services"

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.services_range_name))
    error_message = "services_range_name must be a valid range name."
  }
}

variable "subnet_cidr" {
  type        = string
  description = "Primary range of the created subnetwork (node IPs)."
  default     = "10.10.0.0/20"

  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0))
    error_message = "subnet_cidr must be a CIDR block."
  }
}

variable "pods_cidr" {
  type        = string
  description = "Secondary range of the created subnetwork for pods."
  default     = "10.16.0.0/14"

  validation {
    condition     = can(cidrhost(var.pods_cidr, 0))
    error_message = "pods_cidr must be a CIDR block."
  }
}

variable "services_cidr" {
  type        = string
  description = "Secondary range of the created subnetwork for Services."
  default     = "10.20.0.0/20"

  validation {
    condition     = can(cidrhost(var.services_cidr, 0))
    error_message = "services_cidr must be a CIDR block."
  }
}

variable "master_ipv4_cidr_block" {
  type        = string
  description = "/28 range of the private control plane endpoint (private nodes)."
  default     = "172.16.0.32/28"

  validation {
    condition     = can(cidrhost(var.master_ipv4_cidr_block, 0)) && endswith(var.master_ipv4_cidr_block, "/28")
    error_message = "master_ipv4_cidr_block must be a /28 CIDR block."
  }
}

# ---------------------------------------------------------------------------------------------------------------
# System node pool (operator, kube-system)
# ---------------------------------------------------------------------------------------------------------------

variable "system_machine_type" {
  type        = string
  description = "Machine type of the small system node pool that runs the operator and cluster add-ons."
  default     = "e2-standard-4"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*-[a-z]+-[0-9]+$", var.system_machine_type))
    error_message = "system_machine_type must be a machine type such as e2-standard-4."
  }
}

variable "system_node_count" {
  type        = number
  description = "Nodes of the system pool per zone of the cluster."
  default     = 1

  validation {
    condition     = var.system_node_count >= 1 && var.system_node_count <= 10 && floor(var.system_node_count) == var.system_node_count
    error_message = "system_node_count must be a whole number from 1 to 10."
  }
}

# ---------------------------------------------------------------------------------------------------------------
# NVIDIA T4 node pool
# ---------------------------------------------------------------------------------------------------------------

variable "enable_t4_pool" {
  type        = bool
  description = "Create the NVIDIA T4 node pool (autoscaled from 0)."
  default     = true
}

variable "t4_machine_type" {
  type        = string
  description = "N1 machine type of the T4 nodes. 4 T4 per node need at least n1-standard-16 (n1-highmem-*: check GCP's GPU/vCPU limits)."
  default     = "n1-standard-8"

  validation {
    condition     = can(regex("^n1-(standard|highmem|highcpu)-(1|2|4|8|16|32|64|96)$", var.t4_machine_type))
    error_message = "t4_machine_type must be an N1 machine type (T4 GPUs attach only to N1), e.g. n1-standard-8."
  }
}

variable "t4_gpus_per_node" {
  type        = number
  description = "T4 GPUs per node: 1, 2 or 4."
  default     = 1

  validation {
    condition     = contains([1, 2, 4], var.t4_gpus_per_node)
    error_message = "t4_gpus_per_node must be 1, 2 or 4."
  }
}

variable "t4_gpu_driver_version" {
  type        = string
  description = "NVIDIA driver GKE installs on T4 nodes: DEFAULT or LATEST. The GPU image's torch wheels bundle CUDA 13 user-space libraries, which need a recent driver (R580 or newer): LATEST."
  default     = "LATEST"

  validation {
    condition     = contains(["DEFAULT", "LATEST"], var.t4_gpu_driver_version)
    error_message = "t4_gpu_driver_version must be DEFAULT or LATEST."
  }
}

variable "t4_max_nodes" {
  type        = number
  description = "Upper bound of the T4 pool's autoscaler (per zone); the lower bound is 0."
  default     = 2

  validation {
    condition     = var.t4_max_nodes >= 1 && var.t4_max_nodes <= 100 && floor(var.t4_max_nodes) == var.t4_max_nodes
    error_message = "t4_max_nodes must be a whole number from 1 to 100."
  }
}

variable "t4_spot" {
  type        = bool
  description = "Run the T4 pool on Spot VMs (cheaper, preemptible; the trainer resumes from its last checkpoint)."
  default     = true
}

variable "t4_zones" {
  type        = list(string)
  description = "Zones of the T4 pool (T4 is not offered in every zone). Empty: the cluster's zones."
  default     = []

  validation {
    condition     = alltrue([for z in var.t4_zones : can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", z))])
    error_message = "t4_zones must be zone names such as us-central1-b."
  }
}

variable "t4_disk_size_gb" {
  type        = number
  description = "Boot disk size of T4 nodes in GB (trainer image, model download cache)."
  default     = 200

  validation {
    condition     = var.t4_disk_size_gb >= 100 && var.t4_disk_size_gb <= 65536
    error_message = "t4_disk_size_gb must be from 100 to 65536."
  }
}

# ---------------------------------------------------------------------------------------------------------------
# NVIDIA L4 and H100 node pools
# ---------------------------------------------------------------------------------------------------------------

variable "enable_l4_pool" {
  type        = bool
  description = "Create the NVIDIA L4 node pool (G2 machines, autoscaled from 0)."
  default     = false
}

variable "l4_machine_type" {
  type        = string
  description = "G2 machine type of the L4 nodes; it fixes the GPUs per node: g2-standard-4, -8, -12, -16, -32 (1 L4), -24 (2), -48 (4), -96 (8)."
  default     = "g2-standard-8"

  validation {
    condition     = contains(["g2-standard-4", "g2-standard-8", "g2-standard-12", "g2-standard-16", "g2-standard-32", "g2-standard-24", "g2-standard-48", "g2-standard-96"], var.l4_machine_type)
    error_message = "l4_machine_type must be a G2 machine type (L4 GPUs come only with G2): g2-standard-4, -8, -12, -16, -24, -32, -48 or -96."
  }
}

variable "l4_max_nodes" {
  type        = number
  description = "Upper bound of the L4 pool's autoscaler (per zone); the lower bound is 0."
  default     = 2

  validation {
    condition     = var.l4_max_nodes >= 1 && var.l4_max_nodes <= 100 && floor(var.l4_max_nodes) == var.l4_max_nodes
    error_message = "l4_max_nodes must be a whole number from 1 to 100."
  }
}

variable "l4_spot" {
  type        = bool
  description = "Run the L4 pool on Spot VMs."
  default     = true
}

variable "l4_zones" {
  type        = list(string)
  description = "Zones of the L4 pool (L4 is not offered in every zone: gcloud compute accelerator-types list --filter=name=nvidia-l4). Empty: the cluster's zones."
  default     = []

  validation {
    condition     = alltrue([for z in var.l4_zones : can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", z))])
    error_message = "l4_zones must be zone names such as us-central1-a."
  }
}

variable "enable_h100_pool" {
  type        = bool
  description = "Create the NVIDIA H100 80GB node pool (A3 High machines, autoscaled from 0)."
  default     = false
}

variable "h100_machine_type" {
  type        = string
  description = "A3 High machine type of the H100 nodes; it fixes the GPUs per node: a3-highgpu-1g, -2g, -4g, -8g (1, 2, 4, 8 H100). The smaller ones may be offered only as Spot or flex-start capacity."
  default     = "a3-highgpu-8g"

  validation {
    condition     = contains(["a3-highgpu-1g", "a3-highgpu-2g", "a3-highgpu-4g", "a3-highgpu-8g"], var.h100_machine_type)
    error_message = "h100_machine_type must be a3-highgpu-1g, a3-highgpu-2g, a3-highgpu-4g or a3-highgpu-8g."
  }
}

variable "h100_max_nodes" {
  type        = number
  description = "Upper bound of the H100 pool's autoscaler (per zone); the lower bound is 0."
  default     = 1

  validation {
    condition     = var.h100_max_nodes >= 1 && var.h100_max_nodes <= 100 && floor(var.h100_max_nodes) == var.h100_max_nodes
    error_message = "h100_max_nodes must be a whole number from 1 to 100."
  }
}

variable "h100_spot" {
  type        = bool
  description = "Run the H100 pool on Spot VMs."
  default     = true
}

variable "h100_zones" {
  type        = list(string)
  description = "Zones of the H100 pool (gcloud compute accelerator-types list --filter=name=nvidia-h100-80gb). Empty: the cluster's zones."
  default     = []

  validation {
    condition     = alltrue([for z in var.h100_zones : can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", z))])
    error_message = "h100_zones must be zone names such as us-central1-a."
  }
}

variable "gpu_driver_version" {
  type        = string
  description = "NVIDIA driver GKE installs on L4 and H100 nodes: DEFAULT or LATEST (the GPU image's CUDA 13 libraries need R580 or newer: LATEST)."
  default     = "LATEST"

  validation {
    condition     = contains(["DEFAULT", "LATEST"], var.gpu_driver_version)
    error_message = "gpu_driver_version must be DEFAULT or LATEST."
  }
}

variable "gpu_disk_size_gb" {
  type        = number
  description = "Boot disk size of L4 and H100 nodes in GB: the CUDA image, the model download (gemma-2-27b is about 55 GB in bf16) and its merged copy."
  default     = 200

  validation {
    condition     = var.gpu_disk_size_gb >= 150 && var.gpu_disk_size_gb <= 65536
    error_message = "gpu_disk_size_gb must be from 150 (gemma-2-27b download + merged copy + image) to 65536."
  }
}

# ---------------------------------------------------------------------------------------------------------------
# Cloud TPU v3 and v5e node pools
# ---------------------------------------------------------------------------------------------------------------

variable "enable_tpu_v3_single_host" {
  type        = bool
  description = "Create a single-host TPU v3 pool (ct3-hightpu-4t, topology 2x2, a v3-8; autoscaled from 0)."
  default     = false
}

variable "tpu_v3_single_host_max_nodes" {
  type        = number
  description = "Upper bound of the single-host TPU v3 pool's autoscaler; the lower bound is 0."
  default     = 1

  validation {
    condition     = var.tpu_v3_single_host_max_nodes >= 1 && var.tpu_v3_single_host_max_nodes <= 16 && floor(var.tpu_v3_single_host_max_nodes) == var.tpu_v3_single_host_max_nodes
    error_message = "tpu_v3_single_host_max_nodes must be a whole number from 1 to 16."
  }
}

variable "enable_tpu_v3_slice" {
  type        = bool
  description = "Create a multi-host TPU v3 slice pool (ct3p-hightpu-4t, COMPACT placement, tpu_v3_slice_topology). Its node count is fixed at the slice's host count."
  default     = false
}

variable "tpu_v3_slice_topology" {
  type        = string
  description = "Topology of the multi-host TPU v3 slice: 4x4 (v3-32, 4 hosts), 4x8, 8x8, 8x16, 16x16, 16x32 or 32x32."
  default     = "4x4"

  validation {
    condition     = contains(["4x4", "4x8", "8x8", "8x16", "16x16", "16x32", "32x32"], var.tpu_v3_slice_topology)
    error_message = "tpu_v3_slice_topology must be one of 4x4, 4x8, 8x8, 8x16, 16x16, 16x32, 32x32 (2x2 is the single-host pool)."
  }
}

variable "tpu_v3_single_host_zone" {
  type        = string
  description = "Zone of the single-host TPU v3 pool: one that offers v3-8 (us-central1-a, us-central1-b, europe-west4-a: the Cloud TPU zone table, kept equal to TPU_V3_ZONES in operator/gemma_api/facts.py by tests/terraform/test_cluster_and_node_pools.py). Must lie in var.region."
  default     = "europe-west4-a"

  validation {
    condition     = contains(["us-central1-a", "us-central1-b", "europe-west4-a"], var.tpu_v3_single_host_zone)
    error_message = "tpu_v3_single_host_zone must be a zone that offers TPU v3-8: us-central1-a, us-central1-b or europe-west4-a."
  }
}

variable "tpu_v3_slice_zone" {
  type        = string
  description = "Zone of the multi-host TPU v3 slice pool. v3-32 and larger slices exist only in europe-west4-a, so the cluster's region must be europe-west4 to enable the slice pool."
  default     = "europe-west4-a"

  validation {
    condition     = contains(["europe-west4-a"], var.tpu_v3_slice_zone)
    error_message = "tpu_v3_slice_zone must be europe-west4-a: v3-32 and larger TPU v3 slices are offered in no other zone."
  }
}

variable "enable_tpu_v5e_single_host" {
  type        = bool
  description = "Create a single-host TPU v5e pool (tpu_v5e_single_host_topology on ct5lp-hightpu-1t/4t/8t, autoscaled from 0)."
  default     = false
}

variable "tpu_v5e_single_host_topology" {
  type        = string
  description = "Topology of the single-host TPU v5e pool: 1x1 (ct5lp-hightpu-1t), 2x2 (ct5lp-hightpu-4t) or 2x4 (ct5lp-hightpu-8t)."
  default     = "2x2"

  validation {
    condition     = contains(["1x1", "2x2", "2x4"], var.tpu_v5e_single_host_topology)
    error_message = "tpu_v5e_single_host_topology must be 1x1, 2x2 or 2x4 (4x4 and larger are the slice pool)."
  }
}

variable "tpu_v5e_single_host_max_nodes" {
  type        = number
  description = "Upper bound of the single-host TPU v5e pool's autoscaler; the lower bound is 0."
  default     = 1

  validation {
    condition     = var.tpu_v5e_single_host_max_nodes >= 1 && var.tpu_v5e_single_host_max_nodes <= 16 && floor(var.tpu_v5e_single_host_max_nodes) == var.tpu_v5e_single_host_max_nodes
    error_message = "tpu_v5e_single_host_max_nodes must be a whole number from 1 to 16."
  }
}

variable "tpu_v5e_single_host_zone" {
  type        = string
  description = "Zone of the single-host TPU v5e pool: one of the Cloud TPU v5e zones (kept equal to the tpu-v5e record of operator/gemma_api/accelerators.py by tests/terraform). Must lie in var.region."
  default     = "us-west4-a"

  validation {
    condition     = contains(["us-central1-a", "us-south1-a", "us-west1-c", "us-west4-a", "us-west4-b", "us-east5-a", "us-east5-b", "us-east5-c", "europe-west4-b"], var.tpu_v5e_single_host_zone)
    error_message = "tpu_v5e_single_host_zone must be a zone that offers TPU v5e: us-central1-a, us-south1-a, us-west1-c, us-west4-a, us-west4-b, us-east5-a, us-east5-b, us-east5-c or europe-west4-b."
  }
}

variable "enable_tpu_v5e_slice" {
  type        = bool
  description = "Create a multi-host TPU v5e slice pool (ct5lp-hightpu-4t, COMPACT placement, tpu_v5e_slice_topology). Its node count is fixed at the slice's host count."
  default     = false
}

variable "tpu_v5e_slice_topology" {
  type        = string
  description = "Topology of the multi-host TPU v5e slice: 4x4 (4 hosts), 4x8, 8x8, 8x16 or 16x16; hosts = chips / 4."
  default     = "4x4"

  validation {
    condition     = contains(["4x4", "4x8", "8x8", "8x16", "16x16"], var.tpu_v5e_slice_topology)
    error_message = "tpu_v5e_slice_topology must be one of 4x4, 4x8, 8x8, 8x16, 16x16 (1x1, 2x2, 2x4 are the single-host pool)."
  }
}

variable "tpu_v5e_slice_zone" {
  type        = string
  description = "Zone of the multi-host TPU v5e slice pool: one of the Cloud TPU v5e zones. Must lie in var.region."
  default     = "us-west4-a"

  validation {
    condition     = contains(["us-central1-a", "us-south1-a", "us-west1-c", "us-west4-a", "us-west4-b", "us-east5-a", "us-east5-b", "us-east5-c", "europe-west4-b"], var.tpu_v5e_slice_zone)
    error_message = "tpu_v5e_slice_zone must be a zone that offers TPU v5e: us-central1-a, us-south1-a, us-west1-c, us-west4-a, us-west4-b, us-east5-a, us-east5-b, us-east5-c or europe-west4-b."
  }
}

variable "tpu_disk_size_gb" {
  type        = number
  description = "Boot disk size of TPU v3 and v5e nodes in GB: the trainer image, the model download (gemma-2-27b is about 55 GB in bf16) and the merged copy of it when output.mergeAdapter is set."
  default     = 200

  validation {
    condition     = var.tpu_disk_size_gb >= 150 && var.tpu_disk_size_gb <= 65536
    error_message = "tpu_disk_size_gb must be from 150 (gemma-2-27b download + merged copy + image) to 65536."
  }
}

variable "tpu_spot" {
  type        = bool
  description = "Run the TPU v3 and v5e pools on Spot VMs."
  default     = true
}

# ---------------------------------------------------------------------------------------------------------------
# Bucket
# ---------------------------------------------------------------------------------------------------------------

variable "bucket_name" {
  type        = string
  description = "Name of the GCS bucket for data, checkpoints and adapters. Empty: \"<project_id>-gemmaft\"."
  default     = ""

  validation {
    condition     = var.bucket_name == "" || can(regex("^[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be empty or a bucket name of 3 to 63 lowercase letters, digits, '-', '_' and '.'."
  }
}

variable "bucket_location" {
  type        = string
  description = "Location of the bucket (a region, dual-region or multi-region). Empty: var.region, next to the nodes."
  default     = ""

  validation {
    condition     = var.bucket_location == "" || can(regex("^[A-Za-z0-9-]+$", var.bucket_location))
    error_message = "bucket_location must be empty or a location name such as us-central1 or US."
  }
}

variable "bucket_kms_key_name" {
  type        = string
  description = "Cloud KMS key (CMEK) that encrypts the bucket's objects; empty: Google-managed keys. The GCS service agent is granted encrypt/decrypt on it."
  default     = ""

  validation {
    condition     = var.bucket_kms_key_name == "" || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.bucket_kms_key_name))
    error_message = "bucket_kms_key_name must be empty or projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}

variable "noncurrent_version_retention_days" {
  type        = number
  description = "Days after which overwritten or deleted object versions (e.g. checkpoints the trainer rotated out) are deleted."
  default     = 7

  validation {
    condition     = var.noncurrent_version_retention_days >= 1 && var.noncurrent_version_retention_days <= 3650 && floor(var.noncurrent_version_retention_days) == var.noncurrent_version_retention_days
    error_message = "noncurrent_version_retention_days must be a whole number from 1 to 3650."
  }
}

variable "checkpoint_prefixes" {
  type        = list(string)
  description = "Object name prefixes (each ending in '/') whose objects are deleted checkpoint_retention_days after creation, e.g. [\"scratch/\"]. GCS lifecycle rules match only the start or end of a name, so list output paths whose whole content may expire. Empty: no such rule."
  default     = []

  validation {
    condition     = alltrue([for p in var.checkpoint_prefixes : length(p) > 1 && endswith(p, "/") && !startswith(p, "/")])
    error_message = "Each checkpoint_prefixes entry must be a non-empty object name prefix ending in '/', not starting with '/'."
  }
}

variable "checkpoint_retention_days" {
  type        = number
  description = "Days after creation at which objects under checkpoint_prefixes are deleted."
  default     = 30

  validation {
    condition     = var.checkpoint_retention_days >= 1 && var.checkpoint_retention_days <= 3650 && floor(var.checkpoint_retention_days) == var.checkpoint_retention_days
    error_message = "checkpoint_retention_days must be a whole number from 1 to 3650."
  }
}

# ---------------------------------------------------------------------------------------------------------------
# Artifact Registry
# ---------------------------------------------------------------------------------------------------------------

variable "registry_repository_id" {
  type        = string
  description = "ID of the Artifact Registry Docker repository for the trainer and operator images."
  default     = "gemmaft"

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", var.registry_repository_id))
    error_message = "registry_repository_id must be lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "registry_kms_key_name" {
  type        = string
  description = "Cloud KMS key (CMEK) for the Artifact Registry repository; empty: Google-managed keys. Cannot be changed after creation."
  default     = ""

  validation {
    condition     = var.registry_kms_key_name == "" || can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", var.registry_kms_key_name))
    error_message = "registry_kms_key_name must be empty or projects/P/locations/L/keyRings/R/cryptoKeys/K."
  }
}

variable "image_tag" {
  type        = string
  description = "Tag of the operator and trainer images pushed to the repository (gemmaft-operator, gemmaft-trainer-gpu, gemmaft-trainer-tpu, gemmaft-trainer-cpu)."
  default     = "0.1.0"

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "image_tag must be a Docker tag: letters, digits, '_', '.', '-', at most 128 characters."
  }
}

# ---------------------------------------------------------------------------------------------------------------
# Identities and the operator release
# ---------------------------------------------------------------------------------------------------------------

variable "trainer_namespaces" {
  type        = list(string)
  description = "Namespaces where GemmaFineTunes run: the operator watches them, the chart creates the trainer ServiceAccount in each, and each is bound to the trainer Google service account."
  default     = ["ml"]

  validation {
    condition     = length(var.trainer_namespaces) > 0 && alltrue([for n in var.trainer_namespaces : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", n))])
    error_message = "trainer_namespaces must list at least one namespace name (DNS label)."
  }
}

variable "serving_ksa_name" {
  type        = string
  description = "Name of the Kubernetes ServiceAccount serving pods (spec.serving's vLLM Deployment) run as (the chart's serving.serviceAccount.name); it may only read the runs bucket."
  default     = "gemma-server"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.serving_ksa_name))
    error_message = "serving_ksa_name must be a DNS label."
  }
}

variable "create_trainer_namespaces" {
  type        = bool
  description = "Create the trainer_namespaces (set false when they exist already)."
  default     = true
}

variable "trainer_ksa_name" {
  type        = string
  description = "Name of the Kubernetes ServiceAccount trainer pods run as (the chart's trainerServiceAccount.name)."
  default     = "gemma-trainer"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.trainer_ksa_name))
    error_message = "trainer_ksa_name must be a DNS label."
  }
}

variable "operator_namespace" {
  type        = string
  description = "Namespace of the operator's Helm release."
  default     = "gemmaft-system"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.operator_namespace))
    error_message = "operator_namespace must be a DNS label."
  }
}

variable "operator_ksa_name" {
  type        = string
  description = "Name of the operator's Kubernetes ServiceAccount (the chart's serviceAccount.name)."
  default     = "gemma-finetune-operator"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.operator_ksa_name))
    error_message = "operator_ksa_name must be a DNS label."
  }
}

variable "install_operator" {
  type        = bool
  description = "Install the operator's Helm chart (../charts/gemma-finetune-operator) into the cluster. Leave false for the first apply (the images do not exist yet); set true after pushing them (docs/install.md)."
  default     = false
}

variable "operator_release_name" {
  type        = string
  description = "Name of the operator's Helm release."
  default     = "gemmaft"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$", var.operator_release_name))
    error_message = "operator_release_name must be a DNS label of at most 53 characters."
  }
}

variable "restrict_trainer_images" {
  type        = bool
  description = "Allow GemmaFineTunes to name only images from this configuration's Artifact Registry repository (the chart's allowedImagePrefixes)."
  default     = true
}

variable "trainer_namespace_pod_security" {
  type        = string
  description = "Pod Security Standard enforced in the created trainer namespaces: restricted (the operator's trainer pods meet it), baseline or privileged."
  default     = "restricted"

  validation {
    condition     = contains(["restricted", "baseline", "privileged"], var.trainer_namespace_pod_security)
    error_message = "trainer_namespace_pod_security must be restricted, baseline or privileged."
  }
}
