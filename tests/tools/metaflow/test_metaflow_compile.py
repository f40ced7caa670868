"""The flows compiled for production schedulers, without a cluster, and what comes out checked.

``python flow.py --datastore s3 argo-workflows create --only-json`` prints the Argo
WorkflowTemplate; ``python flow.py --datastore s3 airflow create dag.py`` writes an Airflow DAG
file. Both need an S3 datastore only to upload the flow's code package (the pods download it at
run time), so a tiny S3-compatible stub on 127.0.0.1 stands in for the bucket and records what
was uploaded; nothing else is contacted (``--only-json`` skips the Kubernetes API).

The exported Airflow DAG is then imported with the Airflow environment's interpreter, as an
Airflow DAG processor would: Metaflow 2.19 writes it for Airflow 2, and on Airflow 3 the import
fails (``DAG(schedule_interval=...)``, and ``KubernetesPodOperator`` from the provider module
``operators.kubernetes_pod`` that 10.x removed). The test checks that it is exactly this, and
runs the full check (the DAG lists the flow's steps as tasks) if a Metaflow release fixes it.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

import mlopsbench.tools.metaflow.pipeline as pipeline_package

PIPELINE = Path(pipeline_package.__file__).resolve().parent
BUCKET = "mlopsbench-flows"
FLOWS = {
    "digits": (
        "digits_flow.py",
        "DigitsFlow",
        ["start", "load_data", "train", "evaluate", "end"],
    ),
    "sentiment": (
        "sentiment_flow.py",
        "SentimentFlow",
        ["start", "load_data", "load_model", "evaluate", "end"],
    ),
    "sweep": (
        "sweep_flow.py",
        "SweepFlow",
        ["start", "load_data", "train_trial", "select_best", "evaluate", "promote", "hold", "end"],
    ),
}
RETRIED = {"digits": {"load_data", "end"}, "sentiment": {"load_data", "load_model", "end"}}
TIMEOUTS_S = {"digits": {"train": 3600}, "sentiment": {"load_model": 7200}}
AIRFLOW_2_ONLY = ("schedule_interval", "KubernetesPodOperator", "kubernetes_pod")


@dataclass
class ObjectStore:
    """What the S3 stub received: object key -> bytes."""

    url: str = ""
    objects: dict[str, bytes] = field(default_factory=dict)


@pytest.fixture(scope="module")
def object_store() -> Iterator[ObjectStore]:
    store = ObjectStore()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None):
            self.send_response(code)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if "Content-Length" not in (headers or {}):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _meta(self, data: bytes) -> dict[str, str]:
            return {
                "ETag": f'"{hashlib.md5(data).hexdigest()}"',
                "Last-Modified": "Wed, 01 Jan 2025 00:00:00 GMT",
                "Content-Type": "application/octet-stream",
            }

        def do_PUT(self) -> None:
            data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            store.objects[self.path.split("?")[0]] = data
            self._reply(200, b"", {"ETag": self._meta(data)["ETag"]})

        def do_HEAD(self) -> None:
            data = store.objects.get(self.path.split("?")[0])
            if data is None:
                self._reply(404)
            else:
                self._reply(200, b"", {**self._meta(data), "Content-Length": str(len(data))})

        def do_GET(self) -> None:
            data = store.objects.get(self.path.split("?")[0])
            if data is None:
                self._reply(404, b"<Error><Code>NoSuchKey</Code></Error>")
            else:
                self._reply(200, data, self._meta(data))

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    store.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield store
    finally:
        server.shutdown()
        server.server_close()


def _compile(
    store: ObjectStore, usecase: str, folder: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    flow_file = PIPELINE / FLOWS[usecase][0]
    env = {
        **os.environ,
        "METAFLOW_DATASTORE_SYSROOT_S3": f"s3://{BUCKET}/metaflow",
        "METAFLOW_S3_ENDPOINT_URL": store.url,
        "METAFLOW_DEFAULT_METADATA": "local",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "METAFLOW_KUBERNETES_NAMESPACE": "mlopsbench",
        "METAFLOW_KUBERNETES_CONTAINER_IMAGE": "registry.example/mlopsbench:test",
    }
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, str(flow_file), "--datastore", "s3", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.capability("metaflow", "cluster_export")
@pytest.mark.parametrize("usecase", ["digits", "sentiment"])
def test_argo_workflow_template_has_every_step_with_its_settings(
    usecase: str, object_store: ObjectStore, tmp_path: Path
) -> None:
    _, flow_name, steps = FLOWS[usecase]
    t0 = time.perf_counter()
    done = _compile(object_store, usecase, tmp_path, "argo-workflows", "create", "--only-json")
    assert done.returncode == 0, done.stderr[-3000:]
    spec = json.loads(done.stdout)
    assert yaml.safe_load(yaml.safe_dump(spec)) == spec  # what `kubectl apply -f` takes, as YAML
    assert spec["apiVersion"] == "argoproj.io/v1alpha1" and spec["kind"] == "WorkflowTemplate"
    assert spec["metadata"]["name"] == flow_name.lower()
    assert spec["metadata"]["namespace"] == "mlopsbench"
    templates = {t["name"]: t for t in spec["spec"]["templates"]}
    assert spec["spec"]["entrypoint"] == flow_name

    # The DAG template: one task per step, each depending on the one before (the flow's graph).
    dag = templates[flow_name]["dag"]["tasks"]
    names = [step.replace("_", "-") for step in steps]
    assert [task["name"] for task in dag] == names
    assert [task["depends"] for task in dag] == ["", *(f"{n}.Succeeded" for n in names[:-1])]

    # One container template per step, in the configured image, with resources, and the
    # decorators' retries and timeouts carried over.
    for step, name in zip(steps, names, strict=True):
        template = templates[name]
        container = template["container"]
        assert container["image"] == "registry.example/mlopsbench:test"
        assert container["resources"]["requests"]["cpu"] == "1"
        assert f"step {step} " in container["command"][-1]
        retry = template.get("retryStrategy")
        if step in RETRIED[usecase]:
            assert retry is not None and retry["limit"] == 2, (step, retry)
        else:
            assert retry is None, (step, retry)
        if step in TIMEOUTS_S[usecase]:
            assert template["activeDeadlineSeconds"] == TIMEOUTS_S[usecase][step]

    # The flow's parameters (the core config's settings) are the workflow's arguments.
    arguments = {p["name"] for p in spec["spec"]["arguments"]["parameters"]}
    assert {"model", "epochs", "seed", "threshold", "mlflow_uri"} & arguments
    assert "mlflow_uri" in arguments and "seed" in arguments

    # The code package went to the datastore: the pods download it from there at run time.
    packages = [
        k for k in object_store.objects if k.startswith(f"/{BUCKET}/metaflow/{flow_name}/data/")
    ]
    assert packages, sorted(object_store.objects)
    assert any(f"s3:/{key}" in done.stdout for key in packages)  # METAFLOW_CODE_URL of the pods
    print(f"{flow_name}: Argo WorkflowTemplate compiled in {time.perf_counter() - t0:.1f} s")


@pytest.mark.capability("metaflow", "cluster_export", "schedule", "resource_hint")
def test_argo_sweep_has_the_fan_out_the_switch_the_schedule_and_the_resources(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    """SweepFlow on Argo: ``foreach`` becomes a ``withParam`` fan-out, the gate's switch two
    ``when`` branches; ``@schedule``, ``@resources`` and ``@retry``'s back-off reach the spec."""
    steps = FLOWS["sweep"][2]
    done = _compile(object_store, "sweep", tmp_path, "argo-workflows", "create", "--only-json")
    assert done.returncode == 0, done.stderr[-3000:]
    spec = json.loads(done.stdout)
    templates = {t["name"]: t for t in spec["spec"]["templates"]}
    for step in steps:  # one container template per step
        assert f"step {step} " in templates[step.replace("_", "-")]["container"]["command"][-1]

    # @schedule(weekly=True), as Metaflow parsed it: the cron of the CronWorkflow it deploys.
    cron = json.loads(spec["metadata"]["annotations"]["metaflow/cron"])
    assert cron == {"schedule": "0 0 ? * SUN", "tz": ""}

    # @resources(cpu=2) on evaluate; every other step gets Metaflow's default of one CPU.
    cpus = {
        name: float(templates[name]["container"]["resources"]["requests"]["cpu"])
        for name in (step.replace("_", "-") for step in steps)
    }
    assert cpus.pop("evaluate") == 2.0 and set(cpus.values()) == {1.0}, cpus
    # @retry(times=1, minutes_between_retries=1): Argo waits a minute before the retry.
    assert templates["train-trial"]["retryStrategy"] == {
        "retryPolicy": "Always",
        "limit": 1,
        "backoff": {"duration": "1m"},
    }

    # The fan-out: a task over the list load_data stores, one pod per trial.
    tasks = [task for t in templates.values() for task in t.get("dag", {}).get("tasks", [])]
    assert any("withParam" in task for task in tasks), tasks
    # The switch: evaluate outputs the step it chose; promote and hold run only when named.
    when = {task["name"]: task.get("when", "") for task in tasks}
    for branch in ("promote", "hold"):
        assert "tasks['evaluate'].outputs.parameters['switch-step']" in when[branch], when
        assert when[branch].endswith(f"== '{branch}'}}}})"), when[branch]


@pytest.mark.parametrize("usecase", ["digits", "sentiment"])
def test_airflow_export_lists_the_steps_and_is_imported_by_our_airflow(
    usecase: str, object_store: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, flow_name, steps = FLOWS[usecase]
    dag_file = tmp_path / f"{usecase}_metaflow_dag.py"
    done = _compile(object_store, usecase, tmp_path, "airflow", "create", str(dag_file))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "compiled to Airflow successfully" in done.stderr

    # What the file holds, without importing Airflow: one Kubernetes pod per step, in order.
    config = _exported_config(dag_file)
    assert config["graph_structure"] == steps
    assert set(config["states"]) == set(steps)
    for step in steps:
        operator = config["states"][step]["operator_args"]
        assert config["states"][step]["operator_type"] == "kubernetes"
        assert operator["image"] == "registry.example/mlopsbench:test"
        assert operator["retries"] == (2 if step in RETRIED[usecase] else 0)
        assert f"step {step} " in operator["cmds"][-1]
    assert config["dag_instantiation_params"]["dag_id"] == flow_name

    # Import it as Airflow's DAG processor would, with the Airflow environment's interpreter.
    outcome = _import_with_airflow(dag_file, tmp_path / "airflow_home", monkeypatch)
    if outcome.get("error"):
        # Metaflow's exporter targets Airflow 2: on Airflow 3 it fails exactly here.
        assert any(marker in outcome["error"] for marker in AIRFLOW_2_ONLY), outcome
        pytest.xfail(f"Metaflow's Airflow export does not import on Airflow {outcome['airflow']}: "
                     f"{outcome['error']}")  # fmt: skip
    assert outcome["dag_id"] == flow_name
    assert sorted(outcome["tasks"]) == sorted(steps)


def _exported_config(dag_file: Path) -> dict[str, Any]:
    """The ``CONFIG = {...}`` literal Metaflow writes at the top of the DAG file."""
    tree = ast.parse(dag_file.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [
            "CONFIG"
        ]:
            return dict(ast.literal_eval(node.value))
    raise AssertionError(f"no CONFIG in {dag_file}")


_IMPORT_DAG = textwrap.dedent(
    """
    import json, runpy, sys
    import airflow

    out = {"airflow": airflow.__version__}
    try:
        found = runpy.run_path(sys.argv[1])
        dag = found["dag"]
        out.update(dag_id=dag.dag_id, tasks=sorted(dag.task_ids))
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
    """
)


def _import_with_airflow(
    dag_file: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    from mlopsbench.errors import MlopsbenchError
    from mlopsbench.toolkit import envs

    # Run from Metaflow's environment (``<core>/mlopsbench-envs/metaflow``): its siblings are
    # the other tools' environments.
    here = Path(sys.prefix)
    if not os.environ.get(envs.ENVS_ENV) and here.parent.name == "mlopsbench-envs":
        monkeypatch.setenv(envs.ENVS_ENV, str(here.parent))
    try:
        python = envs.python_for(envs.EnvSpec("airflow"))
    except MlopsbenchError as exc:
        pytest.skip(f"no Airflow environment to import the DAG with: {exc}")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }
    done = subprocess.run(
        [str(python), "-c", _IMPORT_DAG, str(dag_file)],
        env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stderr[-3000:]
    return dict(json.loads(lines[-1]))
