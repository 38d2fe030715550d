"""What serving needs from Terraform: the Cloud Storage FUSE CSI add-on on by default, and a Google service account
that only reads the runs bucket, bound to the serving Kubernetes ServiceAccount of every trainer namespace and
handed to the chart."""

from __future__ import annotations

from tests.terraform.parse import tf_resource


def test_gcs_fuse_csi_driver_is_a_variable_that_defaults_on(tf):
    variable = tf["variable"]["enable_gcs_fuse_csi_driver"]
    assert variable["type"] in ("bool", "${bool}") and variable["default"] is True
    assert "serving" in variable["description"]


def test_serving_identity_reads_the_runs_bucket_only(tf):
    viewer = tf_resource(tf, "google_storage_bucket_iam_member", "server_object_viewer")
    assert viewer["role"] == "roles/storage.objectViewer"
    assert viewer["bucket"] == "${google_storage_bucket.runs.name}"
    assert viewer["member"] == "serviceAccount:${google_service_account.server.email}"
    wi = tf_resource(tf, "google_service_account_iam_member", "server_workload_identity")
    assert wi["for_each"] == "${toset(var.trainer_namespaces)}" and wi["role"] == "roles/iam.workloadIdentityUser"
    assert wi["member"] == "serviceAccount:${var.project_id}.svc.id.goog[${each.value}/${var.serving_ksa_name}]"
    assert tf["variable"]["serving_ksa_name"]["default"] == "gemma-server"
    grants = [r for (kind, _), r in tf["resource"].items() if kind.endswith("_iam_member")
              and r.get("member") == "serviceAccount:${google_service_account.server.email}"]
    assert grants == [viewer]


def test_the_chart_gets_the_serving_account_with_its_workload_identity(tf):
    serving = tf["locals"]["operator_values"]["serving"]
    assert serving["serviceAccount"]["name"] == "${var.serving_ksa_name}"
    assert serving["serviceAccount"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "${google_service_account.server.email}"}
