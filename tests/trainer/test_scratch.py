"""``gemmaft train``'s scratch folder lives as long as the invocation, as the trainer pod's emptyDir does.

In a cluster every attempt is a new pod (``restartPolicy: Never``) with an empty ``/tmp``: its tokenized rows,
staging and resume downloads go with it, and a resumed run reads its data files again (the versions its run
record pinned at the first start: gemma_trainer.inputs). A local
``gemmaft train`` must behave the same unless ``GEMMAFT_WORK_DIR`` names a folder to keep.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from gemma_api.run import EXIT_INPUTS_CHANGED, EXIT_INVALID_INPUT, EXIT_OK, RUN_RECORD_FILE
from gemma_trainer.tiny import make_dataset_rows

from .conftest import REPO, cli_cmd, cli_env, make_manifest, run_folder, write_jsonl


def _env_without_work_dir(tmp_path: Path, machine_tmp: Path) -> dict[str, str]:
    env = cli_env(tmp_path, TMPDIR=str(machine_tmp))
    del env["GEMMAFT_WORK_DIR"]
    return env


def test_a_rerun_reads_the_data_as_it_is_now_and_no_scratch_outlives_the_invocation(tmp_path, tiny_model_dir):
    machine_tmp = tmp_path / "machine-tmp"
    machine_tmp.mkdir()
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    weights = model / "model.safetensors"
    weights.rename(tmp_path / "weights.safetensors")  # the first attempt fails after tokenizing, at the model load
    train = write_jsonl(tmp_path / "train.jsonl", make_dataset_rows("messages", 40, seed=3))
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=model, train_uri=train, output_uri=tmp_path / "out",
                             training={"maxSteps": None, "epochs": 1, "batchSize": 4})
    env = _env_without_work_dir(tmp_path, machine_tmp)

    first = subprocess.run(cli_cmd(manifest), env=env, cwd=REPO, capture_output=True, text=True, timeout=180,
                           check=False)
    assert first.returncode == EXIT_INVALID_INPUT, first.stderr[-3000:]
    assert "tokenized 40 rows" in first.stderr, first.stderr[-3000:]
    assert not [p.name for p in machine_tmp.iterdir()], "the failed attempt left its scratch behind"

    # The user fixes the model and trims the data in place: same spec, same run id, same files. The run record
    # pinned the inputs of the first start (gemma_trainer.inputs): this attempt is refused, and leaves no scratch.
    (tmp_path / "weights.safetensors").rename(weights)
    write_jsonl(train, make_dataset_rows("messages", 8, seed=3))
    refused = subprocess.run(cli_cmd(manifest), env=env, cwd=REPO, capture_output=True, text=True, timeout=180,
                             check=False)
    assert refused.returncode == EXIT_INPUTS_CHANGED, refused.stderr[-3000:]
    assert not [p.name for p in machine_tmp.iterdir()], "the refused attempt left its scratch behind"

    # Without the pin (as a new run would start), the rerun reads the data as it is now: no tokenized rows of
    # the first attempt survive.
    (Path(run_folder(manifest)) / RUN_RECORD_FILE).unlink()
    second = subprocess.run(cli_cmd(manifest), env=env, cwd=REPO, capture_output=True, text=True, timeout=180,
                            check=False)
    assert second.returncode == EXIT_OK, second.stderr[-3000:]
    progress = json.loads((Path(run_folder(manifest)) / "progress.json").read_text())
    assert progress["totalSteps"] == 2, "8 rows at batch 4, one epoch; 10 steps means the 40 rows read first"
    assert not [p.name for p in machine_tmp.iterdir()], "the run left its scratch behind"


def test_a_work_dir_named_by_the_user_is_kept(tmp_path, tiny_model_dir):
    """``GEMMAFT_WORK_DIR`` is the user's folder: the tokenized rows stay there for the next invocation."""
    train = write_jsonl(tmp_path / "train.jsonl", make_dataset_rows("messages", 8, seed=3))
    manifest = make_manifest(tmp_path / "ft.yaml", model_dir=tiny_model_dir, train_uri=train,
                             output_uri=tmp_path / "out", training={"maxSteps": 1})
    env = cli_env(tmp_path)
    done = subprocess.run(cli_cmd(manifest), env=env, cwd=REPO, capture_output=True, text=True, timeout=180,
                          check=False)
    assert done.returncode == EXIT_OK, done.stderr[-3000:]
    assert list(Path(env["GEMMAFT_WORK_DIR"]).glob("*/data/train")), "the tokenized rows were not kept"
