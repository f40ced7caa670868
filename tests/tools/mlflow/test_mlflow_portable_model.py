"""A registered model loads where only its own requirements.txt is installed (no mlopsbench).

A fresh virtualenv (``python -m venv``, no system site-packages) gets ``pip install -r`` of the
model's requirements.txt, read back from the registry, and nothing else; it then loads
``models:/<name>@champion`` from the same SQLite store and prints its predictions, which must be
the in-process ones. The digits model goes first; the sentiment model's requirements (digits'
plus transformers and tokenizers) are then installed into the same virtualenv, which keeps the
module to one ~1-2 minute install. A registry that cannot be reached skips (pip's network
errors); any other pip failure fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlopsbench import tracking

VENV_TIMEOUT_S = 120
INSTALL_TIMEOUT_S = 480
LOAD_TIMEOUT_S = 300
# pip's words for "the registry cannot be reached" (a bad pin is a failure, not a skip).
NETWORK_ERRORS = (
    "NewConnectionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "Connection refused",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyError",
    "Could not fetch URL",
)

# Runs in the fresh virtualenv: load from the registry, predict, say where mlopsbench came from.
LOAD_SCRIPT = """
import importlib.util, json, sys
assert importlib.util.find_spec("mlopsbench") is None, "mlopsbench is installed in the venv"
import mlflow, mlflow.pyfunc
import numpy as np, pandas as pd
uri, ref, usecase, inputs = sys.argv[1:5]
mlflow.set_tracking_uri(uri)
mlflow.set_registry_uri(uri)
model = mlflow.pyfunc.load_model(ref)
if usecase == "digits":
    preds = model.predict(np.load(inputs))
else:
    with open(inputs) as f:
        preds = model.predict(pd.DataFrame({"text": json.load(f)}))["label"].to_numpy()
import mlopsbench
print(json.dumps({"preds": preds.tolist(), "dtype": str(preds.dtype),
                  "mlopsbench": mlopsbench.__file__}))
"""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _env() -> dict[str, str]:
    """The test environment (sandboxed HOME/TMPDIR, offline HF) minus anything that would
    leak this virtualenv into the fresh one."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")
    return {k: v for k, v in os.environ.items() if k not in drop}


def _pip_install(python: Path, requirements: Path) -> float:
    """``pip install -r requirements``; seconds taken. Skips only when the registry is away."""
    start = time.perf_counter()
    done = subprocess.run(
        # --retries: pip names a connection error only in its retry warnings (default 5).
        [str(python), "-m", "pip", "install", "--retries", "5", "-r", str(requirements)],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        env=_env(),
        check=False,
    )
    if done.returncode != 0:
        output = done.stdout + done.stderr
        network = [line for line in output.splitlines() if any(m in line for m in NETWORK_ERRORS)]
        if network:
            pytest.skip(f"package registry unreachable: {network[0].strip()[:300]}")
        pytest.fail(f"pip install -r {requirements.name} failed:\n{output[-4000:]}")
    return time.perf_counter() - start


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A bare virtualenv's interpreter: no mlopsbench, no site-packages of ours.

    Removed afterwards: with torch it weighs ~2 GB, and test sandboxes are kept.
    """
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "venv", str(venv)],
        check=True,
        timeout=VENV_TIMEOUT_S,
        env=_env(),
    )
    print(f"\nfresh venv created in {time.perf_counter() - start:.1f} s")
    yield venv / "bin" / "python"
    shutil.rmtree(venv, ignore_errors=True)


@pytest.fixture(scope="module")
def portable_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A SQLite store of this module's own (not the folder's shared ``store``)."""
    root = tmp_path_factory.mktemp("portable-store")
    return {"root": root, "uri": tracking.default_tracking_uri(root)}


def _register_champion(
    store: dict[str, Any],
    usecase: str,
    name: str,
    model_dir: Path,
    settings: dict[str, Any] | None = None,
) -> Path:
    """Log, register and promote the model; return its requirements.txt from the registry."""
    mlflow = tracking.import_mlflow()
    client, experiment_id = tracking.open_experiment(store["uri"], usecase, store["root"])
    with mlflow.start_run(experiment_id=experiment_id) as run:
        start = time.perf_counter()
        info = tracking.log_core_model(usecase, model_dir, settings=settings)
        print(f"\nlog_core_model({usecase}) took {time.perf_counter() - start:.2f} s")
    version = tracking.register_model_version(client, info.model_uri, name, run.info.run_id)
    client.set_registered_model_alias(name, tracking.CHAMPION, version.version)
    folder = mlflow.artifacts.download_artifacts(
        f"models:/{name}@{tracking.CHAMPION}", dst_path=str(store["root"] / f"{name}-download")
    )
    return Path(folder) / "requirements.txt"


def _load_in_venv(
    python: Path, store: dict[str, Any], ref: str, usecase: str, inputs: Path
) -> dict[str, Any]:
    script = inputs.parent / "load_model.py"
    script.write_text(LOAD_SCRIPT)
    start = time.perf_counter()
    done = subprocess.run(
        [str(python), "-I", str(script), store["uri"], ref, usecase, str(inputs)],
        capture_output=True,
        text=True,
        timeout=LOAD_TIMEOUT_S,
        env=_env(),
        cwd=inputs.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    print(f"load + predict in the fresh venv: {time.perf_counter() - start:.1f} s")
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_digits_champion_loads_in_a_fresh_venv(
    fresh_python: Path, portable_store: dict[str, Any], tmp_path: Path
) -> None:
    from mlopsbench.usecases.digits.evaluate import predict
    from mlopsbench.usecases.digits.models import build_model
    from mlopsbench.usecases.digits.storage import load_model, save_model

    model_dir = save_model(build_model("simple"), "simple", tmp_path / "model")
    requirements = _register_champion(portable_store, "digits", "digits-portable", model_dir)
    assert "mlopsbench" not in requirements.read_text()
    seconds = _pip_install(fresh_python, requirements)
    print(f"pip install -r requirements.txt (digits): {seconds:.1f} s")
    images = np.random.default_rng(0).integers(0, 256, (64, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    out = _load_in_venv(
        fresh_python,
        portable_store,
        "models:/digits-portable@champion",
        "digits",
        tmp_path / "images.npy",
    )
    assert "/code/mlopsbench/" in out["mlopsbench"]  # the core shipped with the model
    assert out["dtype"] == "int64"
    assert out["preds"] == predict(load_model(model_dir), images).tolist()


def test_sentiment_champion_loads_in_a_fresh_venv(
    fresh_python: Path, portable_store: dict[str, Any], tmp_path: Path
) -> None:
    import pandas as pd

    from mlopsbench.usecases.sentiment.config import SentimentConfig
    from mlopsbench.usecases.sentiment.data import load_test_reviews
    from mlopsbench.usecases.sentiment.infer import predict
    from mlopsbench.usecases.sentiment.model import load_classifier, save_classifier
    from mlopsbench.usecases.sentiment.tiny import build_tiny_model, build_tokenizer

    texts = list(load_test_reviews(SentimentConfig(smoke=True)).texts)
    tokenizer = build_tokenizer(texts)
    model_dir = save_classifier(
        build_tiny_model(len(tokenizer), seed=1), tokenizer, tmp_path / "sentiment-model"
    )
    settings = {"batch_size": 4, "max_length": 32, "truncation": "chars"}
    requirements = _register_champion(
        portable_store, "sentiment", "sentiment-portable", model_dir, settings
    )
    seconds = _pip_install(fresh_python, requirements)
    print(f"pip install -r requirements.txt (sentiment, on top of digits'): {seconds:.1f} s")
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    out = _load_in_venv(
        fresh_python,
        portable_store,
        "models:/sentiment-portable@champion",
        "sentiment",
        tmp_path / "texts.json",
    )
    assert "/code/mlopsbench/" in out["mlopsbench"]
    core_model, core_tokenizer = load_classifier(model_dir)
    expected = predict(core_model, core_tokenizer, texts, **settings).preds
    assert out["dtype"] == "int64" and out["preds"] == expected.tolist()
    in_process = tracking.load_registered_model("models:/sentiment-portable@champion")
    assert in_process.predict(pd.DataFrame({"text": texts}))["label"].tolist() == out["preds"]
