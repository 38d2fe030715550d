"""The accelerator registry: one record per ``spec.accelerator.type``, everything that differs between them.

Code outside this module never switches on an accelerator name: it looks the record up (:func:`profile`) and
asks it (``profile.kind == "tpu"``, ``profile.topology(...)``, ``profile.node_selector(...)``). Adding an
accelerator is one record here plus its Terraform pool (``terraform_pools`` names the module calls) and, for a
new ``kind``, a trainer image.

Sources, per record below (UNVERIFIED where no source confirmed the value):
- GPU names, machine series and memory: Compute Engine "GPU machine types" (cloud.google.com/compute/docs/gpus):
  nvidia-tesla-t4 on N1; nvidia-l4 on G2 (g2-standard-4..32: 1 GPU, -24: 2, -48: 4, -96: 8; 24 GB GDDR6);
  nvidia-h100-80gb on A3 (a3-highgpu-8g: 8 GPUs, 640 GB HBM3).
- Compute capability: NVIDIA "CUDA GPU Compute Capability" (developer.nvidia.com/cuda-gpus): T4 7.5, L4 8.9,
  H100 9.0 (bf16 from 8.0 on).
- GKE GPU node label ``cloud.google.com/gke-accelerator`` = the GPU name, resource ``nvidia.com/gpu``, taint
  ``nvidia.com/gpu``: GKE GPU docs and GoogleCloudPlatform/kubernetes-engine-samples (ai-ml/llm-finetuning-gemma
  selects nvidia-l4 with this key).
- TPU v3: GKE "Plan TPUs in GKE"; topologies from ray-project/kuberay kubectl-plugin validation.go; zones from the
  Cloud TPU "regions and zones" page (checked 2026-11-22).
- TPU v5e: Cloud TPU "TPU v5e" page (docs.cloud.google.com/tpu/docs/v5e): one TensorCore per chip, 16 GiB HBM per
  chip, topologies 1x1, 2x2, 2x4 (one host) and 4x4, 4x8, 8x8, 8x16, 16x16, machine types ct5lp-hightpu-1t/4t/8t
  (24 vCPU/48 GB, 112/192, 224/384); GKE label value ``tpu-v5-lite-podslice`` for every v5e machine type
  (kuberay's MachineTypeToGKEAcceleratorTypeMap; ai-on-gke and GKE samples select 1x1, 2x2, 2x4 and 4x8 with it);
  multi-host slices on ct5lp-hightpu-4t, 4 chips per host (Cloud TPU "TPUs in GKE": a v5litepod-16 has four
  VMs of four chips; tensorflow/tpu tools/kubernetes/terraform v5e example: 4x4 = 4 nodes, 16x16 = 64 nodes);
  zones from the Cloud TPU zones page (v5litepod: us-central1-a, us-south1-a, us-west1-c, us-west4-a,
  us-west4-b, us-east5-a/b/c, europe-west4-b). Which of these zones GKE offers each slice size in: UNVERIFIED.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .facts import GB, GIB

GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
GKE_TPU_ACCELERATOR_LABEL = "cloud.google.com/gke-tpu-accelerator"
GKE_TPU_TOPOLOGY_LABEL = "cloud.google.com/gke-tpu-topology"
GPU_RESOURCE = "nvidia.com/gpu"
TPU_RESOURCE = "google.com/tpu"

Kind = Literal["gpu", "tpu", "cpu"]


@dataclass(frozen=True)
class TpuTopology:
    """One TPU slice shape as GKE names it: its chips, hosts (nodes) and the machine type of each host."""

    chips: int
    hosts: int
    machine_type: str

    @property
    def multi_host(self) -> bool:
        return self.hosts > 1

    @property
    def chips_per_host(self) -> int:
        return self.chips // self.hosts


@dataclass(frozen=True)
class PodRequests:
    """CPU and memory a trainer pod requests per accelerator unit on it (a GPU, a TPU chip) or per pod (cpu)."""

    cpu: float
    memory_gib: int


@dataclass(frozen=True)
class AcceleratorProfile:
    """How one accelerator type is scheduled on GKE, what one device holds, and how the trainer runs on it."""

    name: str  # spec.accelerator.type
    kind: Kind  # gpu: CUDA (trainer-gpu image); tpu: torch-xla (trainer-tpu image); cpu: no accelerator
    compute_dtype: str  # precision of the frozen weights and the forward pass
    device_memory_bytes: int | None  # usable memory of one device; None: not checked (CPU)
    pod_requests: PodRequests
    resource: str | None = None  # extended resource requested per pod
    node_label: str | None = None  # node label that selects the accelerator
    single_host_value: str | None = None  # its value on single-host nodes (GPU: the GPU name)
    slice_value: str | None = None  # its value on multi-host slice nodes (TPU)
    taint_key: str | None = None
    gpu_counts: tuple[int, ...] = ()  # allowed spec.accelerator.count (GPUs per pod); empty: count not allowed
    topologies: dict[str, TpuTopology] = field(default_factory=dict)  # allowed spec.accelerator.topology
    default_topology: str | None = None
    devices_per_chip: int = 1  # torch-xla devices per TPU chip (one per TensorCore)
    compute_capability: tuple[int, int] | None = None  # CUDA compute capability (bf16 from 8.0 on)
    machine_types: tuple[str, ...] = ()  # GKE machine types that carry it
    zones: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "single_host"/"slice": zones offering it
    terraform_pools: tuple[str, ...] = ()  # terraform/ module calls that create its node pools
    larger_alternative: str = ""  # what a spec that does not fit is told to use instead

    def topology(self, requested: str | None) -> TpuTopology:
        """The slice of ``spec.accelerator.topology`` (its default when unset)."""
        return self.topologies[requested or self.default_topology]

    def gpus(self, count: int | None) -> int:
        return count or 1

    def shard_devices(self, topology: str | None) -> int:
        """Devices the weights and trainable state are sharded over: every XLA device of a TPU slice (FSDP), 1 on
        a GPU (data parallelism replicates) or the CPU."""
        if self.kind != "tpu":
            return 1
        return self.topology(topology).chips * self.devices_per_chip

    def devices_per_host(self, count: int | None, topology: str | None) -> int:
        if self.kind == "tpu":
            return self.topology(topology).chips_per_host * self.devices_per_chip
        return self.gpus(count) if self.kind == "gpu" else 1

    def hosts(self, topology: str | None) -> int:
        return self.topology(topology).hosts if self.kind == "tpu" else 1

    def units_per_pod(self, count: int | None, topology: str | None) -> int:
        """Accelerator units one pod requests (GPUs, or the TPU chips of its host); 1 for the CPU."""
        if self.kind == "tpu":
            return self.topology(topology).chips_per_host
        return self.gpus(count) if self.kind == "gpu" else 1

    def node_selector(self, topology: str | None) -> dict[str, str]:
        if self.kind == "gpu":
            return {self.node_label: self.single_host_value}
        if self.kind != "tpu":
            return {}
        slice_ = self.topology(topology)
        value = self.slice_value if slice_.multi_host else self.single_host_value
        return {self.node_label: value, GKE_TPU_TOPOLOGY_LABEL: topology or self.default_topology}

    def limits(self, count: int | None, topology: str | None) -> dict[str, str]:
        if self.resource is None:
            return {}
        return {self.resource: str(self.units_per_pod(count, topology))}

    def describe(self, topology: str | None) -> str:
        """The accelerator as messages name it: the type, and the slice of a TPU."""
        return f"{self.name} {topology or self.default_topology}" if self.kind == "tpu" else self.name


def _tpu_v3_topologies() -> dict[str, TpuTopology]:
    """v3-8 (2x2) is one ct3-hightpu-4t host; slices (v3-32 = 4x4 and up) are ct3p-hightpu-4t hosts of 4 chips."""
    slices = {"4x4": 16, "4x8": 32, "8x8": 64, "8x16": 128, "16x16": 256, "16x32": 512, "32x32": 1024}
    return {"2x2": TpuTopology(4, 1, "ct3-hightpu-4t"),
            **{t: TpuTopology(chips, chips // 4, "ct3p-hightpu-4t") for t, chips in slices.items()}}


def _tpu_v5e_topologies() -> dict[str, TpuTopology]:
    """One host up to 2x4 (ct5lp-hightpu-1t/4t/8t); 4x4 and larger: ct5lp-hightpu-4t hosts of 4 chips."""
    single = {"1x1": TpuTopology(1, 1, "ct5lp-hightpu-1t"), "2x2": TpuTopology(4, 1, "ct5lp-hightpu-4t"),
              "2x4": TpuTopology(8, 1, "ct5lp-hightpu-8t")}
    slices = {"4x4": 16, "4x8": 32, "8x8": 64, "8x16": 128, "16x16": 256}
    return {**single, **{t: TpuTopology(chips, chips // 4, "ct5lp-hightpu-4t") for t, chips in slices.items()}}


_GPU = {"kind": "gpu", "resource": GPU_RESOURCE, "node_label": GKE_ACCELERATOR_LABEL, "taint_key": GPU_RESOURCE}
_TPU = {"kind": "tpu", "resource": TPU_RESOURCE, "node_label": GKE_TPU_ACCELERATOR_LABEL, "taint_key": TPU_RESOURCE,
        "compute_dtype": "bfloat16"}
_V5E_ZONES = ("us-central1-a", "us-south1-a", "us-west1-c", "us-west4-a", "us-west4-b", "us-east5-a", "us-east5-b",
              "us-east5-c", "europe-west4-b")

# Environment of every TPU trainer pod: the PJRT runtime on the TPU, and transformers' hub-kernels integration off
# (the kernels package has no XLA device: "Unsupported device type 'xla'", issue 21; gemma_trainer.xla too).
HUB_KERNELS_ENV = "USE_HUB_KERNELS"
TPU_ENV = {"PJRT_DEVICE": "TPU", HUB_KERNELS_ENV: "NO"}

ACCELERATORS: dict[str, AcceleratorProfile] = {p.name: p for p in (
    # 16 GB GDDR6, about 14.7 GB usable; compute capability 7.5: fp16, no bf16. 1, 2 or 4 per N1 node.
    # Pod requests per GPU (UNVERIFIED): sized for n1-standard-8 per T4 with room for system pods.
    AcceleratorProfile(
        name="nvidia-tesla-t4", **_GPU, single_host_value="nvidia-tesla-t4", compute_dtype="float16",
        device_memory_bytes=int(14.7 * GB), pod_requests=PodRequests(cpu=3, memory_gib=12), gpu_counts=(1, 2, 4),
        compute_capability=(7, 5), terraform_pools=("t4_pool",), larger_alternative="tpu-v3",
    ),
    # 24 GB GDDR6 (usable about 22 GB: UNVERIFIED, the driver and ECC take the rest as on the T4); compute
    # capability 8.9: bf16. G2 machines have a fixed count: 1, 2, 4 or 8. Pod requests per GPU (UNVERIFIED):
    # sized for g2-standard-8 (8 vCPU, 32 GB) per L4.
    AcceleratorProfile(
        name="nvidia-l4", **_GPU, single_host_value="nvidia-l4", compute_dtype="bfloat16",
        device_memory_bytes=22 * GB, pod_requests=PodRequests(cpu=3, memory_gib=12), gpu_counts=(1, 2, 4, 8),
        compute_capability=(8, 9), terraform_pools=("l4_pool",), larger_alternative="nvidia-h100-80gb",
        machine_types=("g2-standard-4", "g2-standard-8", "g2-standard-12", "g2-standard-16", "g2-standard-32",
                       "g2-standard-24", "g2-standard-48", "g2-standard-96"),
    ),
    # 80 GB HBM3 (usable about 79 GB: UNVERIFIED); compute capability 9.0: bf16. A3 High: a3-highgpu-8g (8 GPUs,
    # Compute Engine GPU page); a3-highgpu-1g/2g/4g (1, 2, 4 GPUs): third-party machine tables and gcloud scripts
    # only, UNVERIFIED on the GPU page. Pod requests per GPU (UNVERIFIED): well under a3-highgpu-8g's share (26 vCPU,
    # 234 GB per GPU).
    AcceleratorProfile(
        name="nvidia-h100-80gb", **_GPU, single_host_value="nvidia-h100-80gb", compute_dtype="bfloat16",
        device_memory_bytes=79 * GB, pod_requests=PodRequests(cpu=8, memory_gib=64), gpu_counts=(1, 2, 4, 8),
        compute_capability=(9, 0), terraform_pools=("h100_pool",), larger_alternative="tpu-v5e",
        machine_types=("a3-highgpu-1g", "a3-highgpu-2g", "a3-highgpu-4g", "a3-highgpu-8g"),
    ),
    # 16 GiB HBM per TensorCore, 2 TensorCores per chip (torch-xla sees each as a device), 4 chips per host.
    # Pod requests per chip (UNVERIFIED): 24 CPU and 96 GiB per host, far under a ct3(p)-hightpu-4t.
    AcceleratorProfile(
        name="tpu-v3", **_TPU, single_host_value="tpu-v3-device", slice_value="tpu-v3-slice",
        device_memory_bytes=16 * GIB, pod_requests=PodRequests(cpu=6, memory_gib=24), devices_per_chip=2,
        topologies=_tpu_v3_topologies(), default_topology="2x2",
        machine_types=("ct3-hightpu-4t", "ct3p-hightpu-4t"),
        zones={"single_host": ("us-central1-a", "us-central1-b", "europe-west4-a"), "slice": ("europe-west4-a",)},
        terraform_pools=("tpu_v3_single_host_pool", "tpu_v3_slice_pool"),
    ),
    # 16 GiB HBM per chip, ONE TensorCore per chip (one torch-xla device per chip). Pod requests per chip
    # (UNVERIFIED): 5 CPU and 10 GiB, under the smallest host's share (ct5lp-hightpu-1t: 24 vCPU, 48 GB per chip).
    AcceleratorProfile(
        name="tpu-v5e", **_TPU, single_host_value="tpu-v5-lite-podslice", slice_value="tpu-v5-lite-podslice",
        device_memory_bytes=16 * GIB, pod_requests=PodRequests(cpu=5, memory_gib=10), devices_per_chip=1,
        topologies=_tpu_v5e_topologies(), default_topology="2x2",
        machine_types=("ct5lp-hightpu-1t", "ct5lp-hightpu-4t", "ct5lp-hightpu-8t"),
        zones={"single_host": _V5E_ZONES, "slice": _V5E_ZONES},
        terraform_pools=("tpu_v5e_single_host_pool", "tpu_v5e_slice_pool"),
    ),
    AcceleratorProfile(name="cpu", kind="cpu", compute_dtype="float32", device_memory_bytes=None,
                       pod_requests=PodRequests(cpu=1, memory_gib=4)),
)}


def profile(accelerator_type: str) -> AcceleratorProfile:
    """The record of ``spec.accelerator.type``."""
    return ACCELERATORS[accelerator_type]


def names_of(kind: Kind) -> tuple[str, ...]:
    """Accelerator types of one kind, in registry order (messages list them, CEL rules test them)."""
    return tuple(name for name, p in ACCELERATORS.items() if p.kind == kind)


def spelled_list(values) -> str:
    """``a, b or c``: values as messages list them."""
    items = [str(v) for v in values]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def all_topologies() -> tuple[str, ...]:
    """Every topology some TPU type accepts, in registry order (the CRD's enum; CEL narrows it per type)."""
    return tuple(dict.fromkeys(t for p in ACCELERATORS.values() for t in p.topologies))


def all_gpu_counts() -> tuple[int, ...]:
    return tuple(sorted({c for p in ACCELERATORS.values() for c in p.gpu_counts}))
