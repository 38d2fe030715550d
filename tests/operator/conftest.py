"""Fixtures of the operator tests: a local cluster (kmock + cluster layer) and the real operator."""

from __future__ import annotations

import pytest
from gemma_local.cluster import LocalCluster
from gemma_operator.render.settings import RenderSettings

from .harness import Operator


@pytest.fixture
def cluster():
    # The trainer's ServiceAccount exists, as the chart creates it; pods naming another one are refused.
    with LocalCluster(service_accounts=(RenderSettings.service_account,)) as local:
        yield local


@pytest.fixture
def kubeconfig(cluster, tmp_path):
    return cluster.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def operator_factory(kubeconfig, tmp_path, gcs):
    started: list[Operator] = []

    def make(**env: str) -> Operator:
        op = Operator(kubeconfig, env={"STORAGE_EMULATOR_HOST": gcs.url, **env}, log_dir=tmp_path)
        started.append(op)
        return op

    yield make
    for op in started:
        op.kill()


@pytest.fixture
def operator(operator_factory):
    return operator_factory().start()
