"""Instrumentation cost from source: the paper's "code instrumentation" criterion, counted.

For each tool's copyable pipeline (the files in its ``pipeline/`` folder; its adapter, server and
read-back are the harness's, not what a user of the tool writes):

- ``loc``: code lines, i.e. lines holding at least one token that is not a comment, with
  docstrings (first string statement of a module, class or function) and blank lines excluded;
- ``tool_lines``: code lines that reference the tool's package (imports included);
- ``api``: distinct tool API names used (calls, decorators, base classes, attributes), resolved
  from the file's own imports of the tool package. ``x = mlflow.MlflowClient()`` makes
  ``x.get_run`` count as ``mlflow.MlflowClient().get_run``: a one-level heuristic, no types.

The harness's own read-back (a top-level function named ``evidence``) is excluded: it verifies
what the tool stored and is not part of instrumenting the pipeline.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlopsbench.toolkit.spec import Tool

EXCLUDED_FUNCTIONS = frozenset({"evidence"})
_NON_CODE_TOKENS = frozenset(
    {
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENDMARKER,
        tokenize.ENCODING,
    }
)


@dataclass(frozen=True)
class FileCount:
    path: str
    loc: int
    tool_lines: int
    api: frozenset[str]


@dataclass(frozen=True)
class InstrumentationCount:
    tool: str
    files: tuple[FileCount, ...] = ()
    missing: tuple[str, ...] = ()  # pipeline paths that do not exist (yet)
    api: frozenset[str] = field(default_factory=frozenset)

    @property
    def loc(self) -> int:
        return sum(f.loc for f in self.files)

    @property
    def tool_lines(self) -> int:
        return sum(f.tool_lines for f in self.files)

    @property
    def api_count(self) -> int:
        return len(self.api)

    def to_dict(self) -> dict[str, object]:
        return {
            "tool": self.tool,
            "files": [f.path for f in self.files],
            "missing": list(self.missing),
            "loc": self.loc,
            "tool_lines": self.tool_lines,
            "api_count": self.api_count,
            "api": sorted(self.api),
        }


def code_lines(source: str) -> set[int]:
    """Line numbers holding code: no blank lines, comments or docstrings."""
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in _NON_CODE_TOKENS:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return lines - docstring_lines(ast.parse(source))


def docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                lines.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    return lines


def _excluded_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in tree.body:
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name in EXCLUDED_FUNCTIONS
        ):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            lines.update(range(start, (node.end_lineno or node.lineno) + 1))
    return lines


def _is_tool_module(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _import_aliases(tree: ast.AST, packages: tuple[str, ...]) -> tuple[dict[str, str], set[int]]:
    """Local name -> qualified tool name, and the lines of the tool imports themselves."""
    aliases: dict[str, str] = {}
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_tool_module(alias.name, packages):
                    # `import a.b` binds `a`; `import a.b as c` binds `c` to a.b.
                    local = alias.asname or alias.name.split(".")[0]
                    aliases[local] = alias.name if alias.asname else local
                    lines.add(node.lineno)
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and _is_tool_module(node.module, packages)
        ):
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            lines.add(node.lineno)
    return aliases, lines


def _dotted(node: ast.AST) -> list[str] | None:
    """``a.b.c`` -> ["a", "b", "c"]; ``a().b`` -> ["a()", "b"]; else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    if isinstance(node, ast.Call):
        inner = _dotted(node.func)
        if inner is None:
            return None
        inner[-1] += "()"
        return inner + parts[::-1]
    return None


def _resolve(node: ast.AST, aliases: dict[str, str]) -> str | None:
    parts = _dotted(node)
    if not parts:
        return None
    head = parts[0].removesuffix("()")
    if head not in aliases:
        return None
    qualified = aliases[head] + ("()" if parts[0].endswith("()") else "")
    return ".".join([qualified, *parts[1:]])


def _annotation(node: ast.AST | None, aliases: dict[str, str]) -> str | None:
    """A parameter annotation naming a tool class (also as a string: ``"mlflow.MlflowClient"``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return None
    return _resolve(node, aliases) if node is not None else None


def _instances(tree: ast.AST, aliases: dict[str, str]) -> dict[str, str]:
    """Names bound to tool objects: ``x = tool.f(...)``, ``with tool.f() as x``, ``x: ToolClass``."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            name = _annotation(node.annotation, aliases)
            if name is not None:
                bound[node.arg] = name + "()"
            continue
        pairs: list[tuple[ast.AST, ast.AST]] = []
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            pairs.append((node.targets[0], node.value))
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            pairs.append((node.target, node.value))
        elif isinstance(node, ast.With | ast.AsyncWith):
            pairs.extend((i.optional_vars, i.context_expr) for i in node.items if i.optional_vars)
        for target, value in pairs:
            if isinstance(target, ast.Name) and isinstance(value, ast.Call):
                name = _resolve(value.func, aliases)
                if name is not None:
                    bound[target.id] = name + "()"
    return bound


def _api_name(resolved: str, called: bool) -> str | None:
    """The API name a reference counts as, or None.

    Module-level names count whenever used (``mlflow.log_metric``, ``dsl.Output``); on a tool
    object only a method *call* counts (``client.log_batch()`` -> ``mlflow.MlflowClient.log_batch``),
    not reading its data (``run.info.run_id``) nor calls on that data (``v.version.isdigit()``).
    A bare module (no dot) is no API name.
    """
    head, sep, rest = resolved.partition("()")
    if sep:
        attrs = [p for p in rest.split(".") if p]
        if not called or len(attrs) != 1 or "()" in attrs[0]:
            return None
        head = f"{head}.{attrs[0]}"
    return head if "." in head else None


class _ApiVisitor(ast.NodeVisitor):
    """Records the outermost resolvable tool reference of every expression, with its line."""

    def __init__(
        self, scope: dict[str, str], excluded: set[int], aliases: dict[str, str], modules: set[str]
    ) -> None:
        self.scope = scope
        self.excluded = excluded
        self.aliases = aliases
        self.modules = modules  # targets of `import a.b as c`: a module object, not an API name
        self.api: set[str] = set()
        self.lines: set[int] = set()
        self._inherited: list[tuple[str, set[str]]] = []  # (tool base, own method names)
        self._callee: ast.AST | None = None  # the func of the Call being visited

    def _record(self, name: str, lineno: int, called: bool = False) -> None:
        if lineno in self.excluded:
            return
        self.lines.add(lineno)
        api = _api_name(name, called)
        if api and api not in self.modules:
            self.api.add(api)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        # Objects bound inside a function (``version = mlflow.register_model(...)``) are only
        # tool objects there: another function's ``version`` may be a plain string.
        outer = self.scope
        self.scope = {**outer, **_instances(node, self.aliases)}
        self.generic_visit(node)
        self.scope = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        bases = [b for b in (_resolve(base, self.scope) for base in node.bases) if b]
        own = {n.name for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        self._inherited.append((bases[0], own) if bases else ("", own))
        self.generic_visit(node)
        self._inherited.pop()

    def visit_Call(self, node: ast.Call) -> None:
        # `self.next(...)` inside a FlowSpec subclass: an inherited tool method.
        func = node.func
        if (
            self._inherited
            and self._inherited[-1][0]
            and isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "self"
            and func.attr not in self._inherited[-1][1]
        ):
            self._record(f"{self._inherited[-1][0]}.{func.attr}", node.lineno)
        self._callee = func
        self.generic_visit(node)

    def _visit_ref(self, node: ast.Attribute | ast.Name) -> None:
        name = _resolve(node, self.scope)
        if name is None:
            self.generic_visit(node)
            return
        self._record(name, node.lineno, called=node is self._callee)
        # Do not descend the chain (its prefix would count again), but visit call arguments in it.
        inner: ast.AST = node
        while isinstance(inner, ast.Attribute | ast.Call):
            if isinstance(inner, ast.Call):
                for arg in [*inner.args, *(k.value for k in inner.keywords)]:
                    self.visit(arg)
                inner = inner.func
            else:
                inner = inner.value

    visit_Attribute = _visit_ref
    visit_Name = _visit_ref


def count_source(
    source: str,
    packages: tuple[str, ...],
    path: str = "<string>",
    conventional_instances: Mapping[str, str] | None = None,
) -> FileCount:
    """Count one file's code lines, tool lines and tool API names.

    ``conventional_instances``: names of tool objects passed around untyped (``client``) and
    the API they stand for (``mlflow.MlflowClient()``), from the tool's declaration.
    """
    tree = ast.parse(source, filename=path)
    excluded = _excluded_lines(tree)
    lines = code_lines(source) - excluded
    if not packages:
        return FileCount(path, len(lines), 0, frozenset())
    aliases, import_lines = _import_aliases(tree, packages)
    conventional = dict(conventional_instances or {}) if aliases else {}
    module_level = ast.Module(
        body=[
            n
            for n in tree.body
            if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        ],
        type_ignores=[],
    )
    scope = {**conventional, **_instances(module_level, aliases), **aliases}
    modules = {
        aliases[a.asname]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for a in node.names
        if a.asname and a.asname in aliases
    }
    visitor = _ApiVisitor(scope, excluded, aliases, modules)
    for node in tree.body:
        if not isinstance(node, ast.Import | ast.ImportFrom):
            visitor.visit(node)
    tool_lines = (visitor.lines | (import_lines - excluded)) & lines
    return FileCount(path, len(lines), len(tool_lines), frozenset(visitor.api))


def count_yaml(source: str, path: str) -> FileCount:
    """A tool's own configuration file (``dvc.yaml``): every line that is not blank or a
    comment is instrumentation."""
    lines = [ln for ln in source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return FileCount(path, len(lines), len(lines), frozenset())


SCENARIO_MARK = "sweep"  # a pipeline file (or folder) named for the sweep belongs to it alone


def scenario_files(tool: Tool, usecase: str | None) -> list[Path]:
    """The pipeline files a use case's code cost counts: for the paper's use cases everything but
    the sweep's files (the paper measured its two pipelines), for the sweep only what the sweep
    adds; ``None``: every file."""
    files = tool.pipeline_files()
    if usecase is None:
        return files
    wanted = usecase == SCENARIO_MARK
    return [
        f for f in files if (SCENARIO_MARK in str(f.relative_to(tool.pipeline_folder))) == wanted
    ]


def count_tool(tool: Tool, usecase: str | None = None) -> InstrumentationCount:
    """Instrumentation cost of one tool: what its ``pipeline/`` folder holds for ``usecase``
    (see :func:`scenario_files`), nothing else."""
    files = scenario_files(tool, usecase)
    counts, missing = [], []
    if not files:
        missing.append(f"{tool.pipeline}/ (no pipeline files)")
    for file in files:
        name = str(file.relative_to(tool.folder))
        try:
            source = file.read_text("utf-8")
            if file.suffix == ".py":
                counts.append(
                    count_source(source, tool.api_packages, name, tool.conventional_instances)
                )
            else:
                counts.append(count_yaml(source, name))
        except (OSError, SyntaxError, UnicodeDecodeError):
            missing.append(f"{name} (unreadable)")
    api = frozenset().union(*(c.api for c in counts)) if counts else frozenset()
    return InstrumentationCount(tool.name, tuple(counts), tuple(missing), api)


def count_all(tools: Iterable[str], usecase: str | None = None) -> dict[str, InstrumentationCount]:
    from mlopsbench.toolkit.registry import get_tool

    return {name: count_tool(get_tool(name), usecase) for name in tools}
