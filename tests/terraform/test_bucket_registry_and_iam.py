"""The run bucket's safety settings, the Artifact Registry image paths, and the trainer's and operator's
identities (Workload Identity, no broad project roles)."""

from __future__ import annotations

import re

from tests.terraform.parse import single_block, tf_resource


def test_bucket_settings(tf):
    b = tf_resource(tf, "google_storage_bucket", "runs")
    assert b["uniform_bucket_level_access"] is True
    assert b["public_access_prevention"] == "enforced"
    assert single_block(b, "versioning")["enabled"] is True
    rules = b["lifecycle_rule"]
    noncurrent = [r for r in rules if "days_since_noncurrent_time" in single_block(r, "condition")]
    assert len(noncurrent) == 1
    assert single_block(noncurrent[0], "condition")["days_since_noncurrent_time"] == "${var.noncurrent_version_retention_days}"
    assert single_block(noncurrent[0], "action")["type"] == "Delete"
    [dyn] = [d["lifecycle_rule"] for d in b["dynamic"] if "lifecycle_rule" in d]
    # Without prefixes there must be no rule: an age rule with no matches_prefix would delete every object.
    assert dyn["for_each"].startswith("${length(var.checkpoint_prefixes) > 0 ?")
    content = single_block(dyn, "content")
    cond = single_block(content, "condition")
    assert cond["age"] == "${var.checkpoint_retention_days}"
    assert cond["matches_prefix"] == "${lifecycle_rule.value}"
    assert single_block(content, "action")["type"] == "Delete"
    for r in rules:  # no static rule deletes current objects unconditionally
        if single_block(r, "action")["type"] == "Delete":
            assert "days_since_noncurrent_time" in single_block(r, "condition") or "matches_prefix" in single_block(r, "condition")
    [enc] = [d["encryption"] for d in b["dynamic"] if "encryption" in d]
    assert "var.bucket_kms_key_name" in enc["for_each"]


def test_artifact_registry_and_image_paths(tf):
    r = tf_resource(tf, "google_artifact_registry_repository", "images")
    assert r["format"] == "DOCKER"
    assert r["location"] == "${var.region}" and r["repository_id"] == "${var.registry_repository_id}"
    loc = tf["locals"]
    assert loc["registry_url"] == "${var.region}-docker.pkg.dev/${var.project_id}/${var.registry_repository_id}"
    for kind in ("gpu", "tpu", "cpu"):
        assert loc[f"trainer_image_{kind}"] == f"${{local.registry_url}}/gemmaft-trainer-{kind}:${{var.image_tag}}"


def test_trainer_and_operator_identities(tf):
    trainer_bucket = tf_resource(tf, "google_storage_bucket_iam_member", "trainer_object_user")
    assert trainer_bucket["role"] == "roles/storage.objectUser"
    assert trainer_bucket["bucket"] == "${google_storage_bucket.runs.name}"
    assert trainer_bucket["member"] == "serviceAccount:${google_service_account.trainer.email}"
    wi = tf_resource(tf, "google_service_account_iam_member", "trainer_workload_identity")
    assert wi["for_each"] == "${toset(var.trainer_namespaces)}"
    assert wi["role"] == "roles/iam.workloadIdentityUser"
    assert wi["service_account_id"] == "${google_service_account.trainer.name}"
    assert wi["member"] == "serviceAccount:${var.project_id}.svc.id.goog[${each.value}/${var.trainer_ksa_name}]"
    assert tf["variable"]["trainer_ksa_name"]["default"] == "gemma-trainer"

    op_bucket = tf_resource(tf, "google_storage_bucket_iam_member", "operator_object_viewer")
    assert op_bucket["role"] == "roles/storage.objectViewer"
    assert op_bucket["member"] == "serviceAccount:${google_service_account.operator.email}"
    op_wi = tf_resource(tf, "google_service_account_iam_member", "operator_workload_identity")
    assert op_wi["role"] == "roles/iam.workloadIdentityUser"
    assert op_wi["member"] == (
        "serviceAccount:${var.project_id}.svc.id.goog[${var.operator_namespace}/${var.operator_ksa_name}]")

    # Nothing is granted broad project roles: only the node account gets its four logging/monitoring roles.
    for (rtype, _), body in tf["resource"].items():
        if rtype.startswith("google_project_iam"):
            roles = body.get("for_each", "") + body.get("role", "")
            assert not re.search(r"roles/(owner|editor|storage\.admin|iam\.)", roles), roles
