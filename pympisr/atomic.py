"""Atomic file output: write to a temporary file beside the target, then rename.

Every file pympisr writes (MDF files, dataset items, models, figures of record) goes
through :func:`atomic_output`, so an interrupted write never leaves a partial file and an
existing file is never replaced unless the caller asked for it.

Temporary files are named ``.<target name>.<pid>.<random>.pympisr-tmp`` (see
:func:`temporary_name_pattern`). A process killed with SIGKILL cannot remove its
temporary file, so before writing a target :func:`atomic_output` removes the stale
temporaries of that target: those whose owning process (the pid in the name) no longer
exists. Temporaries of live processes (including this one) are never touched.

Output paths are checked before anything is written: a parent that is a regular file, a
target that is a folder, or a folder that cannot be created or written to raises
:class:`~pympisr.errors.OutputPathError` naming the path and the problem.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputPathError

__all__ = ["TMP_SUFFIX", "atomic_output", "check_output_path", "ensure_directory", "pid_alive",
           "remove_stale_temporaries", "temporary_name_pattern"]

TMP_SUFFIX = ".pympisr-tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def pid_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` exists (``os.kill(pid, 0)``; a process of
    another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True  # unknown: be conservative, never remove another process's file
    return True


def temporary_name_pattern(name: str | None = None) -> re.Pattern[str]:
    """Regular expression matching the temporary file names of target ``name`` (any
    target if None); group ``pid`` is the owning process id."""
    target = re.escape(name) if name is not None else r".+"
    return re.compile(rf"^\.(?P<target>{target})\.(?P<pid>\d+)\.[0-9a-f]+"
                      rf"{re.escape(TMP_SUFFIX)}$")


def remove_stale_temporaries(directory: str | os.PathLike[str],
                             name: str | None = None) -> list[Path]:
    """Remove temporaries (of target ``name``, or of any target) in ``directory`` whose
    owning process is gone; return the removed paths. A missing folder is fine."""
    folder = Path(directory)
    pattern = temporary_name_pattern(name)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or pid_alive(int(match["pid"])):
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            continue  # removed meanwhile by another run
        removed.append(Path(entry.path))
    return removed


def _not_a_folder(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` (or ``path`` itself) that is not a
    folder, if any."""
    for candidate in reversed([path, *path.parents]):
        if candidate.exists() and not candidate.is_dir():
            return candidate
        if not candidate.exists():
            return None
    return None


def check_output_path(path: str | os.PathLike[str], *, directory: bool = False) -> Path:
    """Check, without creating anything, that a file (or with ``directory=True`` a folder)
    could be written at ``path``: it is not a folder (resp. not a file), no existing
    ancestor is a regular file, and the nearest existing ancestor folder is writable.

    Commands call this before long computations so a bad ``--out`` fails at once.

    Raises
    ------
    OutputPathError
        The message names the path and the problem.
    """
    target = Path(path)
    if directory:
        if target.exists() and not target.is_dir():
            raise OutputPathError(f"{target}: exists and is not a folder")
    elif target.is_dir():
        raise OutputPathError(f"{target}: is a folder; give a file name")
    blocker = _not_a_folder(target.parent)
    if blocker is not None:
        raise OutputPathError(f"{target}: cannot create: {blocker} is a file, not a folder")
    candidates = [target, *target.parents] if directory else list(target.parents)
    existing = next((p for p in candidates if p.exists()), Path("."))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f"{target}: cannot create: folder {existing} is not writable")
    return target


def ensure_directory(path: str | os.PathLike[str], *, purpose: str = "output folder") -> Path:
    """Create folder ``path`` (with parents) if needed and check it is writable.

    Raises
    ------
    OutputPathError
        A component of ``path`` is a regular file, the folder cannot be created, or it
        is not writable; the message names the path and the problem.
    """
    folder = Path(path)
    blocker = _not_a_folder(folder)
    if blocker is not None:
        raise OutputPathError(f"{folder}: cannot use as {purpose}: {blocker} is a file, "
                              "not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputPathError(f"{folder}: cannot create {purpose}: {reason}") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"{folder}: {purpose} is not writable")
    return folder


def _create_temporary(target: Path) -> Path:
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}"
                               f"{TMP_SUFFIX}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise OutputPathError(f"{target}: cannot write in folder {target.parent}: "
                                      f"{exc.strerror}") from exc
            if exc.errno == errno.ENAMETOOLONG:
                raise OutputPathError(f"{target}: file name too long") from exc
            raise
        os.close(fd)
        return tmp
    raise FileExistsError(f"{target}: could not create a unique temporary file")  # pragma: no cover


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to ``path`` on success.

    The target's folder is created if needed; stale temporaries of the target left by
    killed processes are removed first (module docstring).

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False (checked before and after writing).
    OutputPathError
        ``path`` is a folder, its parent is not a folder, or the parent cannot be
        created or written to.
    """
    target = Path(path)
    if target.is_dir():
        raise OutputPathError(f"{target}: is a folder; give a file name")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: exists; pass overwrite=True to replace it")
    blocker = _not_a_folder(target.parent)
    if blocker is not None:
        raise OutputPathError(f"{target}: cannot create: {blocker} is a file, not a folder")
    ensure_directory(target.parent, purpose=f"folder for {target.name}")
    remove_stale_temporaries(target.parent, target.name)
    tmp = _create_temporary(target)
    try:
        yield tmp
        tmp.chmod(0o666 & ~_umask())  # created 0600; give the file normal permissions
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
