"""Dataset generation on dask.distributed: the same bytes as the local path, resumable
after a killed run, clear errors when dask or the scheduler is missing."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pympisr.cli import main
from pympisr.errors import InvalidInputError, OptionalDependencyError
from pympisr.simulation import generate
from pympisr.simulation.generate import generate_dataset

distributed = pytest.importorskip("distributed", reason="dask.distributed is a dev extra "
                                  "(pip install '.[dev]'); the scheduler path needs it")

SPLITS = {"train": 24, "val": 4, "test": 0}
SETTINGS = {"dims": 2, "seed": 7, "grid_max": 8}
REPO = Path(__file__).resolve().parents[1]


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file below ``root`` by relative path (temporaries included)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Hashes of the dataset made by the local path in this process (one worker)."""
    root = tmp_path_factory.mktemp("serial") / "ds"
    generate_dataset(root, splits=SPLITS, workers=1, progress=False, **SETTINGS)
    hashes = file_hashes(root)
    assert len(hashes) == 1 + sum(SPLITS.values())
    return hashes


@pytest.fixture(scope="module")
def scheduler() -> str:
    """Address of a 2-worker dask cluster on 127.0.0.1 (workers as threads of this
    process: started in a second; ``scheduler="local"`` itself uses processes, tested
    through the command line below)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  protocol="tcp://",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_cluster_dataset_is_byte_identical(serial: dict[str, str], scheduler: str,
                                           tmp_path: Path) -> None:
    out = tmp_path / "dask"
    generate_dataset(out, splits=SPLITS, scheduler=scheduler, progress=False, **SETTINGS)
    assert file_hashes(out) == serial


@pytest.mark.slow  # starts a cluster of worker processes: 10 to 20 s on 2 busy cores
def test_local_cluster_from_the_cli(serial: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "local"
    result = CliRunner().invoke(main, [
        "dataset", "--dims", "2", "--train", "3", "--val", "1", "--test", "0",
        "--seed", str(SETTINGS["seed"]), "--grid-max", str(SETTINGS["grid_max"]),
        "--out", str(out), "--scheduler", "local", "--workers", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    hashes = file_hashes(out)
    assert sorted(hashes) == ["dataset.json", "train/00000.h5", "train/00001.h5",
                              "train/00002.h5", "val/00000.h5"]
    assert all(hashes[name] == serial[name] for name in hashes if name != "dataset.json")


def test_killed_run_resumes_to_the_same_bytes(serial: dict[str, str], scheduler: str,
                                              tmp_path: Path) -> None:
    out = tmp_path / "resumed"
    total = sum(SPLITS.values())
    cmd = [sys.executable, "-m", "pympisr", "dataset", "--dims", "2",
           "--train", str(SPLITS["train"]), "--val", str(SPLITS["val"]), "--test", "0",
           "--seed", str(SETTINGS["seed"]), "--grid-max", str(SETTINGS["grid_max"]),
           "--out", str(out), "--scheduler", scheduler, "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 45
        while len(list(out.glob("*/*.h5"))) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no item written within 45 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # killed mid-run, like a lost login node
    finally:
        proc.wait(timeout=30)
    written = len(list(out.glob("*/*.h5")))
    assert 2 <= written < total, "the run finished before it was killed: nothing to resume"
    # a temporary left by a killed writer (pid of the dead process) must disappear
    stale = out / "train" / f".00023.h5.{proc.pid}.0123abcd.pympisr-tmp"
    stale.write_bytes(b"partial")

    generate_dataset(out, splits=SPLITS, scheduler=scheduler, progress=False, **SETTINGS)
    assert file_hashes(out) == serial


def test_partial_dataset_is_completed_on_the_cluster(serial: dict[str, str], scheduler: str,
                                                     tmp_path: Path) -> None:
    out = tmp_path / "grown"
    generate_dataset(out, splits={"train": 5, "val": 1}, workers=1, progress=False,
                     **SETTINGS)
    first = file_hashes(out)
    generate_dataset(out, splits=SPLITS, scheduler=scheduler, progress=False, **SETTINGS)
    hashes = file_hashes(out)
    assert hashes == serial
    # items of the first run were kept, not rewritten
    assert all(hashes[name] == digest for name, digest in first.items()
               if name != "dataset.json")


def test_missing_dask_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import fails
    with pytest.raises(OptionalDependencyError, match=r"dask\[distributed\]"):
        generate_dataset(tmp_path / "ds", splits={"train": 1}, scheduler="local", workers=1,
                         progress=False, **SETTINGS)
    assert not list((tmp_path / "ds").glob("*/*.h5"))


def test_unreachable_scheduler_names_the_address(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setattr(generate, "DASK_CONNECT_TIMEOUT_S", 1)
    with pytest.raises(InvalidInputError, match=r"tcp://127\.0\.0\.1:9.*cannot connect"):
        generate_dataset(tmp_path / "ds", splits={"train": 1}, scheduler="tcp://127.0.0.1:9",
                         progress=False, **SETTINGS)


def test_worker_count_only_for_the_local_cluster(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="workers applies only to the local"):
        generate_dataset(tmp_path / "ds", splits={"train": 1}, scheduler="tcp://h:8786",
                         workers=3, progress=False, **SETTINGS)
    with pytest.raises(InvalidInputError, match="scheduler must be"):
        generate_dataset(tmp_path / "ds", splits={"train": 1}, scheduler=" ",
                         progress=False, **SETTINGS)
