"""Gemma 3 image-text and Gemma 4 checkpoints through ``gemmaft train`` on the CPU, on tiny random checkpoints of
each architecture built here: the language model trains alone (no tower in memory), the adapter of an image-text
checkpoint loads with peft on the ORIGINAL class and changes its logits, the merged output is that class, and
the chat template and turn marker are the family's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from gemma_api.run import EXIT_OK
from gemma_trainer.tiny import dataset_texts, make_dataset_rows
from gemma_trainer.tiny_image_text import save_tiny_checkpoint

from .conftest import make_manifest, run_folder, train_in_process, write_jsonl

pytestmark = pytest.mark.slow

# tiny checkpoint kind -> the spec.model whose family (chat template, precision row) it has
KINDS = {"gemma3-image-text": "gemma-3-4b-it", "gemma4-text": "gemma-4-e2b-it", "gemma4-moe": "gemma-4-26b-a4b-it",
         "gemma4-image-text": "gemma-4-e4b-it"}
ORIGINAL_CLASSES = {"gemma3-image-text": "Gemma3ForConditionalGeneration",
                    "gemma4-image-text": "Gemma4ForConditionalGeneration"}


def _train(tmp_path, monkeypatch, kind: str, method: str = "lora", **spec) -> tuple[Path, Path]:
    rows = make_dataset_rows("messages", 24, seed=3)
    model_dir = save_tiny_checkpoint(kind, tmp_path / kind, texts=dataset_texts(rows))
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=model_dir, train_uri=train, output_uri=tmp_path / "out",
                             model=KINDS[kind], method=method, training={"maxSteps": 4, "learningRate": 3e-2},
                             lora={"r": 4, "alpha": 8, "dropout": 0.0, "targetModules": ["all-linear"]}, **spec)
    assert train_in_process(manifest, tmp_path, monkeypatch=monkeypatch) == EXIT_OK
    return model_dir, Path(run_folder(manifest))


def _logits(model, ids=((2, 10, 11, 12, 13, 14),)):
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids)).logits


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_lora_trains_every_new_architecture_and_writes_its_turn_marker(tmp_path, monkeypatch, kind):
    from transformers import AutoTokenizer

    _, run = _train(tmp_path, monkeypatch, kind)
    progress = json.loads((run / "progress.json").read_text())
    assert progress["state"] == "completed" and progress["step"] == 4
    tokenizer = AutoTokenizer.from_pretrained(run / "adapter")
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                             add_generation_prompt=True)
    assert rendered.endswith("<|turn>model\n" if kind.startswith("gemma4") else "<start_of_turn>model\n")


@pytest.mark.parametrize("kind", sorted(ORIGINAL_CLASSES))
def test_image_text_adapter_loads_on_the_original_class_and_merges_into_it(tmp_path, monkeypatch, kind):
    import transformers
    from gemma_trainer.image_text import adapter_key_mapping, load_causal_lm
    from peft import PeftModel

    model_dir, run = _train(tmp_path, monkeypatch, kind, output={"mergeAdapter": True})
    original = getattr(transformers, ORIGINAL_CLASSES[kind])
    base = original.from_pretrained(model_dir, attn_implementation="eager").eval()
    before = _logits(base)
    adapted = PeftModel.from_pretrained(base, str(run / "adapter")).eval()
    lora_modules = [n for n, m in adapted.named_modules() if hasattr(m, "lora_A")]
    assert lora_modules and all(".language_model." in n for n in lora_modules), lora_modules
    after = _logits(adapted)
    assert not torch.allclose(before, after, atol=1e-4)

    # The language-model class loads the same adapter (a distillation teacher does): same logits on text.
    language_model = load_causal_lm(model_dir, attn_implementation="eager")
    on_language_model = PeftModel.from_pretrained(language_model, str(run / "adapter"),
                                                  key_mapping=adapter_key_mapping(language_model)).eval()
    assert torch.allclose(_logits(on_language_model), after, atol=1e-4)

    merged = original.from_pretrained(run / "merged", attn_implementation="eager").eval()
    assert type(merged).__name__ == ORIGINAL_CLASSES[kind]
    assert json.loads((run / "merged" / "config.json").read_text())["architectures"] == [ORIGINAL_CLASSES[kind]]
    assert torch.allclose(_logits(merged), after, atol=1e-4)
    tower = {n: p for n, p in base.named_parameters() if "vision_tower" in n}
    assert tower and all(torch.equal(p, dict(merged.named_parameters())[n]) for n, p in tower.items())


def test_freeze_tensors_name_the_original_class(tmp_path, monkeypatch):
    from safetensors.torch import load_file
    from transformers import Gemma3ForConditionalGeneration

    model_dir, run = _train(tmp_path, monkeypatch, "gemma3-image-text", method="freeze")
    trained = load_file(str(run / "adapter" / "trainable.safetensors"))
    original = dict(Gemma3ForConditionalGeneration.from_pretrained(model_dir).named_parameters())
    assert trained and all(name.startswith("model.language_model.") and name in original for name in trained)


def test_the_language_model_is_loaded_without_its_towers(tmp_path):
    from gemma_trainer.image_text import load_causal_lm, source_of

    for kind, original in ORIGINAL_CLASSES.items():
        model = load_causal_lm(save_tiny_checkpoint(kind, tmp_path / kind), attn_implementation="eager")
        assert source_of(model).checkpoint_class == original
        assert not any("vision" in n or "audio" in n for n, _ in model.named_parameters())
