"""The detector registry: built-in detectors and any a notebook registers by name.

It only maps names to classes; it must never instantiate or score at import time.
"""

from __future__ import annotations

from typing import Any, TypeVar

from suite.detect.base import Detector, DetectorError

DEFAULT_DETECTOR = "default"

_REGISTRY: dict[str, type[Detector]] = {}

D = TypeVar("D", bound=type[Detector])


def register_detector(name: str, cls: D | None = None) -> Any:
    """Register a Detector subclass under `name`: as `@register_detector("x")` on the class,
    or called as `register_detector("x", MyDetector)`. Re-registering a name replaces it."""

    def add(c: D) -> D:
        if not (isinstance(c, type) and issubclass(c, Detector)):
            raise DetectorError(f"register_detector({name!r}): {c!r} is not a Detector subclass")
        if not name or not name.replace("_", "").replace("-", "").isalnum():
            raise DetectorError(f"register_detector: bad name {name!r} (letters, digits, - and _)")
        c.name = name
        _REGISTRY[name] = c
        return c

    if cls is not None:
        return add(cls)
    return add


def get_detector(name: str = DEFAULT_DETECTOR, **params: Any) -> Detector:
    """A fresh detector instance by registered name, with parameter overrides."""
    cls = _REGISTRY.get(name)
    if cls is None:
        raise DetectorError(f"unknown detector {name!r}; known: {', '.join(detector_names())}")
    return cls(**params)


def detector_names() -> list[str]:
    return sorted(_REGISTRY)


def detector_class(name: str) -> type[Detector]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DetectorError(
            f"unknown detector {name!r}; known: {', '.join(detector_names())}"
        ) from None
