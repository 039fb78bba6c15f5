"""Name -> estimator class registry: ``get_estimator("ksg", k=5)``."""

from __future__ import annotations

import inspect
from typing import Any, TypeVar

from lit_infobottleneck.estimators.base import Estimator

_REGISTRY: dict[str, type[Estimator]] = {}

E = TypeVar("E", bound=type[Estimator])


def register(cls: E) -> E:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"estimator name {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def available_estimators() -> list[str]:
    """Sorted names accepted by ``get_estimator``."""
    return sorted(_REGISTRY)


def get_estimator(name: str, **params: Any) -> Estimator:
    """Build the estimator registered as ``name`` with its parameters.

    Raises ``ValueError`` for an unknown name (listing the known ones) or an unknown
    parameter (listing the accepted ones).
    """
    if name not in _REGISTRY:
        known = ", ".join(available_estimators())
        raise ValueError(f"unknown estimator {name!r}; available estimators: {known}.")
    cls = _REGISTRY[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"estimator {name!r} got unknown parameter(s) {unknown}; accepted: {accepted}."
        )
    return cls(**params)
