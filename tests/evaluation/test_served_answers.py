"""The served adapter answers what the evaluation stage scored.

The serving Deployment's own arguments and GCS volumes are followed the way vLLM's OpenAI server follows them: the
base model from ``--model``, the adapter folder named by ``--lora-modules`` (as the Cloud Storage FUSE volume shows
it: the run's objects in the bucket, nothing else), ``--dtype``, the tokenizer's chat template with the generation
prompt, greedy decoding (temperature 0) up to the end of turn or ``max_tokens``. vLLM does not run on this machine,
so transformers loads those same files. The serving accelerator is a T4, whose ``--dtype`` for Gemma 2 is float32
(vLLM refuses float16 for it): the arithmetic of the CPU evaluation, so the answers must be equal, row for row.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from gemma_api import parse_finetune, run_id, run_uri
from gemma_api.run import EXIT_OK
from gemma_operator.render import RenderSettings, ServedRun, render_serving
from gemma_trainer.storage import open_store
from gemma_trainer.tiny import make_dataset_rows

from tests.trainer.conftest import make_manifest, train_in_process, write_jsonl

pytestmark = pytest.mark.slow

EVALUATION = {"maxNewTokens": 8, "batchSize": 4, "checks": [{"type": "regex", "pattern": ".", "minScore": 0.0}]}


def _mounted(deployment: dict, root: Path) -> dict[str, Path]:
    """Each GCS FUSE volume's folder copied from the bucket to a local folder: {mountPath: folder}."""
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    paths = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    out = {}
    for volume in pod["volumes"]:
        if "csi" not in volume:
            continue
        attributes = volume["csi"]["volumeAttributes"]
        folder = attributes["mountOptions"].split("only-dir=", 1)[1]
        local = root / volume["name"]
        open_store(f"gs://{attributes['bucketName']}").download_dir(folder, local)
        out[paths[volume["name"]]] = local
    return out


def _engine_inputs(deployment: dict, mounts: dict[str, Path]) -> tuple[Path, Path, str]:
    """(base model folder, adapter folder, dtype) as the vLLM arguments name them, paths through the mounts."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    value = {flag: args[i + 1] for i, flag in enumerate(args[:-1]) if flag.startswith("--")}

    def local(path: str) -> Path:
        return mounts.get(path) or Path(path)

    adapter_path = value["--lora-modules"].split("=", 1)[1]
    return local(value["--model"]), local(adapter_path), value["--dtype"]


def _served_answers(base: Path, adapter: Path, dtype: str, prompts: list[str], max_tokens: int) -> list[str]:
    """One chat request per prompt, greedy, as the OpenAI server answers it (special tokens skipped)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, dtype))
    model = PeftModel.from_pretrained(model, adapter).eval()  # the adapter folder alone, no key mapping
    stop = [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<end_of_turn>")]
    answers = []
    for prompt in prompts:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=max_tokens, do_sample=False, top_p=None, top_k=None,
                                 eos_token_id=stop, pad_token_id=tokenizer.pad_token_id)
        answers.append(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
    return answers


def test_the_served_adapter_answers_as_the_evaluation_stage_did(tmp_path, tiny_model_dir, bucket, monkeypatch):
    store = open_store(f"gs://{bucket.name}")
    store.upload_dir(tiny_model_dir, "model")
    rows = make_dataset_rows("prompt-completion", 32, seed=1)
    path = make_manifest(tmp_path / "ft.yaml", model_dir=f"gs://{bucket.name}/model",
                         train_uri=write_jsonl(tmp_path / "train.jsonl", rows[:24]),
                         eval_uri=write_jsonl(tmp_path / "eval.jsonl", rows[24:]),
                         output_uri=f"gs://{bucket.name}/runs", training={"maxSteps": 4}, evaluation=EVALUATION,
                         serving={"accelerator": {"type": "nvidia-tesla-t4"}})
    assert train_in_process(path, tmp_path, monkeypatch=monkeypatch) == EXIT_OK
    ft = parse_finetune(yaml.safe_load(path.read_text()))
    rid = run_id(ft.spec)
    results = json.loads(store.read_text(f"runs/{rid}/evaluation/results.json"))
    served = ServedRun(rid, run_uri(ft.spec, rid))
    (deployment,) = [o for o in render_serving(ft, RenderSettings(), "default", served) if o["kind"] == "Deployment"]

    base, adapter, dtype = _engine_inputs(deployment, _mounted(deployment, tmp_path / "pod"))
    assert dtype == "float32" and (adapter / "adapter_config.json").is_file()
    answers = _served_answers(base, adapter, dtype, [a["prompt"] for a in results["answers"]],
                              EVALUATION["maxNewTokens"])
    assert [a.strip() for a in answers] == [a["tuned"] for a in results["answers"]]
    assert [a["tuned"] for a in results["answers"]] != [a["base"] for a in results["answers"]], \
        "the adapter changes the answers (else serving the base alone would pass this test)"
    assert len(answers) == results["rows"] == 8
