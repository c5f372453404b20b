"""The DisTrO coefficient selection as a run setting (issue 26): run.toml's `[distro] selection` becomes the
model description's `distro_selection`, clients read it back into `DistroConfig.selection`, `psyche run create`
refuses what a client could not honour, and `run status` shows it."""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from client.run_config import RunConfigError, load_run_config
from client.run_view import _distro
from client.runner.run_model import ModelUnsupported, TrainingPlan, model_description_fields

REPO = Path(__file__).resolve().parents[2]


def _fields(**distro: object) -> dict:
    return model_description_fields({"arch": "llama"}, {"base": 1e-3}, dict(distro), "http://x/{}.bin")


@pytest.mark.parametrize(("selection", "code"), [(None, 0), ("topk", 0), ("shared", 1)])
def test_selection_round_trips_through_the_model_description(selection: str | None, code: int) -> None:
    mf = _fields() if selection is None else _fields(selection=selection, topk=15)
    assert mf["distro_selection"] == code and "pad" not in mf
    plan = TrainingPlan.from_chain(SimpleNamespace(**mf))
    assert plan.distro.selection == (selection or "topk")
    assert _distro(SimpleNamespace(**mf))["selection"] == (selection or "topk")


def test_unknown_selection_value_or_key_is_refused() -> None:
    with pytest.raises(ValueError, match="distro.selection = 'random'"):
        _fields(selection="random")
    with pytest.raises(ValueError, match="unknown key.*'selecton'"):
        _fields(selecton="shared")
    with pytest.raises(ModelUnsupported, match="distro selection is 2"):
        TrainingPlan.from_chain(SimpleNamespace(**(_fields() | {"distro_selection": 2})))


def _toml(tmp_path: Path, edit) -> Path:
    path = tmp_path / "run.toml"
    shutil.copy(REPO / "examples" / "run.toml", path)
    text = re.sub(r'(?m)^location = .*$', 'location = "http://127.0.0.1:9/data"', path.read_text())
    # the example's own choices (and their comment lines) out: each test starts from the defaults
    text = re.sub(r'(?m)^(selection|pipeline) = .*\n(?:[ \t]+#.*\n)*', '', text)
    path.write_text(edit(text))
    return path


def test_run_toml_selection_is_checked_by_run_create(tmp_path: Path) -> None:
    ok = load_run_config(_toml(tmp_path, lambda t: t.replace("[distro]", '[distro]\nselection = "shared"', 1)
                               .replace("topk = 1\n", "topk = 15\n")))
    assert ok.model_fields["distro_selection"] == 1
    with pytest.raises(RunConfigError, match="distro.selection"):
        load_run_config(_toml(tmp_path, lambda t: t.replace("[distro]", "[distro]\nselection = 1", 1)))
