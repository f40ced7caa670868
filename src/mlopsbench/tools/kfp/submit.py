"""Submit a compiled pipeline to a Kubeflow Pipelines cluster with ``kfp.Client``.

``kfp.Client(host)`` asks the server's healthz endpoint right away and retries 5 times, 5 s
apart, before it gives up; an unreachable host would hang the CLI for half a minute and end in
a traceback. A short HTTP probe first turns that into one line within a few seconds.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlopsbench.errors import ConfigError, ServerError
from mlopsbench.tools.kfp.params import KfpSettings, check_usecase
from mlopsbench.tools.kfp.pipelines import PIPELINE_NAMES, compile_pipeline

HEALTHZ = "/apis/v2beta1/healthz"


def build_config(usecase: str, **overrides: Any) -> Any:
    """The use case's config from CLI flags; ``None`` keeps the config's default. Validation
    (bad parameters) happens here, before anything is compiled or sent."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if check_usecase(usecase) == "digits":
        from mlopsbench.usecases.digits.config import DigitsConfig

        return DigitsConfig.from_dict(given)
    from mlopsbench.usecases.sentiment.config import SentimentConfig

    return SentimentConfig.from_dict(given)


def check_host(host: str, timeout_s: float = 3.0) -> str:
    """Normalise ``host`` and make sure the KFP API answers its healthz endpoint with 200.

    Anything else would send ``kfp.Client`` into its 25 s retry loop. Clusters behind a login
    (multi-user Kubeflow) answer with a redirect: reach them through a port-forward instead.
    """
    import requests

    parsed = urlparse(host)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(
            f"KFP host must be an http(s) URL like http://127.0.0.1:8080, got {host!r}"
        )
    host = host.rstrip("/")
    try:
        response = requests.get(host + HEALTHZ, timeout=timeout_s, allow_redirects=False)
    except requests.RequestException as exc:
        reason = type(exc).__name__.replace("Error", " error").strip().lower()
        raise ServerError(f"KFP host {host} is unreachable ({reason})") from None
    if response.status_code != 200:
        raise ServerError(
            f"KFP host {host} answered HTTP {response.status_code} on {HEALTHZ}: not a KFP API "
            "endpoint, or it needs a login (use kubectl port-forward to the ml-pipeline service)"
        )
    return host


def submit(
    host: str,
    usecase: str,
    arguments: dict[str, Any],
    *,
    settings: KfpSettings,
    experiment: str = "mlopsbench",
    run_name: str | None = None,
    package: str | Path | None = None,
    timeout_s: float = 3.0,
) -> dict[str, str]:
    """Upload-and-run: compile (unless ``package`` is given), then create a run in ``experiment``."""
    check_usecase(usecase)
    host = check_host(host, timeout_s)
    with tempfile.TemporaryDirectory(prefix="mlopsbench-kfp-") as tmp:
        if package is None:
            package = compile_pipeline(usecase, settings, Path(tmp) / f"{usecase}_pipeline.yaml")
        elif not Path(package).is_file():
            raise ConfigError(f"compiled pipeline not found: {package}")
        return _create_run(host, str(package), usecase, arguments, experiment, run_name)


def _create_run(
    host: str,
    package: str,
    usecase: str,
    arguments: dict[str, Any],
    experiment: str,
    run_name: str | None,
) -> dict[str, str]:
    import kfp
    from kfp_server_api.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP >= 2.0.0-beta.2"
            client = kfp.Client(host=host)
            result = client.create_run_from_pipeline_package(
                package,
                arguments=arguments,
                run_name=run_name or f"{PIPELINE_NAMES[usecase]}",
                experiment_name=experiment,
            )
    except ApiException as exc:
        raise ServerError(
            f"KFP host {host} refused the run: HTTP {exc.status} {exc.reason}"
        ) from None
    except (OSError, HTTPError) as exc:
        raise ServerError(f"KFP host {host} failed during submission: {exc}") from None
    return {"run_id": str(result.run_id), "url": f"{host}/#/runs/details/{result.run_id}"}
