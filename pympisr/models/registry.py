"""Registry of restoration network architectures, chosen by name (BasicSR/KAIR style).

An architecture module registers one or more named sizes of a network class::

    @register("dncnn", depth=17, features=64)
    @register("dncnn-small", depth=8, features=32)
    class DnCNN(nn.Module): ...

``build_model("dncnn-small", dims=3)`` then constructs the class with the registered
defaults updated by the given options. Architecture modules are imported explicitly by
:mod:`pympisr.models` (no folder scanning at import time); a new architecture is one new
file plus one import line there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import UnknownArchitectureError

__all__ = ["ModelSpec", "available_models", "build_model", "model_spec", "register"]

T = TypeVar("T", bound=Callable[..., Any])


@dataclass(frozen=True)
class ModelSpec:
    """A registered network size: the factory (class) and its default options."""

    name: str
    factory: Callable[..., Any]
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        """Class name of the network, e.g. ``"DnCNN"``."""
        return getattr(self.factory, "__name__", str(self.factory))


_REGISTRY: dict[str, ModelSpec] = {}


def register(name: str, **defaults: Any) -> Callable[[T], T]:
    """Class decorator registering ``factory`` under ``name`` with default options.

    Raises
    ------
    ValueError
        ``name`` is already registered to a different factory.
    """

    def decorator(factory: T) -> T:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.factory is not factory:
            raise ValueError(f"model name {name!r} is already registered to "
                             f"{existing.architecture}")
        _REGISTRY[name] = ModelSpec(name, factory, dict(defaults))
        return factory

    return decorator


def _ensure_builtin_models() -> None:
    # importing the package imports every built-in architecture module
    import pympisr.models  # noqa: F401


def model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered under ``name``.

    Raises
    ------
    UnknownArchitectureError
        No such name (a :class:`~pympisr.errors.ModelNotFoundError` and a KeyError); the
        message lists the known names.
    """
    _ensure_builtin_models()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownArchitectureError(f"unknown model {name!r}; available: "
                                       f"{', '.join(available_models())}") from None


def build_model(name: str, **opts: Any) -> Any:
    """Construct the network registered as ``name``; ``opts`` override its defaults."""
    spec = model_spec(name)
    return spec.factory(**{**spec.defaults, **opts})


def available_models() -> list[str]:
    """Sorted names of all registered network sizes."""
    _ensure_builtin_models()
    return sorted(_REGISTRY)
