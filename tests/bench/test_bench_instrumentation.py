"""The LOC / tool-API counter on fixture sources with hand-counted answers."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mlopsbench.bench.instrumentation import code_lines, count_all, count_source, count_tool

MLFLOW_SRC = textwrap.dedent(
    '''\
    """Module docstring,
    two lines."""

    import os  # a comment

    import mlflow
    import mlflow.pytorch as mp
    from mlflow.tracking import MlflowClient


    def train(lr):
        """Function docstring."""
        # a comment line
        with mlflow.start_run() as run:
            mlflow.log_param("lr", lr)

            mlflow.log_metric("acc", 1.0, step=0)
        client = MlflowClient()
        client.set_registered_model_alias("m", "champion", 1)
        mp.log_model(None, name="m")
        text = """a string that is
        not a docstring"""
        return run.info.run_id, text, os.sep


    def other(version):
        return version.isdigit()


    def evidence(result):
        return mlflow.get_run(result)
    '''
)

FLOW_SRC = textwrap.dedent(
    '''\
    from metaflow import FlowSpec, Parameter, card, step


    class DigitsFlow(FlowSpec):
        """Doc."""

        epochs = Parameter("epochs", default=1)

        @card
        @step
        def start(self):
            self.helper()
            self.next(self.end)

        @step
        def end(self):
            pass

        def helper(self):
            return 1
    '''
)


def test_code_lines_skip_docstrings_comments_and_blanks() -> None:
    lines = code_lines(MLFLOW_SRC)
    assert 1 not in lines and 2 not in lines  # module docstring
    assert 12 not in lines and 13 not in lines  # function docstring, comment line
    assert {4, 6, 7, 8, 11, 14, 15, 17} <= lines
    assert {21, 22} <= lines  # a multi-line string that is not a docstring is code
    assert 16 not in lines  # blank


def test_count_mlflow_fixture() -> None:
    count = count_source(MLFLOW_SRC, ("mlflow",))
    # 18 code lines in the file, minus the 2 lines of evidence() (the harness's read-back).
    assert count.loc == 16
    assert count.api == {
        "mlflow.start_run",
        "mlflow.log_param",
        "mlflow.log_metric",
        "mlflow.tracking.MlflowClient",
        "mlflow.tracking.MlflowClient.set_registered_model_alias",
        "mlflow.pytorch.log_model",
    }
    # imports (6, 7, 8), start_run, log_param, log_metric, client = ..., client.set..., mp.log_model,
    # and `run.info.run_id` (a tool object, though not an API name).
    assert count.tool_lines == 10


def test_count_without_tool_package_is_plain() -> None:
    count = count_source(MLFLOW_SRC, ())
    assert count.loc == 16 and count.tool_lines == 0 and count.api == frozenset()


def test_flowspec_inherited_calls_and_decorators_count() -> None:
    count = count_source(FLOW_SRC, ("metaflow",))
    assert count.api == {
        "metaflow.FlowSpec",
        "metaflow.FlowSpec.next",  # self.next(...) in a FlowSpec subclass
        "metaflow.Parameter",
        "metaflow.card",
        "metaflow.step",
    }
    assert "metaflow.FlowSpec.helper" not in count.api  # the class's own method


def test_function_scoped_bindings_do_not_leak() -> None:
    src = textwrap.dedent(
        """\
        import mlflow

        def a():
            version = mlflow.register_model("x", "m")
            return version.version

        def b(version):
            return version.isdigit()
        """
    )
    count = count_source(src, ("mlflow",))
    assert count.api == {"mlflow.register_model"}
    assert count.tool_lines == 3  # import, register_model, version.version (a tool object)


def test_annotated_and_conventional_tool_objects() -> None:
    src = textwrap.dedent(
        """\
        from typing import Any

        import kfp


        def submit(client: "kfp.Client", other: Any) -> None:
            client.create_run_from_pipeline_package("p.yaml")
            other.create_run_from_pipeline_package("p.yaml")
        """
    )
    count = count_source(src, ("kfp",))
    assert count.api == {"kfp.Client.create_run_from_pipeline_package"}


def test_count_tool_counts_its_pipeline_folder_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlopsbench.toolkit.spec import Tool

    pkg = tmp_path / "counted_tool"
    (pkg / "pipeline" / "__pycache__").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "pipeline" / "a.py").write_text(MLFLOW_SRC)
    (pkg / "pipeline" / "b.py").write_text("import mlflow\n\nmlflow.set_tag('k', 'v')\n")
    (pkg / "pipeline" / "dvc.yaml").write_text("# comment\nstages:\n  train:\n    cmd: x\n")
    (pkg / "pipeline" / "__pycache__" / "c.py").write_text("x = 1\n")
    (pkg / "adapter.py").write_text("import mlflow\n\nmlflow.get_run('x')\n")  # not counted
    monkeypatch.syspath_prepend(str(tmp_path))
    tool = Tool("counted", "C", "d", "counted_tool", (), ("mlflow",))
    count = count_tool(tool)
    assert [f.path for f in count.files] == ["pipeline/a.py", "pipeline/b.py", "pipeline/dvc.yaml"]
    assert count.missing == ()
    assert count.loc == 16 + 2 + 3
    assert "mlflow.set_tag" in count.api and "mlflow.get_run" not in count.api
    assert count.api_count == 7
    payload = count.to_dict()
    assert payload["tool_lines"] == 12 + 3 and payload["api"] == sorted(count.api)
    empty = Tool("empty", "E", "d", "counted_tool", (), ("mlflow",), pipeline="nothing")
    assert count_tool(empty).missing == ("nothing/ (no pipeline files)",)


def test_real_pipeline_files_are_counted() -> None:
    counts = count_all(["plain", "mlflow", "metaflow", "airflow", "kfp"])
    plain = counts["plain"]
    assert plain.loc > 20 and plain.tool_lines == 0 and plain.api_count == 0
    for tool in ("mlflow", "metaflow", "airflow", "kfp"):
        if counts[tool].files:  # a tool whose files have not landed counts as missing, not zero
            assert counts[tool].api_count > 0, tool
            assert all(a.startswith(tool + ".") for a in counts[tool].api), tool
        else:
            assert counts[tool].missing


def test_the_papers_use_cases_and_the_sweep_count_their_own_files() -> None:
    from mlopsbench.bench.instrumentation import scenario_files
    from mlopsbench.toolkit.registry import get_tool

    for name in ("metaflow", "dvc"):
        tool = get_tool(name)
        paper = {
            p.relative_to(tool.pipeline_folder).as_posix() for p in scenario_files(tool, "digits")
        }
        sweep = {
            p.relative_to(tool.pipeline_folder).as_posix() for p in scenario_files(tool, "sweep")
        }
        assert sweep and all("sweep" in path for path in sweep)
        assert not any("sweep" in file for file in paper)
        assert len(paper) + len(sweep) == len(scenario_files(tool, None))
    assert "sweep_flow.py" in {p.name for p in scenario_files(get_tool("metaflow"), "sweep")}
