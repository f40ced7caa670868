"""The Celery deployment's wiring, without starting Airflow: settings, commands, environment,
how a dead part is told apart from a lost worker, the CLI's one-line errors and the per-task
latencies the record shows next to dag.test()."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from typer.testing import CliRunner

from mlopsbench.cli import app
from mlopsbench.errors import ConfigError, ServerError
from mlopsbench.support.processes import spawn, stop
from mlopsbench.tools.airflow import adapter, common, deployment, metadata, server

SLEEP = [sys.executable, "-c", "import time; time.sleep(600)"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_settings_refuse_what_cannot_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a database every worker reaches"):
        server.ServerSettings(home=tmp_path, executor="celery", db="sqlite")
    with pytest.raises(ConfigError, match="--executor must be one of local, celery"):
        server.ServerSettings(home=tmp_path, executor="kubernetes")
    with pytest.raises(ConfigError, match="--workers must be >= 1"):
        server.ServerSettings(home=tmp_path, executor="celery", workers=0)
    celery = server.ServerSettings(home=tmp_path, executor="celery", workers=3)
    assert celery.database == "postgres" and celery.slots == 3
    assert celery.describe() == "CeleryExecutor, 3 Celery workers, PostgreSQL"
    local = server.ServerSettings(home=tmp_path)
    assert local.database == "sqlite" and local.describe() == "LocalExecutor, SQLite"
    assert server.ServerSettings(home=tmp_path, db="postgres").database == "postgres"


def test_celery_workers_are_distinct_and_serve_no_logs(tmp_path: Path) -> None:
    settings = server.ServerSettings(home=tmp_path, executor="celery", workers=2)
    launched = {name: (args, env) for name, args, env in server.commands(settings)}
    assert list(launched) == ["api-server", "scheduler", "dag-processor", "celery-1", "celery-2"]
    for number in (1, 2):
        args, env = launched[f"celery-{number}"]
        assert args[:2] == ["celery", "worker"]
        assert args[args.index("--celery-hostname") + 1] == f"celery-{number}@%h"
        assert args[args.index("--concurrency") + 1] == "1"
        assert "--skip-serve-logs" in args  # its log server would bind every interface
        assert env[common.ENV_WORKER_NAME] == f"celery-{number}"
        assert env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == server.HOSTNAME_CALLABLE
    assert "--skip-serve-logs" in launched["scheduler"][0]
    local = server.ServerSettings(home=tmp_path)
    assert [name for name, _, _ in server.commands(local)] == list(server.COMPONENTS)


def test_worker_hostname_names_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(common.ENV_WORKER_NAME, "celery-2")
    assert common.worker_hostname() == f"celery-2@{socket.getfqdn()}"
    monkeypatch.delenv(common.ENV_WORKER_NAME)
    assert common.worker_hostname() == socket.getfqdn()
    # What Airflow's [core] hostname_callable imports.
    module, _, name = server.HOSTNAME_CALLABLE.rpartition(".")
    assert module == common.__name__ and name == "worker_hostname"


def test_environment_points_every_process_at_postgres_and_redis(tmp_path: Path) -> None:
    settings = server.ServerSettings(
        home=tmp_path, executor="celery", workers=2, heartbeat_timeout_s=15,
        extra_env={"MLOPSBENCH_AIRFLOW_RETRY_DELAY_S": "2"},
    )  # fmt: skip
    pg = SimpleNamespace(
        url=lambda scheme="postgresql": f"{scheme}://airflow@127.0.0.1:5999/airflow",
        env=lambda: {"PGPASSWORD": "pg-secret"},
    )
    broker = SimpleNamespace(url=lambda: "redis://:redis-secret@127.0.0.1:6999/0")
    env = server.server_env(settings, SimpleNamespace(postgres=pg, redis=broker))  # type: ignore[arg-type]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "2"
    conn = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert conn == "postgresql+psycopg2://airflow@127.0.0.1:5999/airflow"  # no password in it
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"].startswith("postgresql+asyncpg://")
    assert env["PGPASSWORD"] == "pg-secret"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:redis-secret@127.0.0.1:6999/0"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + conn
    assert env["AIRFLOW__CELERY__TASK_ACKS_LATE"] == "True"
    assert env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "1"
    assert env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] == "15"
    assert env["MLOPSBENCH_AIRFLOW_RETRY_DELAY_S"] == "2"
    # Fresh secrets per start, identical for every process of one start.
    again = server.server_env(settings, SimpleNamespace(postgres=pg, redis=broker))  # type: ignore[arg-type]
    assert again["AIRFLOW__API_AUTH__JWT_SECRET"] != env["AIRFLOW__API_AUTH__JWT_SECRET"]


def _fake_deployment(tmp_path: Path, workers: int = 2) -> server.AirflowServer:
    settings = server.ServerSettings(home=tmp_path, executor="celery", workers=workers)
    srv = server.AirflowServer(settings, "pw", log_dir=tmp_path)
    for name in ("postgres", "redis"):
        srv.services[name] = spawn(name, SLEEP, "", tmp_path / f"{name}.log", {})
    for name, _, _ in server.commands(settings):
        srv.components[name] = spawn(name, SLEEP, "", tmp_path / f"{name}.log", {})
    return srv


def _kill(srv: server.AirflowServer, name: str) -> None:
    member = {**srv.services, **srv.components}[name]
    member.process.send_signal(signal.SIGKILL)
    member.process.wait(timeout=10)


def test_a_lost_worker_is_reported_and_the_rest_runs_on(tmp_path: Path) -> None:
    srv = _fake_deployment(tmp_path)
    try:
        assert server.check_alive(srv) == []
        _kill(srv, "celery-1")
        assert server.check_alive(srv) == ["celery-1"]  # reported once, no error
        assert server.check_alive(srv) == []
        assert srv.lost_workers == {"celery-1": "was killed by SIGKILL"}
        _kill(srv, "celery-2")
        with pytest.raises(ServerError, match=r"every Celery worker has exited \(celery-1 was"):
            server.check_alive(srv)
    finally:
        for member in srv.processes.values():
            with contextlib.suppress(ProcessLookupError):
                member.kill()


@pytest.mark.parametrize(
    ("dead", "message"),
    [
        ("redis", "Redis (the Celery broker) was killed by SIGKILL"),
        ("postgres", "PostgreSQL (the metadata database) was killed by SIGKILL"),
        ("scheduler", "airflow scheduler was killed by SIGKILL"),
    ],
)
def test_a_dead_service_is_named_in_one_line(tmp_path: Path, dead: str, message: str) -> None:
    srv = _fake_deployment(tmp_path)
    try:
        _kill(srv, dead)
        _kill(srv, "dag-processor")  # dying with it: the service is still the one named
        with pytest.raises(ServerError) as raised:
            server.check_alive(srv)
        text = str(raised.value)
        assert text.startswith(message) and "\n" not in text
    finally:
        for member in srv.processes.values():
            with contextlib.suppress(ProcessLookupError):
                member.kill()


# The CLI with PostgreSQL, Redis, migration and Airflow's processes swapped for sleepers.
_FAKE_CELERY = textwrap.dedent(
    """
    import sys

    from mlopsbench.support.processes import spawn
    from mlopsbench.tools.airflow import server

    SLEEP = [sys.executable, "-c", "import time; time.sleep(600)"]

    def fake_services(srv):
        for name in ("postgres", "redis"):
            log = srv.settings.home / f"{name}.log"
            srv.services[name] = spawn(name, SLEEP, "", log, {})

    server._start_services = fake_services
    server.migrate = lambda settings, env, timeout_s=300.0: 0.0
    server.airflow_executable = lambda: sys.executable
    server.COMPONENTS = {name: ["-c", "import time; time.sleep(600)"] for name in server.COMPONENTS}
    real_commands = server.commands
    server.commands = lambda settings: [
        (name, ["-c", "import time; time.sleep(600)"], env)
        for name, _, env in real_commands(settings)
    ]
    server.wait_ready = lambda srv, timeout_s=240.0, dag_ids=None: 0.0

    from mlopsbench.cli import app

    app(["server", "airflow", "--executor", "celery", "--workers", "2",
         "--port", sys.argv[1], "--home", sys.argv[2]])
    """
)


@pytest.mark.parametrize("victim", ["redis", "celery-1"])
def test_cli_stops_everything_when_redis_dies_but_not_for_one_worker(
    tmp_path: Path, victim: str
) -> None:
    out = tmp_path / "cli.out"
    with out.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _FAKE_CELERY, str(_free_port()), str(tmp_path / "home")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    members: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        while "stops all processes." not in out.read_text(errors="replace"):
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.2)
        members = psutil.Process(proc.pid).children(recursive=True)
        assert len(members) == 7  # postgres, redis, 3 Airflow processes, 2 workers
        target = _member_by_log(proc.pid, tmp_path / "home", victim)
        target.kill()
        if victim == "celery-1":
            deadline = time.monotonic() + 30
            while "Celery worker celery-1 was killed by SIGKILL" not in out.read_text():
                assert time.monotonic() < deadline, out.read_text()
                time.sleep(0.2)
            assert proc.poll() is None  # the deployment runs on with one worker
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        else:
            assert proc.wait(timeout=60) == 1
            errors = [line for line in out.read_text().splitlines() if "error:" in line]
            assert errors == ["error: Redis (the Celery broker) was killed by SIGKILL (log: "
                              + str(tmp_path / "home" / "redis.log") + ")"]  # fmt: skip
        _, alive = psutil.wait_procs(members, timeout=10)
        assert not alive
        assert "Traceback" not in out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        for member in members:
            with contextlib.suppress(psutil.Error):
                member.kill()


def _member_by_log(cli_pid: int, home: Path, name: str) -> psutil.Process:
    """The sleeper whose stdout is ``<name>.log`` (the fake CLI's services log in HOME,
    Airflow's processes in HOME/logs/server): they are otherwise identical."""
    wanted = {home / f"{name}.log", home / "logs" / "server" / f"{name}.log"}
    for member in psutil.Process(cli_pid).children(recursive=True):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{member.pid}/fd/1").resolve() in wanted:
                return member
    raise AssertionError(f"no process logs to {wanted}")


def test_cli_one_line_errors_for_impossible_settings(tmp_path: Path) -> None:
    runner = CliRunner()
    home = str(tmp_path / "home")
    for args, text in (
        (["--executor", "celery", "--db", "sqlite"], "needs a database every worker reaches"),
        (["--executor", "kubernetes"], "--executor must be one of local, celery"),
    ):
        result = runner.invoke(app, ["server", "airflow", "--home", home, *args])
        assert result.exit_code == 2, result.output
        assert text in result.output and "Traceback" not in result.output
    bad = runner.invoke(app, ["compare", "--tools", "airflow", "--airflow-executor", "k8s"])
    assert bad.exit_code == 2 and "--airflow-executor must be one of" in bad.output


def test_adapter_options_are_checked(tmp_path: Path) -> None:
    assert adapter.executor_option({}) == "dag-test"
    assert adapter.executor_option({"executor": "Celery"}) == "celery"
    with pytest.raises(ConfigError, match="option executor must be one of dag-test, local"):
        adapter.executor_option({"executor": "kubernetes"})
    assert deployment.workers_option({}) == 2
    with pytest.raises(ConfigError, match="option workers must be >= 1"):
        deployment.workers_option({"workers": 0})


def _task(task_id: str, start: float, end: float, core: float | None = None, **kw: object) -> dict:
    return {
        "task_id": task_id, "state": "success", "try_number": 1, "max_tries": 2,
        "start": start, "end": end, "duration": end - start, **kw,
    }  # fmt: skip


def test_task_latencies_split_scheduling_queueing_and_in_task() -> None:
    """Upstream done -> queued (scheduling) -> started (queueing) -> ended; minus the core's
    own seconds: what each task instance costs the executor around its core call."""
    tasks = {
        "prepare_data": _task("prepare_data", 101.0, 111.0, queued=100.5),
        "build_model": _task(
            "build_model",
            112.5,
            120.0,
            queued=111.5,
            upstream=["prepare_data"],
            hostname="celery-2@h",
        ),
        "evaluate_model": _task(
            "evaluate_model", 121.0, 125.0, queued=120.25, upstream=["build_model"]
        ),
    }
    record = metadata.DagRunRecord.from_dict(
        {
            "dag_id": "d", "run_id": "r", "state": "success", "conf": {}, "start": 100.0,
            "end": 125.0, "tasks": tasks,
            "xcom": {"prepare_data": {"seconds": 9.0}, "build_model": {"seconds": 7.0},
                     "evaluate_model": {"seconds": 3.5}},
        }
    )  # fmt: skip
    rows = adapter.task_latencies(record)
    assert list(rows) == ["prepare_data", "build_model", "evaluate_model"]
    assert rows["build_model"] == pytest.approx(
        {"scheduling": 0.5, "queueing": 1.0, "in_task": 0.5, "total": 2.0}
    )
    assert rows["evaluate_model"] == pytest.approx(
        {"scheduling": 0.25, "queueing": 0.75, "in_task": 0.5, "total": 1.5}
    )
    assert rows["prepare_data"]["scheduling"] == pytest.approx(0.5)  # from the run's start
    summary = adapter._latencies(record)
    assert summary["task_overhead_median_s"] == pytest.approx(1.75)  # the first one left out
    assert summary["hosts"]["build_model"] == "celery-2@h"
    # dag.test queues nothing: only in-task and total are known.
    tasks["build_model"]["queued"] = None
    rows = adapter.task_latencies(
        metadata.DagRunRecord.from_dict({**record.__dict__, "tasks": tasks})
    )  # type: ignore[arg-type]
    assert rows["build_model"]["scheduling"] is None and rows["build_model"]["queueing"] is None
    assert rows["build_model"]["total"] == pytest.approx(2.0)


def test_stopping_a_fake_deployment_leaves_nothing(tmp_path: Path) -> None:
    srv = _fake_deployment(tmp_path)
    server.stop(srv, timeout_s=10)
    assert all(p.poll() is not None for p in srv.processes.values())
    stop(srv.services["redis"])  # idempotent
