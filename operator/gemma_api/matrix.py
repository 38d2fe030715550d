"""What fits where: every model x method x accelerator, with the memory per device, from the one memory model.

``gemmaft plan --matrix`` prints it; ``docs/models.md`` holds it as generated (tests/api/test_matrix.py checks that
the table there is current). Each cell is a spec with the API's training defaults (or the batch and sequence
length asked for) run through :func:`~gemma_api.memory.estimate` and the rules ``gemmaft validate``
applies (:func:`~gemma_api.rules.check_rules`): one GPU for GPU types (data parallelism replicates the
model), and for TPU types the smallest slice that fits (FSDP shards weights and trainable state over it), or the
largest when none does. A method the accelerator cannot run (qlora off CUDA) is a cell without a number.
"""

from __future__ import annotations

from dataclasses import dataclass

from .accelerators import ACCELERATORS, profile
from .facts import GB, MODELS
from .memory import MemoryEstimate, estimate
from .methods import METHODS as METHOD_RECORDS
from .rules import check_rules
from .spec import GemmaFineTuneSpec

METHODS = tuple(METHOD_RECORDS)  # the method registry's order: lora, qlora, freeze, full
FIT_FIELD = "spec.method"  # the field check_rules names when a spec does not fit (rules.check_fit)


@dataclass(frozen=True)
class Cell:
    model: str
    method: str
    accelerator: str
    topology: str | None
    memory: MemoryEstimate | None  # None: the accelerator cannot run the method
    refusal: str = ""  # why, when it cannot

    @property
    def fits(self) -> bool:
        return self.memory is not None and self.memory.fits

    def text(self) -> str:
        if self.memory is None:
            return "n/a"
        where = f" ({self.topology})" if self.topology else ""
        return f"{self.memory.per_device / GB:.1f} GB{where} {'fits' if self.fits else 'no'}"


def matrix_models() -> list[str]:
    """One name per size: an -it variant has its base model's shape."""
    return [m for m in MODELS if not m.endswith("-it")]


def matrix_accelerators() -> list[str]:
    return [name for name, p in ACCELERATORS.items() if p.device_memory_bytes is not None]


def cell_spec(model: str, method: str, accelerator: str, topology: str | None = None, batch_size: int | None = None,
              max_seq_length: int | None = None) -> GemmaFineTuneSpec:
    """The spec one cell stands for (what ``gemmaft validate`` and ``gemmaft plan`` would be given)."""
    training = {k: v for k, v in (("batchSize", batch_size), ("maxSeqLength", max_seq_length)) if v is not None}
    acc = {"type": accelerator, **({"topology": topology} if topology else {})}
    return GemmaFineTuneSpec.model_validate({
        "model": model, "method": method, "dataset": {"trainUri": "gs://data/train.jsonl"}, "training": training,
        "accelerator": acc, "output": {"uri": "gs://out/runs"}})


def _placements(accelerator: str) -> list[str | None]:
    record = profile(accelerator)
    if record.kind != "tpu":
        return [None]
    return sorted(record.topologies, key=lambda t: record.topologies[t].chips)


def matrix_cell(model: str, method: str, accelerator: str, **shape) -> Cell:
    """One cell: the first placement that fits (one GPU; the smallest TPU slice), else the last one tried."""
    cell = None
    for topology in _placements(accelerator):
        spec = cell_spec(model, method, accelerator, topology, **shape)
        refusals = [p.message for p in check_rules(spec) if p.field != FIT_FIELD or "does not fit" not in p.message]
        if refusals:
            return Cell(model, method, accelerator, topology, None, refusals[0])
        cell = Cell(model, method, accelerator, topology, estimate(spec))
        if cell.fits:
            return cell
    return cell


def fit_matrix(models=None, methods=METHODS, accelerators=None, **shape) -> list[Cell]:
    return [matrix_cell(model, method, acc, **shape) for model in (models or matrix_models()) for method in methods
            for acc in (accelerators or matrix_accelerators())]


def markdown(cells: list[Cell]) -> str:
    """The matrix as a Markdown table: a row per model and method, a column per accelerator."""
    accelerators = list(dict.fromkeys(c.accelerator for c in cells))
    rows = ["| model | method | " + " | ".join(accelerators) + " |",
            "|---|---|" + "---|" * len(accelerators)]
    by_row: dict[tuple[str, str], dict[str, Cell]] = {}
    for c in cells:
        by_row.setdefault((c.model, c.method), {})[c.accelerator] = c
    for (model, method), row in by_row.items():
        rows.append(f"| {model} | {method} | " + " | ".join(row[a].text() for a in accelerators) + " |")
    return "\n".join(rows) + "\n"


def models_markdown() -> str:
    """The sizes: checkpoint class, the class trained, parameters of the language model and of the towers."""
    rows = ["| model | checkpoint class | trained as | language model parameters | towers (not loaded) | context |",
            "|---|---|---|---|---|---|"]
    for model in matrix_models():
        a = MODELS[model]
        extra = []
        if a.experts:
            extra.append(f"{a.experts.count} experts, top {a.experts.top_k}: {a.active_params / 1e9:.1f}B active")
        if a.per_layer:
            extra.append(f"per-layer embeddings {a.per_layer_embedding_params / 1e9:.2f}B")
        note = f" ({'; '.join(extra)})" if extra else ""
        rows.append(f"| {model} | {a.architecture} | {a.language_model_class} | {a.params / 1e9:.2f}B{note} | "
                    f"{a.other_params / 1e6:.0f}M | {a.max_positions:,} |")
    return "\n".join(rows) + "\n"


# docs/models.md holds both tables between these markers (tests/api/test_matrix.py keeps them current).
GENERATED = {"models": models_markdown, "matrix": lambda: markdown(fit_matrix())}


def generated_section(name: str) -> tuple[str, str]:
    return f"<!-- generated: {name} (gemmaft plan --matrix) -->\n", f"<!-- end generated: {name} -->\n"


def refresh(text: str) -> str:
    """``text`` (docs/models.md) with every generated section rewritten from the facts and the memory model."""
    for name, build in GENERATED.items():
        start, end = generated_section(name)
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        text = head + start + build() + end + tail
    return text
