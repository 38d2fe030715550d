"""Stage sequencing as pure decisions: fromFineTune waits, the teacher Job on its accelerator, the student Job
only after the teacher committed, per-stage status, conditions and Events."""

from __future__ import annotations

import yaml
from gemma_api import GemmaFineTuneStatus, parse_finetune
from gemma_api.run import RunProgress
from gemma_operator.reconcile.staged_run import STUDENT, TEACHER, WAITING, StagedRun
from gemma_operator.reconcile.stages import finish_stage, stage_events, stage_status
from gemma_operator.render import render_run
from gemma_operator.settings import OperatorSettings

from tests.conftest import manifest

TPU = {"type": "tpu-v3", "topology": "2x2"}


def student(teacher: dict) -> dict:
    body = manifest(model="gemma-2-2b-it", distillation={"teacher": teacher, "accelerator": TPU})
    body["metadata"]["name"] = "small"
    return body


def source(phase: str | None, model: str = "gemma-2-9b-it", adapter: str | None = "gs://out/runs/big/r1/adapter"):
    body = manifest(model=model, accelerator=TPU)
    body["metadata"]["name"] = "big"
    if phase:
        body["status"] = {"phase": phase, "outputs": {"adapterUri": adapter} if adapter else {}}
    return body


def progress(state: str, step: int = 0, total: int | None = None) -> RunProgress:
    return RunProgress(state=state, step=step, total_steps=total, updated_at="2026-11-22T12:00:00Z")


def current_stage(ft, source_body: dict | None, teacher_progress: RunProgress | None, prev: dict | None = None):
    """The stage the run is in, as a reconcile sees it: the staged run computed once, then its current stage."""
    return StagedRun.of(ft, source_body, prev or {}).current(teacher_progress, prev or {})


def rendered(ft, config) -> tuple[dict, dict]:
    objects = render_run(ft, OperatorSettings().render_settings(), "default", config=config)
    job = next(o for o in objects if o["kind"] == "Job")
    cm = next(o for o in objects if o["kind"] == "ConfigMap")
    return job, yaml.safe_load(next(iter(cm["data"].values())))


def test_from_fine_tune_waits_until_the_referenced_fine_tune_succeeded():
    ft = parse_finetune(student({"model": "gemma-2-9b-it", "fromFineTune": "big"}))
    for body, says in ((None, "does not exist"), (source(None), "Pending"), (source("Running"), "Running"),
                       (source("Succeeded", adapter=None), "Succeeded")):
        plan = current_stage(ft, body, None)
        assert plan.stage == WAITING and plan.config is None and not plan.stalled
        assert plan.reason == "WaitingForFineTune" and says in plan.message and "default/big" in plan.message
        assert plan.condition[:3] == ("TeacherReady", "False", "WaitingForFineTune")
    plan = current_stage(ft, source("Succeeded"), None)
    assert plan.stage == TEACHER and plan.config.stage == "teacher"
    assert plan.config.teacher.adapter_uri == "gs://out/runs/big/r1/adapter"
    assert plan.config.teacher.model_uri == "hf://google/gemma-2-9b-it"
    # The referenced fine-tune retrained (new run, new adapter): a new teacher key and a new student run.
    again = current_stage(ft, source("Succeeded", adapter="gs://out/runs/big/r2/adapter"), None)
    assert again.config.teacher_uri != plan.config.teacher_uri and again.config.run_id != plan.config.run_id


def test_a_referenced_fine_tune_of_another_model_stalls_with_the_fix():
    ft = parse_finetune(student({"model": "gemma-2-9b-it", "fromFineTune": "big"}))
    plan = current_stage(ft, source("Succeeded", model="gemma-2-27b-it"), None)
    assert plan.stalled and plan.reason == "TeacherMismatch" and "teacher.model: gemma-2-27b-it" in plan.message
    assert stage_events(None, plan) == [("Warning", "TeacherMismatch", plan.message)]


def test_each_stage_is_its_own_job_on_its_own_accelerator_and_the_student_waits_for_the_commit():
    ft = parse_finetune(student({"model": "gemma-2-9b-it"}))
    running = current_stage(ft, None, progress("training", 3, 10))
    assert running.stage == TEACHER and "3 of 10 shards" in running.message
    assert current_stage(ft, None, progress("preempted", 3, 10)).stage == TEACHER
    done = current_stage(ft, None, progress("completed", 10, 10))
    assert done.stage == STUDENT and done.condition[:3] == ("TeacherReady", "True", "TeacherCommitted")
    assert done.config.run_id == running.config.run_id and done.config.teacher_uri == running.config.teacher_uri
    # A run that reached its student stage stays there when the teacher's progress is not read again (finished).
    prev = {"stage": "Student", "runId": done.config.run_id}
    assert current_stage(ft, None, None, prev).stage == STUDENT
    assert current_stage(ft, None, None, {**prev, "runId": "another"}).stage == TEACHER

    teacher_job, teacher_cfg = rendered(ft, running.config)
    student_job, student_cfg = rendered(ft, done.config)
    assert teacher_job["metadata"]["name"] != student_job["metadata"]["name"]
    assert teacher_job["metadata"]["name"].endswith("-teacher")
    assert teacher_job["metadata"]["labels"]["gemmaft.dev/stage"] == "teacher"
    teacher_pod, student_pod = (j["spec"]["template"]["spec"] for j in (teacher_job, student_job))
    assert teacher_pod["nodeSelector"]["cloud.google.com/gke-tpu-accelerator"] == "tpu-v3-device"
    assert student_pod["nodeSelector"]["cloud.google.com/gke-accelerator"] == "nvidia-tesla-t4"
    assert (teacher_cfg["stage"], student_cfg["stage"]) == ("teacher", "student")
    assert teacher_cfg["teacherUri"] == student_cfg["teacherUri"] == done.config.teacher_uri


def test_status_and_events_per_stage():
    ft = parse_finetune(student({"model": "gemma-2-9b-it", "fromFineTune": "big"}))
    waiting = current_stage(ft, source("Running"), None)
    teacher = current_stage(ft, source("Succeeded"), progress("training", 4, 8))
    student_plan = current_stage(ft, source("Succeeded"), progress("completed", 8, 8))

    status = stage_status(teacher, progress("training", 4, 8), None, {"teacher": "small-x-teacher"})
    assert status["stage"] == "Teacher"
    t, s = status["stages"]
    assert (t["phase"], t["step"], t["totalSteps"], t["percent"], t["jobName"]) == ("Running", 4, 8, 50.0,
                                                                                   "small-x-teacher")
    assert s["phase"] == "Waiting"
    status = stage_status(student_plan, progress("completed", 8, 8), progress("training", 30, 120), None, "Running")
    t, s = status["stages"]
    assert (t["phase"], s["phase"], s["percent"]) == ("Succeeded", "Running", 25.0)
    # What the API server accepts in status (the CRD is generated from this model), in every student phase.
    for phase in ("Pending", "Running", "Suspended", "Succeeded", "Failed"):
        GemmaFineTuneStatus.model_validate(stage_status(student_plan, None, None, None, phase))
    GemmaFineTuneStatus.model_validate(stage_status(waiting, None, None))
    assert stage_status(waiting, None, None)["stages"][0]["message"] == waiting.message

    reasons = []
    previous = None
    for plan in (waiting, waiting, teacher, teacher, student_plan, student_plan):
        reasons += [reason for _, reason, _ in stage_events(previous, plan)]
        previous = plan.stage
    assert reasons == ["WaitingForFineTune", "TeacherStarted", "TeacherCommitted", "StudentStarted"]


def test_a_resolved_run_keeps_its_teacher_while_the_source_is_retrained_or_deleted():
    ft = parse_finetune(student({"model": "gemma-2-9b-it", "fromFineTune": "big"}))
    first = current_stage(ft, source("Succeeded"), None)
    begun: dict = {"phase": "Running", "runId": first.config.run_id}
    status, _ = finish_stage(first, {}, begun, None, None, "2026-11-22T12:00:00Z", 1)
    assert begun == {"phase": "Running", "runId": first.config.run_id}, "finish_stage returns a new status"
    GemmaFineTuneStatus.model_validate(status)
    assert status["teacher"]["adapterUri"] == "gs://out/runs/big/r1/adapter"
    for body in (source("Running", adapter=None), None):  # retraining (no adapter yet), or deleted
        kept = current_stage(ft, body, None, status)
        assert kept.stage == TEACHER and kept.config.run_id == first.config.run_id
    # Its next success brings a new adapter: a new teacher, a new run.
    renewed = current_stage(ft, source("Succeeded", adapter="gs://out/runs/big/r2/adapter"), None, status)
    assert renewed.config.run_id != first.config.run_id
    # The record belongs to that source only.
    other = parse_finetune(student({"model": "gemma-2-9b-it", "fromFineTune": "bigger"}))
    assert current_stage(other, None, None, status).stage == WAITING


def test_gemmaft_render_shows_one_job_per_stage_on_its_accelerator(capsys):
    from gemmaft.cli import main

    from tests.conftest import EXAMPLES

    assert main(["render", "-f", str(EXAMPLES / "gitops" / "finetunes" / "support-student-2b-t4.yaml")]) == 0
    out = capsys.readouterr()
    jobs = [o for o in yaml.safe_load_all(out.out) if o["kind"] == "Job"]
    assert [j["metadata"]["labels"]["gemmaft.dev/stage"] for j in jobs] == ["teacher", "student"]
    selectors = [j["spec"]["template"]["spec"]["nodeSelector"] for j in jobs]
    assert selectors[0]["cloud.google.com/gke-tpu-accelerator"] == "tpu-v3-device"
    assert selectors[1]["cloud.google.com/gke-accelerator"] == "nvidia-tesla-t4"
    assert "support-teacher-9b" in out.err  # the teacher the operator resolves


def test_a_committed_teacher_is_not_read_again_and_its_counts_stay_in_status():
    """In the student stage the teacher's outputs are committed and never change: its progress.json is not read
    on each reconcile (one storage read per reconcile saved), and status keeps the teacher's shard counts."""
    ft = parse_finetune(student({"model": "gemma-2-9b-it"}))
    staged = StagedRun.of(ft, None, {})
    done = staged.current(progress("completed", 8, 8), {})
    run = done.config.run_id

    def folders(status: dict) -> tuple:
        return staged.progress_folders(status, [], [], frozenset())

    both = (staged.run_uri, staged.teacher_uri)
    assert folders({}) == both  # first sight
    assert folders({"stage": TEACHER, "runId": run}) == both  # the teacher pass runs
    assert folders({"stage": STUDENT, "runId": "another"}) == both  # a new run's teacher
    assert folders({"stage": STUDENT, "runId": run}) == (staged.run_uri, None)
    assert folders({"stage": STUDENT, "runId": run, "phase": "Succeeded"}) == (None, None), "a finished run"

    status, _ = finish_stage(done, {}, {"phase": "Running", "runId": run}, progress("completed", 8, 8),
                             progress("training", 3, 12), "2026-11-22T12:00:00Z", 1)
    later, _ = finish_stage(done, status, {"phase": "Running", "runId": run}, None, progress("training", 6, 12),
                            "2026-11-22T12:01:00Z", 1)
    teacher, student_stage = later["stages"]
    assert (teacher["phase"], teacher["step"], teacher["totalSteps"], teacher["percent"]) == ("Succeeded", 8, 8, 100.0)
    assert (student_stage["step"], student_stage["percent"]) == (6, 50.0)


def test_decide_follows_the_staged_run_the_runtime_computed_and_does_not_plan_again():
    """The runtime computes the staged run once (before it reads progress files) and hands it over in
    Observed; decide resolves nothing again. Here the referenced fine-tune succeeded when the run was staged and
    is gone from what decide is given: the decision still starts the teacher stage of that run."""
    from gemma_operator.reconcile import Observed, decide
    from gemma_operator.reconcile.staged_run import staged_run

    body = student({"model": "gemma-2-9b-it", "fromFineTune": "big"})
    staged = staged_run(body, source("Succeeded"))
    assert staged.run_id is not None and staged.waiting is None
    decision = decide(Observed(body=body, source=None, staged=staged), OperatorSettings())
    assert decision.wire_status["stage"] == TEACHER and decision.wire_status["runId"] == staged.run_id
    assert [o["metadata"]["labels"]["gemmaft.dev/stage"] for o in decision.create if o["kind"] == "Job"] == \
        ["teacher"]
    unresolved = decide(Observed(body=body, source=None), OperatorSettings())  # staged here from body and source
    assert unresolved.wire_status["stage"] == WAITING and not unresolved.create


def test_a_finished_distillation_whose_evaluation_changed_gets_an_evaluate_job_for_the_student():
    """Editing only spec.evaluation of a finished distillation re-evaluates the student's adapter in a Job of its
    own, on the student's accelerator, under the same run id (nothing is retrained); it used to wait for a
    gate that never came (Evaluated False, 'waits for training to finish', on a Succeeded run)."""
    from gemma_operator.reconcile import Observed, decide
    from gemma_operator.reconcile.staged_run import staged_run

    evaluation = {"evalUri": "gs://bkt/eval.jsonl", "checks": [{"type": "exactMatch", "minScore": 0.5}]}
    body = student({"model": "gemma-2-9b-it"})
    body["spec"]["evaluation"] = evaluation
    body["metadata"].update(uid="u1", generation=2)
    staged = staged_run(body, None)
    old_gate = {"passed": True, "evaluationKey": "old", "message": "1 checks passed",
                "checks": [{"type": "exactMatch", "minScore": 0.5, "score": 1.0, "passed": True}]}
    body["status"] = {"runId": staged.run_id, "phase": "Succeeded", "completionTime": "T1", "attempt": 0,
                      "stage": STUDENT, "job": {"name": "small-student-0", "uid": "u", "attempt": 0,
                                                "stage": "student"},
                      "outputs": {"runUri": staged.run_uri, "adapterUri": f"{staged.run_uri}/adapter"},
                      "evaluation": old_gate}
    decision = decide(Observed(body=body, now="T2"), OperatorSettings())
    (job,) = [o for o in decision.create if o["kind"] == "Job"]
    assert job["metadata"]["labels"]["gemmaft.dev/stage"] == "evaluate"
    assert job["spec"]["template"]["spec"]["nodeSelector"]["cloud.google.com/gke-accelerator"] == "nvidia-tesla-t4"
    (cm,) = [o for o in decision.create if o["kind"] == "ConfigMap"]
    config = yaml.safe_load(next(iter(cm["data"].values())))
    assert (config["stage"], config["runId"]) == ("evaluate", staged.run_id)
    status = decision.wire_status
    assert status["runId"] == staged.run_id and status["job"]["stage"] == "evaluate"
    assert status["phase"] in ("Pending", "Running") and "Reevaluating" in [e.reason for e in decision.events]
    assert status["stage"] == STUDENT, "the run stays in its student stage"
    # The evaluate Job completes with the new gate in progress.json: the run is Succeeded again, evaluated.
    from gemma_api.evaluation import evaluation_key

    from tests.operator.test_reconcile_unit import applied, job_of

    new_gate = {**old_gate, "evaluationKey": evaluation_key(staged.ft.spec)}
    finished = {**job_of(decision), "status": {"succeeded": 1, "completionTime": "T3",
                                               "conditions": [{"type": "Complete", "status": "True"}]}}
    done = RunProgress.model_validate({"state": "completed", "step": 0, "updatedAt": "T3", "evaluation": new_gate})
    after = decide(Observed(body=applied(body, decision), jobs=[finished], progress=done, now="T3"),
                   OperatorSettings()).wire_status
    assert after["phase"] == "Succeeded" and after["stage"] == STUDENT
    assert after["evaluation"]["evaluationKey"] == evaluation_key(staged.ft.spec)
    evaluated = next(c for c in after["conditions"] if c["type"] == "Evaluated")
    assert (evaluated["status"], evaluated["reason"]) == ("True", "ChecksPassed")
