"""The DisTrO pipeline as a run setting (issue 26): run.toml's `[distro] pipeline` becomes the model
description's `distro_pipeline`, clients read it back into `TrainingPlan.pipeline` (which decides the round
order and the trainer's look-ahead), `psyche run create` refuses what a client could not honour, and
`run status` shows it (its text line: tests/program/test_coordinator_layout.py). The program's own refusal
of an out-of-range byte is in tests/program/test_coordinator_negative.py (test_each_model_rule)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from test_distro_selection_setting import _fields, _toml  # one helper for both settings

from client.run_config import RunConfigError, load_run_config
from client.run_view import _distro
from client.runner.run_model import ModelUnsupported, TrainingPlan


@pytest.mark.parametrize(("pipeline", "code", "synchronous"),
                         [(None, 0, False), ("overlapped", 0, False), ("synchronous", 1, True)])
def test_pipeline_round_trips_through_the_model_description(pipeline: str | None, code: int,
                                                            synchronous: bool) -> None:
    mf = _fields() if pipeline is None else _fields(pipeline=pipeline)
    assert mf["distro_pipeline"] == code
    plan = TrainingPlan.from_chain(SimpleNamespace(**mf))
    assert plan.pipeline == (pipeline or "overlapped") and plan.synchronous is synchronous
    assert _distro(SimpleNamespace(**mf))["pipeline"] == (pipeline or "overlapped")


def test_unknown_pipeline_value_or_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="distro.pipeline = 'sync': must be one of overlapped, synchronous"):
        _fields(pipeline="sync")
    with pytest.raises(ValueError, match="unknown key.*'pipelin'"):
        _fields(pipelin="synchronous")
    with pytest.raises(ModelUnsupported, match="distro pipeline is 2"):
        TrainingPlan.from_chain(SimpleNamespace(**(_fields() | {"distro_pipeline": 2})))


def test_run_status_names_an_unknown_pipeline_rather_than_failing() -> None:
    d = _distro(SimpleNamespace(**(_fields() | {"distro_pipeline": 7})))
    assert d["pipeline"] == "unknown (7)"


def test_run_toml_pipeline_is_checked_by_run_create(tmp_path: Path) -> None:
    ok = load_run_config(_toml(tmp_path, lambda t: t.replace("[distro]", '[distro]\npipeline = "synchronous"', 1)))
    assert ok.model_fields["distro_pipeline"] == 1
    default = load_run_config(_toml(tmp_path, lambda t: t))
    assert default.model_fields["distro_pipeline"] == 0
    for bad in ('"sync"', "1", "true"):
        with pytest.raises(RunConfigError, match="distro.pipeline"):
            load_run_config(_toml(tmp_path, lambda t, b=bad: t.replace("[distro]", f"[distro]\npipeline = {b}", 1)))

