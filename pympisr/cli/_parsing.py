"""Parsing helpers shared by the command modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

T = TypeVar("T")


def comma_separated(value: str, convert: Callable[[str], T], kind: str) -> list[T]:
    """The items of ``value`` (comma separated, empty items skipped) through ``convert``.

    Raises :class:`click.BadParameter` naming ``kind`` (e.g. ``"numbers"``) when an item
    does not convert.
    """
    try:
        return [convert(s) for s in value.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of {kind}") from None
