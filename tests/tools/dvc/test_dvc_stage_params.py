"""Each dvc.yaml stage lists every setting its core stage reads: DVC reruns a stage only when one
of its listed params changes, so a setting read but not listed would leave a stale result.

The core stages run with a stand-in config that records each setting read (properties such as
``SentimentConfig.data_source`` read through it, so what they read is recorded too). Only the
branches these configs take are seen (the smoke model, the bundled digits); the lists in
dvc.yaml also cover the others (hub model, fine-tuning), which need data not available offline.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlopsbench.tools.dvc import project
from mlopsbench.usecases.digits.config import DigitsConfig, DigitsDataConfig
from mlopsbench.usecases.registry import get_usecase
from mlopsbench.usecases.sentiment.config import SentimentConfig

pytestmark = pytest.mark.slow

SCRIPT_STAGE = {
    "stages/prepare_data.py": "prepare_data",
    "stages/build_model.py": "build_model",
    "stages/evaluate.py": "evaluate_model",
}


class Reads:
    """A config stand-in that records the flat name of every setting read from it."""

    def __init__(self, cfg: Any, seen: set[str], prefix: str = "") -> None:
        object.__setattr__(self, "_cfg", cfg)
        object.__setattr__(self, "_seen", seen)
        object.__setattr__(self, "_prefix", prefix)

    def __getattr__(self, name: str) -> Any:
        cfg = self._cfg
        attribute = getattr(type(cfg), name, None)
        if isinstance(attribute, property):
            return attribute.fget(self)  # type: ignore[misc]
        value = getattr(cfg, name)
        if name in {field.name for field in dataclasses.fields(cfg)}:
            if dataclasses.is_dataclass(value):
                return Reads(value, self._seen, f"{self._prefix}{name}_")
            self._seen.add(self._prefix + name)
        return value


def _declared(usecase: str) -> dict[str, set[str]]:
    """Core stage -> the params its dvc.yaml stage lists (found by the script it runs)."""
    stages = yaml.safe_load(project.pipeline_file(usecase).read_text())["stages"]
    return {
        SCRIPT_STAGE[stage["cmd"].split()[1]]: set(stage.get("params", []))
        for stage in stages.values()
    }


def _read_by_each_stage(usecase: str, cfg: Any, out: Path) -> dict[str, set[str]]:
    stages = get_usecase(usecase).stages
    seen: dict[str, set[str]] = {name: set() for name in SCRIPT_STAGE.values()}
    data = stages.prepare_data(Reads(cfg, seen["prepare_data"]), out / "data")
    model = stages.build_model(Reads(cfg, seen["build_model"]), data["data_path"], out / "model")
    stages.evaluate_model(
        Reads(cfg, seen["evaluate_model"]),
        data["data_path"],
        model["model_dir"],
        out / "eval",
        plots=False,
        history_path=model["history_path"],
    )
    return seen


@pytest.mark.parametrize(
    ("usecase", "cfg"),
    [
        (
            "digits",
            DigitsConfig(
                model="simple", epochs=1, data=DigitsDataConfig(limit_train=100, test_fraction=0.1)
            ),
        ),
        ("sentiment", SentimentConfig(smoke=True, fine_tune_epochs=1, sample_size=20)),
    ],
)
def test_every_setting_a_stage_reads_is_listed(usecase: str, cfg: Any, tmp_path: Path) -> None:
    for folder in ("data", "model", "eval"):
        (tmp_path / folder).mkdir()
    seen = _read_by_each_stage(usecase, cfg, tmp_path)
    declared = _declared(usecase)
    for stage, names in seen.items():
        assert names, f"{stage} read no setting: the stand-in recorded nothing"
        assert names <= declared[stage], f"{stage} reads {sorted(names - declared[stage])}"
