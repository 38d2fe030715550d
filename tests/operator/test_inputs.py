"""The pinned inputs reach status (status.inputs, status.runs[].inputs) and exit code 5 fails the run with reason
InputsChanged and the trainer's message, through the local cluster."""

from __future__ import annotations

import pytest
from gemma_api import parse_finetune, run_id
from gemma_api.inputs import RunInputs

from tests.conftest import manifest

from .harness import active_pods, apply, wait_for, write_progress
from .test_lifecycle import conditions, ft_status, phase_is

pytestmark = pytest.mark.slow


def test_inputs_are_recorded_and_a_changed_input_fails_the_run_inputs_changed(cluster, kubeconfig, operator, bucket):
    obj = manifest(output={"uri": f"gs://{bucket.name}/runs"}, runPolicy={"backoffLimit": 3})
    rid = run_id(parse_finetune(obj).spec)
    apply(kubeconfig, obj)
    job = wait_for(phase_is(cluster, "Running"), what="Running")["jobName"]
    pinned = {"uri": "gs://data/train.jsonl", "size": 120, "generation": 1712, "md5": "bWQ1", "crc32c": "Y3Jj"}
    inputs = {"train": [pinned], "recordedAt": "2026-01-01T00:00:00Z", "trainerImage": "r/t@sha256:ab",
              "model": {"uri": "hf://google/gemma-2-2b", "revision": "c" * 40}}
    write_progress(bucket, f"runs/{rid}", step=1, inputs=inputs)
    status = wait_for(lambda: (s := ft_status(cluster)).get("inputs") and s, what="status.inputs")
    recorded = RunInputs.model_validate(inputs).to_api()  # defaults filled in (eval: [], model.files: [])
    assert status["inputs"] == recorded and status["runs"][0]["inputs"] == recorded

    message = (f"InputsChanged: gs://data/train.jsonl generation 1712 (120 bytes), pinned at the run's first start "
               f"in gs://{bucket.name}/runs/{rid}/run.json, is gone (overwritten or deleted)")
    write_progress(bucket, f"runs/{rid}", state="failed", step=1, inputs=inputs, message=message)
    (pod,) = active_pods(cluster, job)
    cluster.fail_pod(pod["metadata"]["name"], exit_code=5)
    failed = wait_for(phase_is(cluster, "Failed"), what="Failed")
    cond = conditions(failed)["Failed"]
    assert cond["reason"] == "InputsChanged" and message in cond["message"]
    assert failed["restarts"]["failures"] <= 1 and cluster.requests("POST", "Job") == 1  # permanent: not retried
    assert failed["runs"][0]["inputs"] == recorded and failed["runs"][0]["reason"] == "InputsChanged"
