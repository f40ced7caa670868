"""Which MLflow store a run goes to: resolve the URI, check it before anything is written, open
the experiment with its artifacts next to the store (never ``./mlruns``), keep passwords out.

``mlflow`` is imported only by the functions that talk to a store (:func:`import_mlflow`): the
URI checks run before the ~3 s import, so a typo fails at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import ParseResult, urlparse

from mlopsbench.errors import ConfigError, MlopsbenchError, ServerError
from mlopsbench.support.uris import redact_uri

# Schemes MLflow can track to; anything else is a typo we catch before MLflow hangs or guesses.
DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
ALLOWED_SCHEMES = ("http", "https", "file", "databricks", *DB_SCHEMES)
# Set by mlflow.set_tracking_uri / set_registry_uri for subprocesses; restored after our runs.
URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def import_mlflow() -> Any:
    """Import mlflow with telemetry off (must be set before the first import).

    Also bounds MLflow's HTTP retries (default 7 with exponential backoff: minutes of silence
    when a tracking server dies mid-run); users can still override both variables.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    import mlflow

    return mlflow


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's text (its type when it has none)."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


# ------------------------------------------------------------------------------------------
# the URI: resolve, parse, check
# ------------------------------------------------------------------------------------------


def default_tracking_uri(store_root: str | Path) -> str:
    """``sqlite:///<store_root>/mlflow.db`` (artifacts go to ``<store_root>/artifacts``)."""
    root = Path(store_root).resolve()
    return f"sqlite:///{root / 'mlflow.db'}"


def resolve_tracking_uri(explicit: str | None, store_root: str | Path) -> str:
    """The URI to use: explicit, else ``$MLFLOW_TRACKING_URI``, else a SQLite store in ``store_root``."""
    uri = (explicit or os.environ.get("MLFLOW_TRACKING_URI") or "").strip()
    return uri or default_tracking_uri(store_root)


def parse_uri(uri: str) -> ParseResult:
    """``urlparse`` with a one-line ConfigError (URI redacted) for a malformed URI.

    ``urlparse`` raises ValueError for e.g. an unclosed IPv6 bracket (``http://[::1``).
    """
    try:
        parts = urlparse(uri)
        parts.port  # noqa: B018 - raises for a port that is not a number in 0..65535
    except ValueError as exc:
        raise ConfigError(
            f"malformed MLflow tracking URI {redact_uri(uri)!r}: {first_line(exc)}"
        ) from None
    return parts


def uri_scheme(uri: str) -> str:
    """The base scheme (``postgresql+psycopg2`` -> ``postgresql``; a bare path -> ``file``)."""
    scheme = parse_uri(uri).scheme.lower()
    if not scheme or len(scheme) == 1:  # "" or a Windows drive letter
        return "file"
    return scheme.split("+", 1)[0]


def check_tracking_uri(uri: str, timeout_s: float = 3.0) -> None:
    """Reject unknown schemes; create a SQLite store's folder; for http(s), fail fast (one line)
    when the server is unreachable (MLflow itself would retry for minutes)."""
    scheme = uri_scheme(uri)
    if scheme not in ALLOWED_SCHEMES:
        raise ConfigError(
            f"unsupported MLflow tracking URI scheme {scheme!r} in {redact_uri(uri)!r}; "
            "use http(s)://host:port, sqlite:///path.db, postgresql://… or file:///path"
        )
    db_path = sqlite_path(uri)
    if db_path is not None:
        try:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create MLflow store folder {db_path.parent}: {exc.strerror}"
            ) from None
    if scheme in ("http", "https"):
        check_server(uri, timeout_s)


def check_server(uri: str, timeout_s: float = 3.0) -> None:
    """GET ``<uri>/health``; raise ServerError with one line when it does not answer 200."""
    from mlopsbench.support.net import check_health

    check_health(uri.rstrip("/"), "/health", f"MLflow tracking server {uri}", timeout_s)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for in-memory or other schemes)."""
    if uri_scheme(uri) != "sqlite":
        return None
    path = uri.split("://", 1)[1]
    if path in ("", "/", "/:memory:"):
        return None
    return Path(path[1:] if path.startswith("/") else path)


def absolute_store_uri(uri: str) -> str:
    """A relative SQLite store or bare folder, as typed where the user stands, made absolute.

    Pipelines run in their own run folder (a flow's, a DAG's, a stage's), where a relative
    store would point somewhere else; servers and absolute URIs come back unchanged.
    """
    db_path = sqlite_path(uri)
    if db_path is not None and not db_path.is_absolute():
        return f"{uri.split('://', 1)[0]}:///{db_path.expanduser().resolve()}"
    bare_path = ":" not in uri.split("/", 1)[0] and not uri.startswith("databricks")
    if bare_path and uri_scheme(uri) == "file":
        return str(Path(uri).expanduser().resolve())
    return uri


def artifact_location_for(uri: str, store_root: str | Path) -> str | None:
    """Where new experiments keep artifacts: next to a SQLite file, or in ``store_root``.

    A tracking server decides for itself (None). Without this, MLflow would write ``./mlruns``
    relative to whatever the current directory happens to be.
    """
    if uri_scheme(uri) in ("http", "https", "databricks", "file"):
        return None
    db_path = sqlite_path(uri)
    folder = db_path.parent if db_path is not None else Path(store_root)
    return (folder.resolve() / "artifacts").as_uri()


def unredact_uri(recorded: str) -> str:
    """A recorded (redacted) URI back to the real one, when ``$MLFLOW_TRACKING_URI`` is it."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "")
    if "***" not in recorded or not env:
        return recorded
    return env if redact_uri(env) == recorded else recorded


# ------------------------------------------------------------------------------------------
# the store: point MLflow at it, open the experiment
# ------------------------------------------------------------------------------------------


@contextmanager
def environment_kept(names: tuple[str, ...] = URI_VARIABLES) -> Iterator[None]:
    """Put ``names`` back as they were after the block.

    ``mlflow.set_tracking_uri`` exports ``MLFLOW_TRACKING_URI`` (for subprocesses): left set, the
    next run in this process would take our URI for the user's choice.
    """
    saved = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def use_tracking_uri(uri: str) -> Any:
    """Point MLflow's fluent API (runs, models, registry) at ``uri``; return a client for it.

    Both URIs are set: a registry URI set earlier in this process would otherwise keep sending
    model versions to the previous store.
    """
    mlflow = import_mlflow()
    with environment_kept():
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_name(usecase: str) -> str:
    return f"mlopsbench-{usecase}"


def open_experiment(uri: str, usecase: str, store_root: str | Path) -> tuple[Any, str]:
    """Connect to the store and get (or create) ``mlopsbench-<usecase>``: (client, experiment id).

    A store that cannot be opened (missing database driver, corrupt SQLite file, refused
    connection) becomes one ServerError line instead of a stack of SQLAlchemy frames.
    """
    try:
        client = use_tracking_uri(uri)
        experiment_id = ensure_experiment(
            client, experiment_name(usecase), artifact_location_for(uri, store_root)
        )
    except MlopsbenchError:
        raise
    except Exception as exc:
        raise ServerError(
            f"cannot open MLflow store {redact_uri(uri)}: {first_line(exc)}"
        ) from None
    return client, experiment_id


def ensure_experiment(client: Any, name: str, artifact_location: str | None) -> str:
    """Experiment id of ``name``, creating it (with our artifact location) the first time."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return str(experiment.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=artifact_location))
    except Exception:  # another process created it between our get and create
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return str(experiment.experiment_id)
