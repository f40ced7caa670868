"""Per-tool environments: layered on the core, built from a lock or a version, failing in one
line with pip's reason, and leaving nothing half-built.

The building tests use a toy tool whose lock holds one small pure-Python package, so that they
exercise the real mechanism (venv, the core layered in, pip from the registry) in seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlopsbench.errors import ConfigError, ToolUnavailableError
from mlopsbench.toolkit import envs, registry

SMALL_PACKAGE = "tabulate"  # pure Python, not in the core environment


def _toy_tool(root: Path, lock: str, name: str = "toy_env_tool") -> None:
    folder = root / name
    (folder / "pipeline").mkdir(parents=True)
    (folder / "__init__.py").write_text(
        textwrap.dedent(
            f"""
            from mlopsbench.toolkit.spec import Tool

            TOOL = Tool(
                name={name!r},
                title="Toy",
                description="a tool with a one-package lock",
                package=__name__,
                distributions=({SMALL_PACKAGE!r},),
                api_packages=({SMALL_PACKAGE!r},),
            )
            """
        )
    )
    (folder / "adapter.py").write_text(
        "import sys\n\nfrom mlopsbench.errors import MlopsbenchError\n\n\n"
        "def run(request):\n    raise MlopsbenchError(f'toy ran in {sys.prefix}')\n"
    )
    (folder / envs.LOCK_FILE).write_text(lock)


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A toy tool declared from a temporary folder, and an empty environments root."""
    pinned = _available_version(SMALL_PACKAGE)
    _toy_tool(tmp_path / "plugins", f"# toy lock\n{SMALL_PACKAGE}=={pinned}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    monkeypatch.setenv(registry.EXTRA_TOOLS_ENV, "toy_env_tool")
    monkeypatch.setenv(envs.ENVS_ENV, str(tmp_path / "envs"))
    return tmp_path / "envs"


def _available_version(dist: str) -> str:
    """The version the other tool locks already pin (any tool may use it)."""
    for lock in Path(registry.__file__).parents[1].glob("tools/*/requirements.lock"):
        for line in lock.read_text().splitlines():
            if line.lower().startswith(f"{dist}=="):
                return line.split("==", 1)[1]
    pytest.fail(f"no tool lock pins {dist}")


def test_specs_parse_versions_and_name_folders() -> None:
    assert envs.EnvSpec.parse("mlflow") == envs.EnvSpec("mlflow")
    spec = envs.EnvSpec.parse(" MLflow==3.5.0 ")
    assert (spec.tool, spec.version, spec.name, spec.label) == (
        "mlflow",
        "3.5.0",
        "mlflow-3.5.0",
        "mlflow==3.5.0",
    )
    first, *rest = registry.get_tool("mlflow").distributions
    assert spec.requirements() == [f"{first}==3.5.0", *rest]  # the server's drivers come along
    assert envs.EnvSpec("airflow").top_level()[0].startswith("apache-airflow==3.")
    with pytest.raises(ConfigError, match="unknown tool 'jenkins'"):
        envs.EnvSpec.parse("jenkins==1.0")
    with pytest.raises(ConfigError, match="TOOL==VERSION"):
        envs.EnvSpec.parse("mlflow==latest!")


def test_every_tool_with_packages_has_a_lock_without_core_packages() -> None:
    core = {
        line.split("==")[0].lower()
        for line in (Path(registry.__file__).parents[3] / "requirements.lock").read_text().split()
        if "==" in line
    }
    for name, tool in registry.tools().items():
        if not tool.distributions:
            continue
        lock = envs.EnvSpec(name).lock_path
        pins = [line for line in lock.read_text().splitlines() if "==" in line]
        assert pins, f"{name} has an empty lock"
        assert not {p.split("==")[0].lower() for p in pins} & core, f"{name} re-pins core packages"
        assert envs.locked_version(name), f"{name}'s lock does not pin {tool.distributions[0]}"


def test_pip_reason_picks_the_telling_line() -> None:
    lines = [
        "Collecting numpy==1.26.4",
        "ERROR: Cannot install numpy==1.26.4 because these package versions have conflicting "
        "dependencies.",
        "The conflict is caused by:",
        "    The user requested numpy==1.26.4",
        "    The user requested (constraint) numpy==2.4.6",
        "ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/",
    ]
    reason = envs.pip_reason(lines)
    assert reason == (
        "ResolutionImpossible: Cannot install numpy==1.26.4 because these package versions have "
        "conflicting dependencies.; The user requested numpy==1.26.4; The user requested "
        "(constraint) numpy==2.4.6"
    )
    assert envs.pip_reason(["x", "ERROR: No matching distribution found for kfp==0.0.1"]) == (
        "No matching distribution found for kfp==0.0.1"
    )


def test_a_missing_environment_says_how_to_create_it(toy: Path) -> None:
    with pytest.raises(ToolUnavailableError, match="mlopsbench env create toy_env_tool"):
        envs.python_for(envs.EnvSpec.parse("toy_env_tool"))


@pytest.mark.slow
def test_an_environment_holds_only_the_tool_and_sees_the_core(toy: Path) -> None:
    spec = envs.EnvSpec.parse("toy_env_tool")
    seen: list[tuple[str, int, int | None]] = []
    path = envs.create_env(spec, progress=lambda *a: seen.append(a))
    record = envs.read_record(path)
    assert record is not None and record.tool == "toy_env_tool" and record.version is None
    assert list(record.installed) == [SMALL_PACKAGE]  # nothing of the core was installed again
    assert record.size_mb < 5 and record.install_s > 0
    assert seen and seen[-1][1] == 1 and seen[-1][2] == 1  # one package of one
    probe = "import numpy, torch, tabulate, mlopsbench; print(numpy.__file__, tabulate.__file__)"
    done = subprocess.run(
        [str(envs.env_python(path)), "-c", probe], capture_output=True, text=True, check=True
    )
    numpy_file, tabulate_file = done.stdout.split()
    assert numpy_file.startswith(str(envs.core_site_packages()))  # the core's one copy
    assert tabulate_file.startswith(str(path))
    assert envs.python_for(spec) == envs.env_python(path)
    assert envs.list_envs() == [(path, record)]
    assert envs.remove_env(spec) and not path.exists()


@pytest.mark.slow
def test_sites_the_caller_imports_from_do_not_leak_into_a_new_environment(
    toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that also imports from another environment (``$MLOPSBENCH_EXTRA_SITES``: the
    test run's MLflow client) builds a complete environment: pip must not count the other
    environment's packages as installed here."""
    spec = envs.EnvSpec.parse("toy_env_tool")
    donor = envs.create_env(spec, root=tmp_path / "donor")
    monkeypatch.setenv(envs.EXTRA_SITES_ENV, str(envs.site_packages(donor)))
    record = envs.read_record(envs.create_env(spec))
    assert record is not None and list(record.installed) == [SMALL_PACKAGE]


@pytest.mark.slow
def test_a_version_that_conflicts_with_the_core_fails_in_one_line_and_leaves_nothing(
    toy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    numpy = next(
        line.split("==")[1]
        for line in (Path(registry.__file__).parents[3] / "requirements.lock").read_text().split()
        if line.startswith("numpy==")
    )
    older = "1.26.4" if not numpy.startswith("1.26") else "1.25.2"
    monkeypatch.setattr(envs.EnvSpec, "requirements", lambda self: [f"numpy=={older}"])
    spec = envs.EnvSpec("toy_env_tool", version="0.0.0")
    with pytest.raises(ToolUnavailableError) as failed:
        envs.create_env(spec)
    message = str(failed.value)
    assert "\n" not in message and message.startswith("cannot install toy_env_tool==0.0.0: ")
    assert "ResolutionImpossible" in message and f"numpy=={older}" in message
    assert f"(constraint) numpy=={numpy}" in message
    assert not envs.env_path(spec).exists()


@pytest.mark.slow
def test_a_tool_command_runs_again_in_the_tool_environment(toy: Path, tmp_path: Path) -> None:
    """``mlopsbench run ... --tool T`` from the core environment, which cannot import T: the
    environment is created on first use (progress on stderr) and the same command runs again
    with its interpreter — the toy adapter says where it ran."""
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path / "plugins"),
        registry.EXTRA_TOOLS_ENV: "toy_env_tool",
        envs.ENVS_ENV: str(toy),
    }
    command = [sys.executable, "-m", "mlopsbench", "run", "digits", "--tool", "toy_env_tool"]
    done = subprocess.run(
        [*command, "--out", str(tmp_path / "runs")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert f"error: toy ran in {toy / 'toy_env_tool'}" in done.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "mlopsbench", "env", "list"],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "toy_env_tool" in listed.stdout and "ready" in listed.stdout
    record = json.loads((toy / "toy_env_tool" / envs.RECORD_FILE).read_text())
    assert record["distributions"] == 1


def test_variants_run_in_the_tool_environment_under_their_own_row_label() -> None:
    """``airflow@celery`` is a way to run Airflow (its declared options), not an environment."""
    assert envs.EnvSpec.parse("airflow@celery") == envs.EnvSpec("airflow")
    assert envs.EnvSpec.parse("Airflow==3.3.2@local") == envs.EnvSpec("airflow", "3.3.2")
    assert envs.row_label(" Airflow@celery ") == "airflow@celery"
    assert envs.row_label("airflow==3.3.2@local") == "airflow==3.3.2@local"
    assert envs.variant_options("airflow@celery") == {"executor": "celery"}
    assert envs.variant_options("airflow") == {}
    assert envs.env_labels(["airflow", "airflow@local", "airflow@celery", "kfp"]) == [
        "airflow",
        "kfp",
    ]
    assert envs.env_label("airflow==3.3.2@celery") == "airflow==3.3.2"
    assert envs.base_tool("airflow==3.3.2@celery") == "airflow"
    with pytest.raises(ConfigError, match=r"airflow has no variant 'k8s' \(known: airflow@local"):
        envs.row_label("airflow@k8s")
    with pytest.raises(ConfigError, match="kfp has no variant 'x' \\(known: none\\)"):
        envs.EnvSpec.parse("kfp@x")
