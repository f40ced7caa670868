"""The Kubernetes-specific settings of the pipelines survive compilation, and KFP's own loader.

What a cluster acts on lives in the IR: the retry policy (``retryPolicy``), caching
(``cachingOptions``) and container resources (``deploymentSpec.executors.*.container.resources``).
Each is checked after ``Compiler().compile`` and again after ``load_component_from_file`` plus a
second compilation (what a KFP UI upload or a pipeline-of-pipelines does). The project's
pipelines set no resources (a cluster user adds them); the last test sets CPU, memory and an
accelerator on the project's own training component the way a user would, and checks they
reach the IR and survive the same round trip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlopsbench.tools.kfp.build import KfpSettings, compile_pipeline
from mlopsbench.tools.kfp.pipeline.pipeline_helpers import TRAIN_BACKOFF, TRAIN_RETRIES

IMAGE = "registry.example/mlopsbench:test"
TRAINING = {"digits": "train-digits", "sentiment": "prepare-sentiment-model"}


def _round_trip(path: Path, folder: Path) -> dict[str, Any]:
    """Load the compiled YAML with KFP's loader and compile the loaded pipeline again."""
    from kfp import compiler, components

    loaded = components.load_component_from_file(str(path))
    again = folder / f"again-{path.name}"
    compiler.Compiler().compile(loaded, package_path=str(again))
    return yaml.safe_load(again.read_text())


def _inner(spec: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's own spec: a recompiled pipeline wraps the loaded one as its only task."""
    tasks = spec["root"]["dag"]["tasks"]
    if len(tasks) == 1:
        (task,) = tasks.values()
        component = spec["components"][task["componentRef"]["name"]]
        if "dag" in component:
            return {"root": component, "components": spec["components"], **_rest(spec)}
    return spec


def _rest(spec: dict[str, Any]) -> dict[str, Any]:
    return {"deploymentSpec": spec["deploymentSpec"]}


def _tasks(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["root"]["dag"]["tasks"]


def _settings(spec: dict[str, Any]) -> dict[str, Any]:
    """Per task (the gate's inner promote task too): retry policy, caching, resources."""
    found: dict[str, Any] = {}
    executors = spec["deploymentSpec"]["executors"]
    components = spec["components"]

    def visit(tasks: dict[str, Any]) -> None:
        for name, task in tasks.items():
            component = components[task["componentRef"]["name"]]
            if "dag" in component:
                visit(component["dag"]["tasks"])
                continue
            container = executors[component["executorLabel"]]["container"]
            found[name] = {
                "retry": task.get("retryPolicy"),
                "cache": task.get("cachingOptions"),
                "resources": container.get("resources"),
            }

    visit(spec["root"]["dag"]["tasks"])
    return found


@pytest.mark.parametrize("usecase", ["digits", "sentiment"])
def test_retries_and_caching_survive_compilation_and_the_loader(
    usecase: str, tmp_path: Path
) -> None:
    path = compile_pipeline(usecase, KfpSettings(image=IMAGE), tmp_path / f"{usecase}.yaml")
    compiled = _settings(yaml.safe_load(path.read_text()))
    training = TRAINING[usecase]
    # Training retries (a preempted node, an OOM-killed pod) with a backoff.
    assert compiled[training]["retry"] == {
        "maxRetryCount": TRAIN_RETRIES,
        "backoffDuration": TRAIN_BACKOFF,
        "backoffFactor": 2.0,
        "backoffMaxDuration": "3600s",
    }
    assert [name for name, s in compiled.items() if s["retry"]] == [training]
    # Caching: on for the steps (same inputs, same outputs), off for the promotion, which must
    # log every run to MLflow.
    assert compiled["promote-model"]["cache"] == {}
    for name, settings in compiled.items():
        if name != "promote-model":
            assert settings["cache"] == {"enableCache": True}, name
    # No resources are set by the project: the cluster's defaults (or the user) decide.
    assert all(s["resources"] is None for s in compiled.values())

    again = _settings(_inner(_round_trip(path, tmp_path)))
    assert again == compiled


@pytest.mark.capability("kfp", "resource_hint")
def test_resources_a_user_sets_reach_the_ir_and_survive_the_loader(tmp_path: Path) -> None:
    """What a cluster user adds: requests/limits and an accelerator on the training step."""
    from kfp import compiler, dsl

    from mlopsbench.tools.kfp.pipeline.digits_pipeline import prepare_digits_data, train_digits
    from mlopsbench.tools.kfp.pipeline.pipeline_helpers import (
        lightweight_components,
        retry_training,
    )

    component = lightweight_components(IMAGE)
    prepare, train = component(prepare_digits_data), component(train_digits)

    def on_a_cluster(settings: dict = {"model": "cnn"}) -> None:  # noqa: B006 (KFP default)
        data = prepare(settings=settings)
        trained = retry_training(train(settings=settings, dataset=data.outputs["dataset"]))
        trained.set_cpu_request("2").set_cpu_limit("4")
        trained.set_memory_request("4G").set_memory_limit("8G")
        trained.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
        trained.set_caching_options(enable_caching=False)

    # KFP reads annotations as types: this module's are strings (``from __future__``).
    on_a_cluster.__annotations__ = {"settings": dict, "return": None}
    path = tmp_path / "cluster.yaml"
    pipeline = dsl.pipeline(name="digits-on-a-cluster")(on_a_cluster)
    compiler.Compiler().compile(pipeline, package_path=str(path))
    compiled = _settings(yaml.safe_load(path.read_text()))
    training = compiled["train-digits"]
    assert training["resources"]["cpuLimit"] == 4.0 and training["resources"]["cpuRequest"] == 2.0
    assert training["resources"]["memoryLimit"] == 8.0
    assert training["resources"]["memoryRequest"] == 4.0
    assert training["resources"]["accelerator"]["resourceCount"] == "1"
    assert training["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert training["retry"]["maxRetryCount"] == TRAIN_RETRIES
    assert training["cache"] == {}
    assert compiled["prepare-digits-data"]["resources"] is None

    assert _settings(_inner(_round_trip(path, tmp_path))) == compiled
