"""Atomic output: recognisable temporaries, removal of stale ones left by killed
processes, and clear OutputPathErrors for unusable output paths (issue 9, items 5, 7)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pympisr.atomic import (TMP_SUFFIX, atomic_output, check_output_path, ensure_directory,
                            pid_alive, remove_stale_temporaries, temporary_name_pattern)
from pympisr.errors import OutputPathError, PympisrError


def dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    return proc.pid


def test_temporary_is_named_after_target_and_process(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with atomic_output(target) as tmp:
        match = temporary_name_pattern("out.bin").match(tmp.name)
        assert match is not None and int(match["pid"]) == os.getpid()
        assert tmp.name.startswith(".out.bin.") and tmp.name.endswith(TMP_SUFFIX)
        tmp.write_bytes(b"x")
    assert target.read_bytes() == b"x"


def test_stale_temporary_of_dead_process_is_removed_before_writing(tmp_path: Path) -> None:
    target = tmp_path / "restored.mdf"
    stale = tmp_path / f".restored.mdf.{dead_pid()}.0badc0de{TMP_SUFFIX}"
    stale.write_bytes(b"\0" * 1_000_000)  # a killed write's several-MB leftover
    mine = tmp_path / f".restored.mdf.{os.getpid()}.12345678{TMP_SUFFIX}"  # a live writer's
    mine.write_bytes(b"busy")
    other_target = tmp_path / f".other.h5.{dead_pid()}.abcdef01{TMP_SUFFIX}"
    other_target.write_bytes(b"other")
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert not stale.exists()
    assert mine.exists(), "a temporary of a live process must never be removed"
    assert other_target.exists(), "only the target's own temporaries are cleaned"
    assert remove_stale_temporaries(tmp_path) == [other_target]
    assert mine.exists()


def test_checkpoint_leftover_is_removed_on_next_save(tmp_path: Path) -> None:
    # a training run killed while writing last.pt leaves .last.pt.<pid>.<x>.pympisr-tmp
    stale = tmp_path / f".last.pt.{dead_pid()}.00aa11bb{TMP_SUFFIX}"
    stale.write_bytes(b"partial checkpoint")
    with atomic_output(tmp_path / "last.pt", overwrite=True) as tmp:
        tmp.write_bytes(b"checkpoint")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_output_inside_a_regular_file(tmp_path: Path) -> None:
    blocker = tmp_path / "somefile.txt"
    blocker.write_text("not a folder")
    for path in (blocker / "x.mdf", blocker / "deeper" / "x.mdf"):
        with pytest.raises(OutputPathError, match="somefile.txt is a file, not a folder"):
            with atomic_output(path) as tmp:
                tmp.write_bytes(b"never")
        with pytest.raises(OutputPathError, match="somefile.txt"):
            check_output_path(path)
    with pytest.raises(OutputPathError, match="not a folder"):
        ensure_directory(blocker / "dataset")
    assert blocker.read_text() == "not a folder"  # the user's file is untouched


def test_output_path_that_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError, match="is a folder"):
        with atomic_output(tmp_path, overwrite=True) as tmp:
            tmp.write_bytes(b"x")
    with pytest.raises(OutputPathError, match="is a folder"):
        check_output_path(tmp_path)


def test_unwritable_folder_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # simulated with a failing os.open, so the test also holds when run as root
    real_open = os.open

    def refuse(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(path).endswith(TMP_SUFFIX):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(OutputPathError, match="cannot write in folder") as info:
        with atomic_output(tmp_path / "out.h5") as tmp:
            tmp.write_bytes(b"x")
    assert isinstance(info.value, PympisrError) and isinstance(info.value, OSError)
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="permissions are not enforced for root")
def test_really_unwritable_folder(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(OutputPathError, match="not writable"):
            check_output_path(locked / "x.mdf")
        with pytest.raises(OutputPathError):
            with atomic_output(locked / "x.mdf") as tmp:
                tmp.write_bytes(b"x")
    finally:
        locked.chmod(0o755)
