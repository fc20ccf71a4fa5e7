"""Worker processes of `pympisr dataset` die with a main process killed by SIGKILL, and a
rerun removes the temporaries such a kill leaves (issue 9, item 7)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pympisr.atomic import TMP_SUFFIX
from pympisr.datasets.store import item_path
from pympisr.simulation.generate import generate_dataset

def _have_process_list() -> bool:
    try:
        import psutil  # noqa: F401
    except ImportError:
        return Path("/proc/self/stat").exists()
    return True


pytestmark = pytest.mark.skipif(not _have_process_list(),
                                reason="needs /proc or psutil to list processes")


def _children(pid: int) -> dict[int, str]:
    """Living (not zombie) child processes of ``pid``: {pid: command line}."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            kids = psutil.Process(pid).children()
        except psutil.NoSuchProcess:
            return {}
        out = {}
        for kid in kids:
            try:
                if kid.status() != psutil.STATUS_ZOMBIE:
                    out[kid.pid] = " ".join(kid.cmdline())
            except psutil.NoSuchProcess:
                pass
        return out
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        state, ppid = fields[0], int(fields[1])
        if ppid == pid and state != "Z":
            out[int(entry.name)] = cmdline
    return out


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def test_workers_die_when_the_main_process_is_killed(tmp_path: Path) -> None:
    code = ("from pympisr.simulation.generate import generate_dataset\n"
            f"generate_dataset({str(tmp_path / 'data')!r}, dims=2, "
            "splits={'train': 400}, seed=1, workers=2, grid_max=24, model='langevin', "
            "progress=False)\n")
    main = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    workers: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and main.poll() is None:
            workers = {p: c for p, c in _children(main.pid).items() if "spawn_main" in c}
            if len(workers) >= 2:
                break
            time.sleep(0.2)
        assert len(workers) >= 2, f"no workers started (children: {_children(main.pid)})"
        time.sleep(1.0)  # let the workers reach their initializer and start simulating
        main.send_signal(signal.SIGKILL)
        main.wait(timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.1)
        survivors = [p for p in workers if _alive(p)]
        assert not survivors, f"workers {survivors} outlived their killed parent"
    finally:
        if main.poll() is None:
            main.kill()
        for pid in workers:  # never leave processes behind, even when the test fails
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def test_rerun_removes_temporaries_of_killed_workers(tmp_path: Path) -> None:
    root = tmp_path / "data"
    splits = {"train": 2}
    generate_dataset(root, dims=2, splits=splits, seed=3, workers=1, grid_max=12,
                     model="langevin", progress=False)
    item_path(root, "train", 1).unlink()
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    stale = root / "train" / f".00001.h5.{proc.pid}.deadbeef{TMP_SUFFIX}"
    stale.write_bytes(b"half-written item")
    generate_dataset(root, dims=2, splits=splits, seed=3, workers=1, grid_max=12,
                     model="langevin", progress=False)
    assert not stale.exists()
    assert sorted(p.name for p in (root / "train").iterdir()) == ["00000.h5", "00001.h5"]
