"""Wiring helpers both pipelines share: parameters from the core config, components for an
image, the training retry policy and the quality-gated promotion."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from kfp import dsl

from mlopsbench.tools.kfp.pipeline.promote import promote_model
from mlopsbench.usecases.common.params import ParamSpec, config_params

# One retry for transient failures (a preempted node, an OOM-killed pod). kfp.local honours it
# too, so a deterministic failure in training costs the step twice plus the backoff.
TRAIN_RETRIES = 1
TRAIN_BACKOFF = "10s"


def config_parameters(config_class: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make every setting of ``config_class`` a parameter of the decorated pipeline function.

    KFP reads a pipeline's inputs from the function's signature, so the signature is generated
    from the config: the flat names of its ``to_dict()``, their types, defaults and help text
    (as the inputs' descriptions). KFP has no None, so an optional setting defaults to its
    "unset" value ("" or 0) and components turn that back into None. The decorated function
    declares ``settings`` first, then its own parameters; it receives the settings as one dict,
    which it hands to every component.
    """
    specs = config_params(config_class)

    def decorate(body: Callable[..., Any]) -> Callable[..., Any]:
        own = list(inspect.signature(body, eval_str=True).parameters.values())[1:]  # after settings
        signature = inspect.Signature([*map(_parameter, specs), *own], return_annotation=None)

        @functools.wraps(body)
        def pipeline(*args: Any, **kwargs: Any) -> Any:
            given = signature.bind(*args, **kwargs)
            given.apply_defaults()
            values = dict(given.arguments)
            return body({spec.name: values.pop(spec.name) for spec in specs}, **values)

        pipeline.__signature__ = signature  # type: ignore[attr-defined]
        pipeline.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
        pipeline.__doc__ = _with_descriptions(body.__doc__, specs)
        return pipeline

    return decorate


def _parameter(spec: ParamSpec) -> inspect.Parameter:
    return inspect.Parameter(
        spec.name,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,  # KFP passes the inputs positionally
        default=spec.tool_default,
        annotation=spec.kind,
    )


def _with_descriptions(doc: str | None, specs: tuple[ParamSpec, ...]) -> str:
    """The docstring with the settings' help text in its ``Args:`` section (added when there
    is none), which KFP turns into the inputs' descriptions."""
    lines = inspect.cleandoc(doc or "").splitlines()
    if "Args:" not in lines:
        lines += ["", "Args:"]
    at = lines.index("Args:") + 1
    lines[at:at] = [f"    {spec.name}: {_description(spec)}" for spec in specs]
    return "\n".join(lines)


def _description(spec: ParamSpec) -> str:
    unset = f" {spec.unset!r} leaves it unset." if spec.optional else ""
    return " ".join(f"{spec.description}{unset}".split())


def lightweight_components(image: str) -> Callable[[Callable[..., Any]], Any]:
    """``@dsl.component`` for ``image``, which must have mlopsbench (and so kfp) installed.

    The image is chosen when a pipeline is built, so it stays configuration, not a global.
    ``install_kfp_package=False``: the default would ``pip install kfp`` in every component.
    """
    return functools.partial(dsl.component, base_image=image, install_kfp_package=False)


def retry_training(task: Any) -> Any:
    """Training is the step worth retrying (see ``TRAIN_RETRIES``)."""
    return task.set_retry(num_retries=TRAIN_RETRIES, backoff_duration=TRAIN_BACKOFF)


def promote_if_accurate(
    component: Callable[[Callable[..., Any]], Any],
    *,
    usecase: str,
    settings: dict[str, Any],
    data: Any,
    model: Any,
    evaluate: Any,
    mlflow_uri: Any,
    run_name: Any,
    model_output: str = "model",
) -> None:
    """The quality gate: ``promote-model`` runs only when evaluate's accuracy reaches the
    threshold (evaluate returns the accuracy as its single output parameter). ``model``'s
    output named ``model_output`` is the model promoted."""
    with dsl.If(evaluate.outputs["Output"] >= settings["threshold"], name="quality-gate"):
        promote = component(promote_model)(
            usecase=usecase,
            run_name=run_name,
            mlflow_uri=mlflow_uri,
            dataset=data.outputs["dataset"],
            model=model.outputs[model_output],
            metrics=evaluate.outputs["metrics"],
            evaluation=evaluate.outputs["evaluation"],
        )
        # A cached promotion would skip the MLflow logging of a new run: always execute it.
        promote.set_caching_options(enable_caching=False)
