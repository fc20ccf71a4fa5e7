"""Parsing helpers shared by the command modules."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = ["FiniteFloat", "comma_separated", "index_list", "json_object_file"]

T = TypeVar("T")

# largest index accepted by index lists (int64 range: arrays of indices stay int64)
MAX_INDEX = 2**63 - 1


def comma_separated(value: str, convert: Callable[[str], T], kind: str) -> list[T]:
    """The items of ``value`` (comma separated, empty items skipped) through ``convert``.

    Raises :class:`click.BadParameter` naming ``kind`` (e.g. ``"numbers"``) when an item
    does not convert.
    """
    try:
        return [convert(s) for s in value.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of {kind}") from None


def json_object_file(path: Path, option: str) -> dict[str, Any]:
    """The JSON object in the file ``path`` given with ``option`` (e.g. ``"--metrics"``);
    :class:`pympisr.errors.InvalidInputError` naming both if it is not one."""
    from ..errors import InvalidInputError

    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{path}: {option} must be a JSON file ({exc})") from exc
    if not isinstance(value, dict):
        raise InvalidInputError(f"{path}: {option} must hold a JSON object")
    return value


def index_list(value: str, kind: str) -> list[int]:
    """0-based indices from a comma-separated ``value``: at least one, each in
    ``0..MAX_INDEX``, none repeated; :class:`click.BadParameter` otherwise (``kind``,
    e.g. ``"channel"``, names them in the message)."""
    items = comma_separated(value, int, "integers")
    if not items:
        raise click.BadParameter(f"{value!r}: give at least one 0-based {kind} number")
    bad = [i for i in items if not 0 <= i <= MAX_INDEX]
    if bad:
        raise click.BadParameter(f"{value!r}: {kind} numbers are 0-based and at most "
                                 f"{MAX_INDEX}; got {bad[0]}")
    repeated = sorted(i for i, n in Counter(items).items() if n > 1)
    if repeated:
        raise click.BadParameter(f"{value!r}: {kind} {', '.join(map(str, repeated))} given "
                                 "more than once")
    return items


class FiniteFloat(click.ParamType):
    """A click option type for finite floats: rejects ``nan``, ``inf`` and ``-inf`` (which
    ``float`` and :class:`click.FloatRange` accept), optionally within ``[min, max]``.

    >>> @click.option("--snr-thresh", type=FiniteFloat(), default=-1.0)
    >>> @click.option("--threshold", type=FiniteFloat(min=0.0), default=1e-5)
    """

    name = "float"

    def __init__(self, min: float | None = None, max: float | None = None) -> None:
        self.min = min
        self.max = max

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.min is not None and number < self.min:
            self.fail(f"{value!r} is below the minimum {self.min:g}", param, ctx)
        if self.max is not None and number > self.max:
            self.fail(f"{value!r} is above the maximum {self.max:g}", param, ctx)
        return number

    def __repr__(self) -> str:
        return f"FiniteFloat(min={self.min!r}, max={self.max!r})"


def parse_range(ctx: click.Context, param: click.Parameter, value: str | None
                ) -> tuple[float, float] | None:
    """click callback: ``"lo,hi"`` -> ``(lo, hi)`` with finite ``0 < lo <= hi`` (None
    passes through)."""
    if value is None:
        return None
    numbers = comma_separated(value, float, "numbers")
    if len(numbers) != 2 or not (math.isfinite(numbers[1]) and 0 < numbers[0] <= numbers[1]):
        raise click.BadParameter(f"{value!r}: give lo,hi with 0 < lo <= hi")
    return numbers[0], numbers[1]
