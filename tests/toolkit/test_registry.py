"""The tool registry: declarations, lazy loading, one-line errors, and a tool added from outside.

The toy-tool test is the promise of the one-folder design: a tool written in a temporary folder
(its declaration, its ``pipeline/``, its adapter) joins through ``$MLOPSBENCH_TOOLS`` and runs
through ``compare`` — the worker processes, evidence, instrumentation and the report — with no
file of this project touched.
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
from mlopsbench.toolkit import registry
from mlopsbench.toolkit.registry import get_tool, load_runner, tool_names
from mlopsbench.toolkit.spec import Tool

BUILTIN_NAMES = ("plain", "mlflow", "metaflow", "airflow", "kfp")


def test_the_builtin_tools_declare_themselves() -> None:
    assert tool_names()[: len(BUILTIN_NAMES)] == BUILTIN_NAMES
    for name in BUILTIN_NAMES:
        tool = get_tool(name)
        assert tool.name == name and tool.package == f"mlopsbench.tools.{name}"
        assert tool.pipeline_folder.is_dir(), f"{name} has no pipeline/ folder"
        assert tool.requires[-1] == "torch"


def test_unknown_tool() -> None:
    with pytest.raises(ConfigError) as exc:
        get_tool("jenkins")
    assert str(exc.value).startswith("unknown tool 'jenkins'; choose one of: plain, mlflow")
    with pytest.raises(ConfigError):
        load_runner("jenkins")


def test_load_plain_runner() -> None:
    from mlopsbench.tools.plain import adapter

    assert get_tool(" Plain ").name == "plain"
    assert load_runner("plain") is adapter.run
    assert registry.is_available("plain")


def _write_tool(root: Path, package: str, body: str, requires: tuple[str, ...] = ()) -> None:
    folder = root / package
    (folder / "pipeline").mkdir(parents=True)
    (folder / "__init__.py").write_text(
        textwrap.dedent(
            f"""
            from mlopsbench.toolkit.spec import Tool

            TOOL = Tool(
                name={package!r},
                title="Toy",
                description="a toy tool from a temporary folder",
                package=__name__,
                distributions=(),
                api_packages={requires!r},
            )
            """
        )
    )
    (folder / "adapter.py").write_text(textwrap.dedent(body))


def test_missing_package_is_tool_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_tool(tmp_path, "needs_more", "def run(request): ...\n", ("no_such_package_xyz",))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(registry.EXTRA_TOOLS_ENV, "needs_more")
    assert registry.missing_requirements("needs_more") == ["no_such_package_xyz"]
    assert not registry.is_available("needs_more")
    with pytest.raises(ToolUnavailableError, match="needs no_such_package_xyz"):
        load_runner("needs_more")


def test_adapter_without_run_is_tool_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_tool(tmp_path, "bare_tool", "VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(registry.EXTRA_TOOLS_ENV, "bare_tool")
    with pytest.raises(ToolUnavailableError, match="has no run"):
        load_runner("bare_tool")


def test_a_package_without_declaration_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "undeclared").mkdir()
    (tmp_path / "undeclared" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(registry.EXTRA_TOOLS_ENV, "undeclared")
    with pytest.raises(ConfigError, match="declares no TOOL"):
        tool_names()


TOY_PIPELINE = '''
"""The toy tool's pipeline: what its users would write (one "toy" API call per step)."""

import toylib

from mlopsbench.usecases.registry import get_usecase


def pipeline(cfg, out_dir):
    stages = get_usecase("digits").stages
    data = toylib.step(stages.prepare_data, cfg, out_dir)
    model = toylib.step(stages.build_model, cfg, data["data_path"], out_dir)
    evaluation = toylib.step(
        stages.evaluate_model, cfg, data["data_path"], model["model_dir"], out_dir
    )
    return data, model, evaluation
'''

TOY_LIBRARY = '''
"""The "tool" itself: it records each step it ran in a JSON store."""

import json
from pathlib import Path

STORE = []


def step(func, *args):
    result = func(*args)
    STORE.append({"step": func.__name__, "seconds": result.get("seconds")})
    return result


def save(path):
    Path(path).write_text(json.dumps(STORE))
'''

TOY_ADAPTER = """
from pathlib import Path

from mlopsbench.toolkit.record import RunRecorder, core_timings


def run(request):
    import toylib

    from toy_tool.pipeline.flow import pipeline

    recorder = RunRecorder("toy_tool", request)
    data, model, evaluation = pipeline(request.config, request.out_dir)
    toylib.save(Path(request.out_dir) / "toy_store.json")
    stages = {"prepare_data": data, "build_model": model, "evaluate_model": evaluation}
    return recorder.finish(
        metrics=evaluation["metrics"],
        gate=evaluation["gate"],
        artifacts={"store": str(Path(request.out_dir) / "toy_store.json")},
        history=model["history"],
        timings=core_timings(recorder.usecase, stages),
    )


def evidence(result):
    import json

    steps = json.loads(Path(result.artifacts["store"]).read_text())
    return {"final_metrics": "accuracy" in result.metrics, "run_state": len(steps) == 3}
"""


@pytest.mark.slow
def test_a_toy_tool_from_a_temporary_folder_runs_through_compare(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    _write_tool(plugins, "toy_tool", TOY_ADAPTER, ("toylib",))
    (plugins / "toy_tool" / "pipeline" / "__init__.py").write_text("")
    (plugins / "toy_tool" / "pipeline" / "flow.py").write_text(TOY_PIPELINE)
    (plugins / "toylib.py").write_text(TOY_LIBRARY)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(plugins), os.environ.get("PYTHONPATH", "")]),
        registry.EXTRA_TOOLS_ENV: "toy_tool",
    }
    out = tmp_path / "cmp"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlopsbench",
            "compare",
            "digits",
            "--tools",
            "plain,toy_tool",
            "--models",
            "simple",
            "--epochs",
            "1",
            "--set",
            "threshold=0",
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    runs = {row["tool"]: row for row in rows if row["kind"] == "run"}
    toy, plain = runs["toy_tool"], runs["plain"]
    assert toy["status"] == "ok", toy["error"]
    assert toy["result"]["metrics"]["accuracy"] == plain["result"]["metrics"]["accuracy"]
    assert toy["evidence"]["final_metrics"] and toy["evidence"]["run_state"]
    assert {"data", "train", "evaluate"} <= set(toy["result"]["timings"])
    # Instrumentation is counted over its pipeline/ folder only: the import and three calls
    # (the last spans three lines).
    (meta,) = (row for row in rows if row["kind"] == "meta")
    counted = meta["instrumentation"]["toy_tool"]
    assert counted["files"] == ["pipeline/__init__.py", "pipeline/flow.py"]
    assert counted["tool_lines"] == 6 and counted["api"] == ["toylib.step"]
    html = (out / "index.html").read_text()
    assert "toy_tool" in html


def test_declaration_fields_have_defaults_a_new_tool_can_skip() -> None:
    tool = Tool(
        name="x",
        title="X",
        description="d",
        package="mlopsbench.tools.plain",
        distributions=(),
        api_packages=(),
    )
    assert tool.adapter == "adapter" and tool.pipeline == "pipeline" and tool.commands is None
    assert tool.import_commands() is None and tool.probe() is None
