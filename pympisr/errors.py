"""Exception types of pympisr."""

from __future__ import annotations

import os

__all__ = ["MDFError", "PympisrError"]


class PympisrError(Exception):
    """Base of the errors pympisr raises for problems with a user's input (files, models,
    environment), as opposed to bugs; the CLI prints their message without a traceback."""


class MDFError(PympisrError):
    """A file could not be read or written as an MDF (or pympisr HDF5) file.

    The message always names the file, the field (HDF5 path) and the problem::

        MDFError("/data/sm.mdf", "/measurement/data", "missing mandatory dataset")
        -> "/data/sm.mdf: /measurement/data: missing mandatory dataset"

    Attributes
    ----------
    path, field, problem:
        The three parts of the message; ``field`` may be ``"/"`` for whole-file problems.
    """

    def __init__(self, path: str | os.PathLike[str], field: str, problem: str) -> None:
        self.path = os.fspath(path)
        self.field = field
        self.problem = problem
        super().__init__(f"{self.path}: {field}: {problem}")
