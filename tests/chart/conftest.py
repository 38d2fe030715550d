"""The chart loaded once per module and rendered for every case of CASES."""

from __future__ import annotations

import helm_python
import pytest

from tests.chart.rendering import CASES, CHART, objects_of, render_raw


@pytest.fixture(scope="module")
def chart():
    loaded = helm_python.Chart.load(str(CHART))
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def rendered(chart) -> dict[str, dict[str, str]]:
    return {case: render_raw(chart, values) for case, values in CASES.items()}


@pytest.fixture(scope="module")
def objects(rendered) -> dict[str, list[dict]]:
    return {case: objects_of(out) for case, out in rendered.items()}
