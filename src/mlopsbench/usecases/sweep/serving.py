"""The sweep's best model as a service sees it: a digits model, served as the digits use case
serves its models (a registered sweep model ships the same light module)."""

from __future__ import annotations

from mlopsbench.usecases.digits.serving import Predictor, settings_of

__all__ = ["Predictor", "settings_of"]
