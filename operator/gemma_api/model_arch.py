"""The shape of one Gemma size: what the facts table (``facts.py``) records and the memory model (``memory.py``)
reads. Pure data and arithmetic; no transformers.

A Gemma 2 or Gemma 3 decoder layer is the same in every layer. Gemma 4's are not, so a :class:`ModelArch` can
describe, per layer (:meth:`ModelArch.layer_shapes`):

* full-attention layers (one in ``GlobalAttention.every``) with their own head dimension and, where keys are the
  values (``attention_k_eq_v``), their own key/value heads and no ``v_proj``;
* the last ``kv_shared_layers`` layers reusing an earlier layer's keys and values (no ``k_proj``/``v_proj``), with
  a double-wide MLP where ``double_wide_mlp`` (transformers ``Gemma4TextMLP``);
* per-layer embeddings (:class:`PerLayerEmbeddings`): a ``[vocab, layers x width]`` table, a projection of the
  hidden state into it, and a gate and projection in every layer;
* a mixture of experts (:class:`Experts`) beside the dense MLP: a router (``router.proj``) and every expert's
  gate/up and down weights stored as 3-D parameters (``experts.gate_up_proj``, ``experts.down_proj``), not
  ``nn.Linear`` layers, so peft's ``all-linear`` does not reach them.
"""

from __future__ import annotations

from dataclasses import dataclass

ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")
LINEAR_MODULES = ATTENTION_MODULES + MLP_MODULES
# nn.Linear layers of Gemma 4 beyond the seven projections, which peft's ``all-linear`` also adapts.
PER_LAYER_INPUT_MODULES = ("per_layer_input_gate", "per_layer_projection")
ROUTER_MODULE = "router.proj"
PER_LAYER_MODEL_PROJECTION = "per_layer_model_projection"  # once per model, not per layer


@dataclass(frozen=True)
class Experts:
    """A mixture-of-experts block (transformers ``Gemma4TextExperts`` and ``Gemma4TextRouter``)."""

    count: int  # num_experts
    top_k: int  # top_k_experts: experts each token runs through
    intermediate: int  # moe_intermediate_size: each expert's gate/up width

    def params_per_layer(self, hidden: int) -> int:
        """Every expert's gate, up and down weights (all resident in memory)."""
        return self.count * 3 * hidden * self.intermediate

    def active_params_per_layer(self, hidden: int) -> int:
        """The weights one token multiplies with: its ``top_k`` experts."""
        return self.top_k * 3 * hidden * self.intermediate


@dataclass(frozen=True)
class PerLayerEmbeddings:
    """Gemma 4's per-layer input embeddings (``vocab_size_per_layer_input``, ``hidden_size_per_layer_input``)."""

    vocab: int
    width: int  # per layer


@dataclass(frozen=True)
class GlobalAttention:
    """Gemma 4's full-attention layers: one in ``every`` (the last layer always), with their own shapes."""

    every: int  # the layer pattern: every-1 sliding layers, then one full-attention layer
    head_dim: int  # global_head_dim
    kv_heads: int | None = None  # num_global_key_value_heads where keys are values (attention_k_eq_v)


@dataclass(frozen=True)
class LayerShape:
    """The projections of one decoder layer, (in_features, out_features) by module name."""

    linear: dict[str, tuple[int, int]]
    experts: int  # expert weights of the layer (3-D parameters)
    q_width: int  # heads x head_dim
    intermediate: int  # dense MLP width


@dataclass(frozen=True)
class ModelArch:
    """Dimensions of one Gemma size (transformers ``Gemma2Config`` / ``Gemma3TextConfig`` / ``Gemma4TextConfig``).

    ``params`` counts the language model the trainer loads (embeddings included, tied with the LM head);
    ``other_params`` what else the checkpoint holds (vision and audio towers, their projections into the text
    stream), which text fine-tuning never loads."""

    params: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int = 256_000
    family: str = "gemma2"  # api/families.py: chat template, tokenizer, precision row
    architecture: str = "Gemma2ForCausalLM"  # the checkpoint's class (config.json ``architectures``)
    sliding_window: int = 4096  # local attention window of the sliding layers
    max_positions: int = 8192  # max_position_embeddings: the context length
    language_model: str = ""  # the class the trainer loads when it differs (an image-text checkpoint's text part)
    other_params: int = 0
    global_attention: GlobalAttention | None = None
    kv_shared_layers: int = 0
    double_wide_mlp: bool = False
    per_layer: PerLayerEmbeddings | None = None
    experts: Experts | None = None

    @property
    def language_model_class(self) -> str:
        return self.language_model or self.architecture

    @property
    def image_text(self) -> bool:
        """The checkpoint carries more than the language model (text training loads only that)."""
        return self.language_model_class != self.architecture

    @property
    def checkpoint_params(self) -> int:
        """Everything the checkpoint holds: what a download or a merged output weighs."""
        return self.params + self.other_params

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def per_layer_embedding_params(self) -> int:
        return 0 if self.per_layer is None else self.per_layer.vocab * self.layers * self.per_layer.width

    @property
    def lookup_params(self) -> int:
        """Tables that are looked up, never multiplied: the embedding and the per-layer embeddings."""
        return self.embedding_params + self.per_layer_embedding_params

    @property
    def expert_params(self) -> int:
        return 0 if self.experts is None else self.layers * self.experts.params_per_layer(self.hidden)

    @property
    def active_params(self) -> int:
        """Parameters one token uses: every weight but its unchosen experts (a model card's "active")."""
        inactive = 0 if self.experts is None else self.layers * (
            self.experts.params_per_layer(self.hidden) - self.experts.active_params_per_layer(self.hidden))
        return self.params - inactive

    def is_global(self, layer: int) -> bool:
        every = self.global_attention.every if self.global_attention else 0
        return bool(every) and ((layer + 1) % every == 0 or layer == self.layers - 1)

    def is_kv_shared(self, layer: int) -> bool:
        return layer >= self.layers - self.kv_shared_layers

    def _attention(self, layer: int) -> dict[str, tuple[int, int]]:
        glob = self.global_attention if self.is_global(layer) else None
        head_dim = glob.head_dim if glob else self.head_dim
        k_eq_v = glob is not None and glob.kv_heads is not None
        kv_out = (glob.kv_heads if k_eq_v else self.kv_heads) * head_dim
        q_out = self.heads * head_dim
        shapes = {"q_proj": (self.hidden, q_out)}
        if not self.is_kv_shared(layer):
            shapes["k_proj"] = (self.hidden, kv_out)
            if not k_eq_v:
                shapes["v_proj"] = (self.hidden, kv_out)
        shapes["o_proj"] = (q_out, self.hidden)
        return shapes

    def layer_shape(self, layer: int) -> LayerShape:
        """The projections of decoder layer ``layer`` (0-based)."""
        width = self.intermediate * (2 if self.double_wide_mlp and self.is_kv_shared(layer) else 1)
        linear = self._attention(layer)
        linear.update({"gate_proj": (self.hidden, width), "up_proj": (self.hidden, width),
                       "down_proj": (width, self.hidden)})
        if self.per_layer is not None:
            linear.update({"per_layer_input_gate": (self.hidden, self.per_layer.width),
                           "per_layer_projection": (self.per_layer.width, self.hidden)})
        experts = 0
        if self.experts is not None:
            linear[ROUTER_MODULE] = (self.hidden, self.experts.count)
            experts = self.experts.params_per_layer(self.hidden)
        return LayerShape(linear, experts, linear["q_proj"][1], width)

    def layer_shapes(self) -> list[LayerShape]:
        return [self.layer_shape(i) for i in range(self.layers)]

    def model_linear_shapes(self) -> dict[str, tuple[int, int]]:
        """nn.Linear layers outside the decoder layers that ``all-linear`` adapts (never the LM head)."""
        if self.per_layer is None:
            return {}
        return {PER_LAYER_MODEL_PROJECTION: (self.hidden, self.layers * self.per_layer.width)}

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each LoRA-targetable projection in the first decoder layer."""
        return {n: s for n, s in self.layer_shape(0).linear.items() if n in LINEAR_MODULES}

    @property
    def peak_layer(self) -> LayerShape:
        """The widest layer's widths (what one recomputed layer holds at most)."""
        shapes = self.layer_shapes()
        return LayerShape({}, max(s.experts for s in shapes), max(s.q_width for s in shapes),
                          max(s.intermediate for s in shapes))

    @property
    def active_intermediate(self) -> int:
        """MLP width one token runs through in the widest layer: the dense MLP plus its top-k experts."""
        moe = 0 if self.experts is None else self.experts.top_k * self.experts.intermediate
        return self.peak_layer.intermediate + moe
