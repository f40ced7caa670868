"""The flows' ``config`` parameter: a pydantic model generated from the core's config dataclass.

Prefect validates flow parameters with pydantic from the flow's signature and shows their JSON
schema as the run form in its UI. ``settings_model(DigitsConfig)`` turns the core's settings
(names, types, defaults, help text, choices: see ``mlopsbench.usecases.common.params``) into
such a model, so a default changed in the core is the flow's default, with no edit here::

    DigitsSettings = settings_model(DigitsConfig)

    @flow
    def digits_pipeline(config: DigitsSettings = DigitsSettings()) -> dict: ...

The model's values are the core config's flat keys (``epochs``, ``data_path``); optional
settings take None. ``settings.to_config()`` rebuilds the core config, whose own checks (value
ranges, a data path that needs a source) run when Prefect validates the parameters: a bad
value fails the flow run before any task starts.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from mlopsbench.errors import ConfigError
from mlopsbench.usecases.common.params import ParamSpec, config_from_params, config_params


class CoreSettings(BaseModel):
    """Base of the generated models: strict keys, and the core config's own validation."""

    # protected_namespaces: the sentiment settings have fields named model_path, model_name.
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())
    config_class: ClassVar[type]

    def to_config(self) -> Any:
        """The core config these settings describe (``DigitsConfig(...)``)."""
        return config_from_params(self.config_class, self.model_dump())

    @model_validator(mode="after")
    def _core_checks(self) -> CoreSettings:
        try:
            self.to_config()
        except ConfigError as exc:  # pydantic reports ValueErrors as validation errors
            raise ValueError(str(exc)) from None
        return self


def settings_model(config_class: type) -> type[CoreSettings]:
    """A pydantic model with one field per setting of ``config_class``, named after it."""
    fields = {spec.name: _field(spec) for spec in config_params(config_class)}
    model = create_model(  # type: ignore[call-overload]
        config_class.__name__,
        __base__=CoreSettings,
        __doc__=(config_class.__doc__ or "").strip(),
        __module__=__name__,
        **fields,
    )
    model.config_class = config_class
    return model  # type: ignore[no-any-return]


def _field(spec: ParamSpec) -> tuple[Any, Any]:
    """``(annotation, Field(default, description=...))`` of one setting."""
    kind: Any = Literal[spec.choices] if spec.choices else spec.kind
    if spec.optional:
        kind = kind | None
    return kind, Field(spec.default, description=spec.description)
