"""A distillation through the real operator on the local cluster: fromFineTune waits for the teacher's fine-tune,
the teacher Job runs on its accelerator, the student Job starts only after the teacher stage committed."""

from __future__ import annotations

import time

import pytest
import yaml

from tests.conftest import manifest
from tests.operator.harness import apply, condition, status_of, wait_for, write_progress

pytestmark = pytest.mark.slow

TPU = {"type": "tpu-v3", "topology": "2x2"}






def run_config_of(cluster, job):
    volumes = job["spec"]["template"]["spec"]["volumes"]
    name = next(v["configMap"]["name"] for v in volumes if "configMap" in v)
    return yaml.safe_load(next(iter(cluster.get("ConfigMap", name)["data"].values())))


def finish(cluster, job_name):
    (pod,) = cluster.pods_of(job_name)
    cluster.succeed_pod(pod["metadata"]["name"])


def test_two_stages_through_the_operator(cluster, kubeconfig, operator, bucket):
    out = f"gs://{bucket.name}/runs"
    student = manifest(model="gemma-2-2b-it", output={"uri": f"{out}/small"},
                       distillation={"teacher": {"model": "gemma-2-9b-it", "fromFineTune": "big"},
                                     "accelerator": TPU})
    student["metadata"]["name"] = "small"
    apply(kubeconfig, student)
    waiting = wait_for(lambda: status_of(cluster, "small").get("stage") == "WaitingForTeacher"
                       and status_of(cluster, "small"), what="the student waiting for big")
    assert condition(waiting, "TeacherReady")["reason"] == "WaitingForFineTune"
    assert "default/big" in waiting["message"] and waiting["phase"] == "Pending"
    assert not [j for j in cluster.list("Job") if j["metadata"]["name"].startswith("small")]

    # The teacher's own fine-tune: applied, run, succeeded (its progress says so; its pod ends).
    teacher = manifest(model="gemma-2-9b-it", accelerator=TPU, output={"uri": f"{out}/big"})
    teacher["metadata"]["name"] = "big"
    apply(kubeconfig, teacher)
    big = wait_for(lambda: status_of(cluster, "big").get("jobName") and status_of(cluster, "big"), what="big's Job")
    write_progress(bucket, f"runs/big/{big['runId']}", state="completed", step=10, totalSteps=10,
                   adapterUri=f"{out}/big/{big['runId']}/adapter")
    finish(cluster, big["jobName"])
    wait_for(lambda: status_of(cluster, "big").get("phase") == "Succeeded", what="big Succeeded")

    # Its success wakes the student (from the operator's index, not a poll): the teacher stage starts.
    teaching = wait_for(lambda: status_of(cluster, "small").get("stage") == "Teacher"
                        and status_of(cluster, "small").get("jobName") and status_of(cluster, "small"),
                        what="the teacher stage")
    teacher_job = cluster.get("Job", teaching["jobName"])
    assert teacher_job["metadata"]["name"].endswith("-teacher")
    assert teacher_job["spec"]["template"]["spec"]["nodeSelector"][
        "cloud.google.com/gke-tpu-accelerator"] == "tpu-v3-device"
    config = run_config_of(cluster, teacher_job)
    assert config["stage"] == "teacher" and config["teacher"]["adapterUri"] == f"{out}/big/{big['runId']}/adapter"
    teacher_folder = config["teacherUri"][len(f"gs://{bucket.name}/"):]

    write_progress(bucket, teacher_folder, state="training", step=2, totalSteps=4)
    running = wait_for(lambda: status_of(cluster, "small")["stages"][0].get("step") == 2
                       and status_of(cluster, "small"), what="teacher progress")
    assert running["stages"][0]["percent"] == 50.0 and running["stages"][1]["phase"] == "Waiting"

    # The teacher's pod ends before its stage is committed: no student Job yet.
    finish(cluster, teaching["jobName"])
    ended = wait_for(lambda: condition(status_of(cluster, "small"), "Ready").get("reason") == "TeacherJobDone"
                     and status_of(cluster, "small"), what="teacher Job done, stage not committed")
    assert ended["phase"] == "Pending" and ended["stage"] == "Teacher"
    assert [j["metadata"]["name"] for j in cluster.list("Job") if j["metadata"]["name"].startswith("small")] == [
        teaching["jobName"]]

    write_progress(bucket, teacher_folder, state="completed", step=4, totalSteps=4)
    learning = wait_for(lambda: status_of(cluster, "small").get("stage") == "Student"
                        and status_of(cluster, "small").get("jobName", "").endswith("-student")
                        and status_of(cluster, "small"), what="the student stage")
    student_job = cluster.get("Job", learning["jobName"])
    assert student_job["spec"]["template"]["spec"]["nodeSelector"][
        "cloud.google.com/gke-accelerator"] == "nvidia-tesla-t4"
    assert run_config_of(cluster, student_job)["stage"] == "student"
    assert condition(learning, "TeacherReady")["status"] == "True"
    assert learning["stages"][0]["phase"] == "Succeeded"

    write_progress(bucket, f"runs/small/{learning['runId']}", state="completed", step=8, totalSteps=8,
                   adapterUri=f"{out}/small/{learning['runId']}/adapter")
    finish(cluster, learning["jobName"])
    done = wait_for(lambda: status_of(cluster, "small").get("phase") == "Succeeded" and status_of(cluster, "small"),
                    what="the student Succeeded")
    assert [s["phase"] for s in done["stages"]] == ["Succeeded", "Succeeded"]
    order = ["WaitingForFineTune", "TeacherStarted", "TeacherCommitted", "StudentStarted", "Succeeded"]
    reasons = wait_for(lambda: "Succeeded" in (found := [e["reason"] for e in cluster.events_for("small")]) and found,
                       what="the Succeeded Event")
    assert [r for r in reasons if r in order] == order, " ".join(reasons)
    # A finished run stays in its student stage through later reconciles (its teacher folder is not read again).
    apply(kubeconfig, {**student, "metadata": {**student["metadata"], "labels": {"team": "a"}}})
    time.sleep(1.5)
    assert status_of(cluster, "small")["stage"] == "Student" and status_of(cluster, "small")["phase"] == "Succeeded"
    assert [e["reason"] for e in cluster.events_for("small")].count("TeacherStarted") == 1


def test_real_trainer_pods_run_the_teacher_then_the_student(tmp_path, gcs, bucket, tiny_model_dir, task):
    """The same through real ``gemmaft train`` pods (local processes): the student Job appears only once the
    teacher stage's COMMITTED marker is in the bucket, and the run ends with the student's adapter."""
    from gemma_api import RunConfig, parse_finetune
    from gemma_local.cluster import LocalCluster
    from gemma_local.pods import ProcessRunner
    from gemma_local.processes import OperatorProcess
    from gemma_operator.render.settings import RenderSettings
    from gemma_trainer.storage import open_store

    store = open_store(f"gs://{bucket.name}")
    store.upload_dir(tiny_model_dir, "model")
    for name in ("train", "eval"):
        store.write_bytes(f"data/{name}.jsonl", task[name].read_bytes())
    model, data = f"gs://{bucket.name}/model", f"gs://{bucket.name}/data"
    obj = manifest(model="gemma-2-2b", modelUri=model, accelerator={"type": "cpu"},
                   dataset={"trainUri": f"{data}/train.jsonl", "evalUri": f"{data}/eval.jsonl"},
                   training={"maxSteps": 4, "batchSize": 4, "maxSeqLength": 64, "learningRate": 0.01},
                   lora={"r": 4, "alpha": 8}, output={"uri": f"gs://{bucket.name}/runs", "checkpointEverySteps": 2},
                   distillation={"teacher": {"model": "gemma-2-9b", "modelUri": model}, "topK": 8})
    teacher_marker = RunConfig.for_finetune(parse_finetune(obj)).teacher_uri[len(f"gs://{bucket.name}/"):]
    env = {"STORAGE_EMULATOR_HOST": gcs.url, "OMP_NUM_THREADS": "1", "GEMMAFT_TEACHER_SHARD_ROWS": "16"}
    runner = ProcessRunner(tmp_path / "pods", env=env)
    with LocalCluster(runner=runner, service_accounts=(RenderSettings.service_account,)) as local:
        op = OperatorProcess(local.write_kubeconfig(tmp_path / "kubeconfig"), env=env, log_dir=tmp_path).start()
        try:
            apply(tmp_path / "kubeconfig", obj)
            student_job = wait_for(lambda: next((j for j in local.list("Job")
                                                 if j["metadata"]["name"].endswith("-student")), None),
                                   timeout=240, interval=0.05, what="the student Job")
            assert store.exists(f"{teacher_marker}/COMMITTED"), "the student Job started before the teacher commit"
            done = wait_for(lambda: status_of(local, "demo").get("phase") in ("Succeeded", "Failed")
                            and status_of(local, "demo"), timeout=240, what="the run's end")
            logs = "\n".join(p.read_text()[-2000:] for p in runner.logs.values())
            assert done["phase"] == "Succeeded", done.get("message", "") + logs
        finally:
            op.kill()
            local.call(runner.kill_all())
    assert [s["phase"] for s in done["stages"]] == ["Succeeded", "Succeeded"]
    assert student_job["metadata"]["name"] == done["jobName"]
    assert store.exists(f"runs/{done['runId']}/adapter/adapter_model.safetensors")
    metrics = store.read_text(f"runs/{done['runId']}/metrics.jsonl")
    assert '"kd_loss"' in metrics and '"ce_loss"' in metrics
