"""Atomic file output: write to a temporary file beside the target, then rename.

Every file pympisr writes (MDF files, dataset items, models, figures of record) goes
through :func:`atomic_output`, so an interrupted write never leaves a partial file and an
existing file is never replaced unless the caller asked for it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_output"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to ``path`` on success.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False (checked before and after writing).
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: exists; pass overwrite=True to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.chmod(0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        if overwrite:
            os.replace(tmp, target)
        else:
            # os.link fails if the target appeared meanwhile: never clobber a file
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise FileExistsError(
                    f"{target}: exists; pass overwrite=True to replace it") from None
            except OSError:  # file systems without hard links
                if target.exists():
                    raise FileExistsError(
                        f"{target}: exists; pass overwrite=True to replace it") from None
                os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
