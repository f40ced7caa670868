"""The structure of .github/workflows/pipelines.yml, beyond what actionlint checks: jobs match the
path-filter table, every job does the work the project promises, nothing insecure, and every
path and `mlopsbench` command it names exists."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from typing import Any

import pytest
from ci_support import REPO, WORKFLOW
from typer.main import get_command

from mlopsbench.cli import app
from mlopsbench.toolkit.registry import tool_names

TOOLS = tool_names()

# Jobs not driven by a path filter, and why they run.
EVENT_JOBS = {
    "changes": "computes the filters",
    "compare": "on push to main and on demand",
    "deploy-mlflow": "only where vars.MLFLOW_TRACKING_URI is set",
    "deploy-airflow": "only where vars.AIRFLOW_API_URL is set",
}
ALWAYS_JOB = "core"  # lint, import contracts, core tests, plain run: on every change


def _jobs(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return workflow["jobs"]


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def _run_scripts(workflow: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for name, job in _jobs(workflow).items():
        for step in job.get("steps", []):
            if "run" in step:
                yield name, step["run"]


def _commands(script: str) -> Iterator[list[str]]:
    """Shell command lines of a `run:` script, continuation lines joined, as argv lists."""
    for line in script.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            yield shlex.split(line, comments=True)
        except ValueError:  # heredoc bodies (Python) are not shell
            continue


def _job_commands(job: dict[str, Any]) -> list[list[str]]:
    return [
        argv for step in job.get("steps", []) if "run" in step for argv in _commands(step["run"])
    ]


# --- triggers, permissions, environment ----------------------------------------------------


def test_triggers_permissions_concurrency_env(workflow: dict[str, Any]) -> None:
    on = workflow["on"]
    assert on["push"]["branches"] == ["main"]
    assert "pull_request" in on and "workflow_dispatch" in on
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["concurrency"]["group"]
    assert workflow["env"]["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert workflow["env"]["HF_HUB_OFFLINE"] == "1"  # the bundled data needs no hub


def test_no_job_can_write(workflow: dict[str, Any]) -> None:
    for name, job in _jobs(workflow).items():
        for scope, level in job.get("permissions", {}).items():
            assert level in ("read", "none"), f"{name}: {scope}: {level}"


def test_every_job_is_bounded(workflow: dict[str, Any]) -> None:
    for name, job in _jobs(workflow).items():
        assert 0 < job["timeout-minutes"] <= 90, name
        assert job["runs-on"] == "ubuntu-latest", name


# --- jobs <-> the path-filter table ----------------------------------------------------------


def test_every_job_is_in_the_table_or_event_driven(
    workflow: dict[str, Any], tool_filters: list[str]
) -> None:
    jobs = set(_jobs(workflow))
    expected = set(tool_filters) | {ALWAYS_JOB} | set(EVENT_JOBS)
    assert jobs == expected, (
        f"jobs not in .github/path-filters.yml nor EVENT_JOBS: {sorted(jobs - expected)}; "
        f"missing jobs: {sorted(expected - jobs)}"
    )


def test_tool_jobs_run_on_their_filter(workflow: dict[str, Any], tool_filters: list[str]) -> None:
    for tool in tool_filters:
        job = _jobs(workflow)[tool]
        assert "changes" in _needs(job), tool
        condition = job["if"]
        assert f"needs.changes.outputs.{tool} == 'true'" in condition, tool
        others = set(re.findall(r"needs\.changes\.outputs\.(\w+)", condition)) - {tool}
        assert not others, f"{tool} job also reads {others}"


def test_every_output_reference_exists(workflow: dict[str, Any]) -> None:
    outputs = set(_jobs(workflow)["changes"]["outputs"])
    text = WORKFLOW.read_text(encoding="utf-8")
    for ref in re.findall(r"needs\.changes\.outputs\.(\w+)", text):
        assert ref in outputs, f"needs.changes.outputs.{ref} is not an output of `changes`"
    for name, job in _jobs(workflow).items():
        for other in _needs(job):
            assert other in _jobs(workflow), f"{name} needs unknown job {other}"


def test_core_job_leaves_each_tool_suite_to_its_job(
    workflow: dict[str, Any], tool_filters: list[str]
) -> None:
    commands = _job_commands(_jobs(workflow)[ALWAYS_JOB])
    pytest_runs = [argv for argv in commands if "pytest" in argv]
    assert len(pytest_runs) == 1
    ignored = {a.split("=", 1)[1] for a in pytest_runs[0] if a.startswith("--ignore=")}
    assert ignored == {f"tests/tools/{t}" for t in tool_filters}
    tools = {argv[argv.index("--tool") + 1] for argv in commands if "--tool" in argv}
    assert tools == {"plain"}
    steps = " ".join(s.get("run", "") for s in _jobs(workflow)[ALWAYS_JOB]["steps"])
    for tool in ("ruff check", "ruff format --check", "lint-imports", "mypy"):
        assert tool in steps
    # tests/ci runs actionlint: it must be installed before the tests.
    assert steps.index("scripts/install_ci_tools.sh") < steps.index("pytest")


@pytest.mark.capability("*", "ci_workflow")
@pytest.mark.parametrize("tool", [name for name in TOOLS if name != "plain"])
def test_tool_job_tests_and_runs_its_pipeline(workflow: dict[str, Any], tool: str) -> None:
    job = _jobs(workflow)[tool]
    steps = job["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@")
    assert any(s.get("uses") == "./.github/actions/setup-mlopsbench" for s in steps)
    commands = _job_commands(job)
    # The tool's suite runs in the tool's own environment, built first from its lock.
    assert any(argv[:4] == ["mlopsbench", "env", "create", tool] for argv in commands)
    assert [f"tool_python=$(mlopsbench env python {tool})"] in commands
    assert [
        "$tool_python",
        "-m",
        "pytest",
        f"tests/tools/{tool}",
        "-m",
        "not network and not gpu",
    ] in commands
    runs = [argv for argv in commands if argv[:3] == ["mlopsbench", "run", "digits"]]
    assert runs, f"{tool} job never runs its pipeline"
    sweeps = [argv for argv in commands if argv[:3] == ["mlopsbench", "run", "sweep"]]
    assert sweeps, f"{tool} job never runs its sweep"
    assert all(argv[argv.index("--tool") + 1] == tool for argv in sweeps)
    for argv in runs:
        assert argv[argv.index("--tool") + 1] == tool
        assert argv[argv.index("--model") + 1] == "simple"
        assert argv[argv.index("--epochs") + 1] == "1"


def test_install_uses_the_lock_file_and_its_cache() -> None:
    import yaml

    action = yaml.safe_load(
        (REPO / ".github/actions/setup-mlopsbench/action.yml").read_text(encoding="utf-8")
    )
    setup = next(s for s in action["runs"]["steps"] if "setup-python" in s.get("uses", ""))
    assert setup["with"] == {
        "python-version": "3.11",
        "cache": "pip",
        "cache-dependency-path": "requirements.lock",
    }
    script = "\n".join(s.get("run", "") for s in action["runs"]["steps"])
    assert "pip install -r requirements.lock" in script
    assert "pip install --no-deps -e ." in script


def test_mlflow_job_uses_an_ephemeral_local_server(workflow: dict[str, Any]) -> None:
    job = _jobs(workflow)["mlflow"]
    assert job["env"]["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"
    script = "\n".join(s.get("run", "") for s in job["steps"])
    start = script.index("mlopsbench server mlflow --port 5000")
    health = script.index('curl -fsS "$MLFLOW_TRACKING_URI/health"')
    run = script.index("mlopsbench run digits --tool mlflow")
    alias = script.index("champion")
    assert start < health < run < alias


def _uploads(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        s["with"]
        for s in job["steps"]
        if str(s.get("uses", "")).startswith("actions/upload-artifact@")
    ]


@pytest.mark.parametrize(
    ("job", "path", "producer"),
    [
        ("metaflow", "cards/", "card get evaluate"),
        ("kfp", "compiled/", "mlopsbench kfp compile --out compiled"),
        ("compare", "report/", "mlopsbench compare --out report"),
    ],
)
def test_artifacts_are_uploaded(
    workflow: dict[str, Any], job: str, path: str, producer: str
) -> None:
    uploads = _uploads(_jobs(workflow)[job])
    assert [u["path"] for u in uploads] == [path]
    assert uploads[0]["if-no-files-found"] == "error"  # a missing card/YAML/report fails the job
    assert producer in "\n".join(s.get("run", "") for s in _jobs(workflow)[job]["steps"])


def test_compare_runs_on_main_and_on_demand(workflow: dict[str, Any]) -> None:
    condition = _jobs(workflow)["compare"]["if"]
    assert "workflow_dispatch" in condition
    assert "refs/heads/main" in condition and "'push'" in condition


@pytest.mark.parametrize(
    ("job", "var"),
    [("deploy-mlflow", "MLFLOW_TRACKING_URI"), ("deploy-airflow", "AIRFLOW_API_URL")],
)
def test_deploy_jobs_need_configuration(workflow: dict[str, Any], job: str, var: str) -> None:
    spec = _jobs(workflow)[job]
    assert f"vars.{var} != ''" in spec["if"]  # skipped cleanly where it is not configured
    assert "pull_request" not in spec["if"]
    for key, value in spec["env"].items():
        if any(word in key for word in ("URI", "URL", "TOKEN")):
            assert re.fullmatch(r"\$\{\{ (vars|secrets)\.\w+( \|\| '[\w-]+')? \}\}", value), key
            if "TOKEN" in key:
                assert "secrets." in value, f"{key} must come from a secret"


# --- security ---------------------------------------------------------------------------------


def test_no_addresses_keys_or_remote_shells() -> None:
    text = WORKFLOW.read_text(encoding="utf-8")
    ips = set(re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b", text))
    assert ips <= {"127.0.0.1"}, f"hard-coded addresses: {ips - {'127.0.0.1'}}"
    for word in (
        "rsync",
        "scp ",
        "ssh ",
        "ssh-key",
        "PRIVATE KEY",
        "StrictHostKeyChecking",
        "0.0.0.0",
    ):
        assert word not in text, word
    assert "pickle" not in text.lower()


def test_actions_are_pinned_and_local_actions_exist(workflow: dict[str, Any]) -> None:
    import yaml

    action = yaml.safe_load(
        (REPO / ".github/actions/setup-mlopsbench/action.yml").read_text(encoding="utf-8")
    )
    steps = [s for job in _jobs(workflow).values() for s in job.get("steps", [])]
    uses = [s["uses"] for s in [*steps, *action["runs"]["steps"]] if "uses" in s]
    for ref in uses:
        if ref.startswith("./"):
            assert (REPO / ref / "action.yml").is_file(), ref
        else:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@(v\d+|[0-9a-f]{40})", ref), f"unpinned: {ref}"
    for step in steps:
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


# --- everything the workflow names exists ---------------------------------------------------


def test_every_referenced_path_exists(workflow: dict[str, Any]) -> None:
    text = WORKFLOW.read_text(encoding="utf-8").replace("$GITHUB_WORKSPACE/", "")
    paths = set(re.findall(r"(?<![\w/$.])((?:src|tests|scripts)/[\w./-]*\w)", text))
    paths |= {"requirements.lock", "pyproject.toml", ".github/path-filters.yml"}
    assert {
        "src/mlopsbench/tools/metaflow/pipeline/digits_flow.py",
        "scripts/install_ci_tools.sh",
    } <= paths
    for path in sorted(paths):
        assert (REPO / path).exists(), f"the workflow names {path}, which does not exist"


def _is_group(command: Any) -> bool:
    return hasattr(command, "commands")  # typer ships its own click: no isinstance(click.Group)


def _resolve(argv: list[str]) -> tuple[Any, list[str], list[str]]:
    """Walk `mlopsbench a b --opt ...` down the click tree: (command, path, options used)."""
    command: Any = get_command(app)
    path: list[str] = []
    args = argv[1:]
    while args and _is_group(command) and not args[0].startswith("-"):
        sub = command.commands.get(args[0])
        if sub is None:
            break
        command, path, args = sub, [*path, args[0]], args[1:]
    options = [a.split("=", 1)[0] for a in args if a.startswith("--")]
    return command, path, options


def test_every_mlopsbench_command_exists() -> None:
    from ci_support import load_workflow

    seen = 0
    for _job, script in _run_scripts(load_workflow()):
        for argv in _commands(script):
            argv = argv[1:] if argv[:1] == ["nohup"] else argv
            if argv[:1] != ["mlopsbench"] or len(argv) < 2:
                continue
            seen += 1
            command, path, options = _resolve(argv)
            assert not _is_group(command), f"`{' '.join(argv[:3])}` does not exist"
            known = {opt for param in command.params for opt in param.opts}
            assert set(options) <= known, (
                f"`mlopsbench {' '.join(path)}`: unknown {set(options) - known}"
            )
            if "--tool" in argv:
                assert argv[argv.index("--tool") + 1] in TOOLS
    assert seen >= 8


def test_metaflow_flow_parameters_and_step_exist(workflow: dict[str, Any]) -> None:
    """The flow's parameters are the digits settings (added by its flow mutator) plus
    ``mlflow_uri``: every option the job passes must be one of them."""
    from mlopsbench.usecases.registry import get_usecase

    flow = (REPO / "src/mlopsbench/tools/metaflow/pipeline/digits_flow.py").read_text("utf-8")
    assert "@config_parameters(DigitsConfig)" in flow
    parameters = {spec.name for spec in get_usecase("digits").params()} | {"mlflow_uri"}
    commands = _job_commands(_jobs(workflow)["metaflow"])
    run = next(argv for argv in commands if argv[:3] == ["$python", "$flow", "run"])
    for option in (a for a in run if a.startswith("--")):
        assert option[2:] in parameters, f"the flow has no {option}"
    card = next(argv for argv in commands if argv[2:4] == ["card", "get"])
    assert f"def {card[4]}(self)" in flow
