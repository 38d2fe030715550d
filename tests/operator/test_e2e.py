"""End to end against a real cluster (KUBECONFIG set, the CRD installed, the operator running there)."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from tests.conftest import manifest

from .harness import KUBECTL, wait_for

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="no real cluster: KUBECONFIG is not set")]


def kubectl_json(*args):
    import json

    out = subprocess.run([KUBECTL, *args, "-o", "json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_invalid_spec_is_refused_and_valid_one_gets_a_job():
    import yaml

    name = f"e2e-{uuid.uuid4().hex[:6]}"
    obj = manifest(accelerator={"type": "cpu"}, output={"uri": "/tmp/out"})
    obj["metadata"]["name"] = name
    subprocess.run([KUBECTL, "apply", "-f", "-"], input=yaml.safe_dump(obj), text=True, check=True)
    try:
        status = wait_for(lambda: kubectl_json("get", "gft", name).get("status", {}).get("jobName")
                          and kubectl_json("get", "gft", name)["status"], timeout=120, what="jobName")
        job = kubectl_json("get", "job", status["jobName"])
        assert job["metadata"]["ownerReferences"][0]["name"] == name
    finally:
        subprocess.run([KUBECTL, "delete", "gft", name, "--wait=false"], check=False)
