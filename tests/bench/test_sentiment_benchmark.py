"""The sentiment speed benchmark script: its workload and one tiny end-to-end run.

The speed target itself is checked by running the script (see README), not here.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "sentiment_infer.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sentiment_infer_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_synthetic_reviews_are_balanced_with_imdb_like_lengths(bench: ModuleType) -> None:
    texts, labels = bench.synthetic_reviews(500, seed=0)
    words = np.array([len(t.split()) for t in texts])
    assert len(texts) == 500 and labels.sum() == 250
    assert 200 <= words.mean() <= 260 and words.max() > 800  # mean ~230, long tail
    assert texts == bench.synthetic_reviews(500, seed=0)[0]  # seeded
    # Each review is built from its own class's sentences: the two classes share few words.
    pos = {w for t, y in zip(texts, labels, strict=True) if y for w in t.split()}
    neg = {w for t, y in zip(texts, labels, strict=True) if not y for w in t.split()}
    assert len(pos & neg) < 0.8 * min(len(pos), len(neg))


def test_tiny_run_writes_figures_and_guard_info(bench: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = ["--n", "6", "--weights", "random", "--skip-paper", "--precisions", "fp32,bf16"]
    assert bench.main([*argv, "--max-length", "64", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    runs = figures["runs"]
    assert set(runs) == {"fp32", "bf16"} and figures["info"]["batch_size"] == 8
    assert runs["fp32"]["seconds"] > 0 and runs["fp32"]["tokens_per_s"] > 0
    # 6 reviews < 32: all of them are calibration reviews, so bf16 returns fp32's labels.
    assert runs["bf16"]["guard_calibration_size"] == 6
    assert runs["bf16"]["agreement_with_core_fp32"] == 1.0


def test_bad_arguments_exit_with_a_message(bench: ModuleType) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(["--precisions", "fp32,fp8"])
    assert exc.value.code == 2
