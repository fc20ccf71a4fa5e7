"""Generation of simulated system-matrix datasets (``pympisr dataset``).

Each split item ``i`` is one system matrix simulated from parameters drawn by
:func:`~pympisr.simulation.parameters.sample_parameters` with the item seed
``SeedSequence([seed, split_id, i])`` (split ids: train 0, val 1, test 2), so an item
does not depend on the number of workers, the order of work or on other items.

Storage (:mod:`pympisr.datasets.store`): only components that carry signal are kept.

Selection rule
    Rank all components ``(c, k)`` with ``k >= 1`` (the DC bin is zero after the time
    derivative) by their energy ``E = sum_voxels |S|^2``; keep those with
    ``E >= threshold * max E`` over all channels and frequencies of the SM (default
    ``threshold = 1e-5``: RMS amplitude at least 0.32% of the strongest component), at
    most ``max_components`` strongest (default 400 in 2D, 600 in 3D). The maximum is
    taken over all channels, not per channel, because a 2D trajectory's z channel carries
    only numerical noise for Langevin particles. 3D SMs never hold the full band in
    memory (2.2 GB per 1000 voxels): a first pass computes the energies of all bins
    without storing them, a second pass simulates only the selected bins. For 3D grids
    larger than 16 voxels per axis the first pass uses every second voxel per axis (1/8
    of the cost, energies scaled by the voxel-count ratio); the stored ``energy`` is
    always the exact one of the full grid.

Parallelism and resuming
    Items are simulated in worker processes (``spawn``; numba and FFT single-threaded per
    worker) or in-process with all threads when ``workers == 1``. Every item file is
    written atomically (temporary file + rename); a rerun skips finished items and
    removes temporary files left by a killed run, so nothing is duplicated or
    half-written. Workers die with the main process, even when it is killed with
    SIGKILL: on Linux the kernel signals them (``prctl(PR_SET_PDEATHSIG)``), and on every
    system a watchdog thread in each worker exits when its parent process is gone.

Distributed generation (dask.distributed)
    With ``scheduler`` (``pympisr dataset --scheduler ADDRESS`` or ``--scheduler local``)
    items are simulated as dask tasks on the cluster's workers and sent back to this
    process, which writes each one with the same atomic writer. The output folder
    therefore needs to exist only here (no shared file system), the item bytes are those
    of the local path (same parameters, same simulation code, same writer; workers must
    run the same pympisr, numpy and numba versions), and resuming works as above. At most
    twice as many items as the cluster has worker threads are in flight, so memory stays
    bounded for large 3D items. ``"local"`` starts a :class:`distributed.LocalCluster` of
    ``workers`` single-threaded processes on 127.0.0.1 for the run. dask is imported only
    when a scheduler is given.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import ctypes.util
import json
import math
import multiprocessing
import numbers
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_output, ensure_directory, remove_stale_temporaries
from ..datasets.store import DatasetItem, item_path, json_default, read_dataset_info, write_item
from ..errors import DatasetError, InvalidInputError, OptionalDependencyError

__all__ = ["SelectionRule", "generate_dataset", "item_seed", "simulate_item"]

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
_ESTIMATE_ABOVE = 16  # 3D grids with an axis above this rank components on a sub-grid


@dataclass(frozen=True)
class SelectionRule:
    """Which components of a simulated SM are stored (see module docstring)."""

    threshold: float = 1e-5
    max_components: int = 400

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, numbers.Real) \
                or not math.isfinite(self.threshold) or self.threshold < 0:
            raise InvalidInputError(f"selection rule: threshold must be a finite number "
                                    f">= 0, got {self.threshold!r}")
        if isinstance(self.max_components, bool) \
                or not isinstance(self.max_components, numbers.Integral) \
                or self.max_components < 1:
            raise InvalidInputError(f"selection rule: max_components must be an integer "
                                    f">= 1, got {self.max_components!r}")

    def select(self, energy: np.ndarray) -> np.ndarray:
        """(M, 2) ``(channel, bin)`` pairs chosen from energies ``(C, K)``, sorted."""
        e = np.array(energy, dtype=np.float64)
        e[:, 0] = 0.0
        peak = e.max()
        if peak <= 0:
            return np.zeros((0, 2), np.int64)
        flat = np.flatnonzero(e.ravel() >= self.threshold * peak)
        flat = flat[np.argsort(e.ravel()[flat], kind="stable")[::-1][: self.max_components]]
        pairs = np.stack(np.unravel_index(np.sort(flat), e.shape), axis=-1)
        return pairs.astype(np.int64)


def default_rule(dims: int) -> SelectionRule:
    return SelectionRule(max_components=400 if dims == 2 else 600)


def item_seed(seed: int, split: str, index: int) -> int:
    """Sampler seed of item ``index`` of ``split`` (a 63-bit integer)."""
    if split not in SPLIT_IDS:
        raise InvalidInputError(f"unknown split {split!r}; expected one of "
                                f"{sorted(SPLIT_IDS)}")
    state = np.random.SeedSequence([int(seed), SPLIT_IDS[split], int(index)]).generate_state(
        2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def item_parameters(seed: int, split: str, index: int, *, dims: int, model: str,
                    grid_max: int | None, ranges: dict[str, Any] | None = None):
    """The simulation parameters of one item (grid capped at ``grid_max`` per axis;
    ``ranges`` overrides sampler ranges, see :func:`~.parameters.sampler_ranges`)."""
    from .parameters import sample_parameters

    params = sample_parameters(item_seed(seed, split, index), dims=dims, model=model,
                               ranges=ranges)
    if grid_max is not None:
        capped = tuple(min(g, int(grid_max)) for g in params.grid[:dims]) + (
            (1,) if dims == 2 else ())
        if capped != params.grid:
            params = params.replace(grid=capped, extra={**params.extra,
                                                        "sampled_grid": list(params.grid)})
    return params


def simulate_item(params, rule: SelectionRule) -> DatasetItem:
    """Simulate one SM and keep the components chosen by ``rule``."""
    from .system_matrix import component_energies, simulate_spectra

    nx, ny, nz = params.grid
    if params.dims == 2:
        spectra = simulate_spectra(params)  # (3, K, N), small in 2D
        energy = np.einsum("ckn,ckn->ck", spectra.real, spectra.real, dtype=np.float64)
        energy += np.einsum("ckn,ckn->ck", spectra.imag, spectra.imag, dtype=np.float64)
        pairs = rule.select(energy)
        components = spectra[pairs[:, 0], pairs[:, 1]]
        kept_energy = energy[pairs[:, 0], pairs[:, 1]]
    else:
        stride = 1 if max(params.grid) <= _ESTIMATE_ABOVE else 2
        pairs = rule.select(component_energies(params, voxel_stride=stride))
        bins = np.unique(pairs[:, 1])
        spectra = simulate_spectra(params, bins=bins)  # (3, K_sel, N)
        rows = np.searchsorted(bins, pairs[:, 1])
        components = spectra[pairs[:, 0], rows]
        kept_energy = np.sum(np.abs(components.astype(np.complex128)) ** 2, axis=-1)
    meta = params.to_dict()
    meta["selection_rule"] = asdict(rule)
    return DatasetItem(
        components=components.reshape(-1, nz, ny, nx), channel=pairs[:, 0].astype(np.int16),
        frequency_index=pairs[:, 1].astype(np.int32), energy=kept_energy.astype(np.float32),
        grid=params.grid, fov=params.fov, center=params.center, params=meta)


def _simulate_task(task: tuple) -> DatasetItem:
    """The item of one generation task (``(root, split, index, seed, dims, model,
    grid_max, rule, ranges)``), not written."""
    _, split, index, seed, dims, model, grid_max, rule, ranges = task
    params = item_parameters(seed, split, index, dims=dims, model=model, grid_max=grid_max,
                             ranges=ranges)
    return simulate_item(params, rule)


def _store_item(task: tuple, item: DatasetItem) -> None:
    """Write the item of ``task`` atomically (an existing file is left as it is)."""
    root, split, index = task[:3]
    try:
        write_item(item_path(root, split, index), item)
    except FileExistsError:
        pass  # finished meanwhile by another run: identical by determinism


def _make_item(task: tuple) -> tuple[str, int, float]:
    start = time.perf_counter()
    _store_item(task, _simulate_task(task))
    return task[1], task[2], time.perf_counter() - start


def _simulate_on_dask_worker(task: tuple) -> DatasetItem:
    """Dask task: simulate one item single-threaded (as a local worker process does)."""
    from .system_matrix import configure_threads

    configure_threads(1)
    return _simulate_task(task)


DASK_CONNECT_TIMEOUT_S = 30
DASK_WORKER_WAIT_S = 120
DASK_INSTALL = "pip install 'dask[distributed]'  (or: pip install 'pympisr[dev]')"


def _dask_client(scheduler: str, workers: int | None) -> tuple[Any, Any]:
    """``(client, local cluster or None)`` for ``scheduler`` (an address or "local")."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise OptionalDependencyError(
            f"scheduler {scheduler!r}: distributed generation needs dask.distributed, "
            f"which is not installed ({exc}); install it with: {DASK_INSTALL}") from exc
    if scheduler == "local":
        import logging

        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1,
                               threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, silence_logs=logging.CRITICAL)
        try:
            return Client(cluster), cluster
        except BaseException:
            cluster.close()
            raise
    try:
        return Client(scheduler, timeout=DASK_CONNECT_TIMEOUT_S), None
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidInputError(f"scheduler {scheduler!r}: cannot connect to a dask "
                                f"scheduler ({exc})") from exc


def _run_on_dask(tasks: list[tuple], scheduler: str, workers: int | None,
                 on_done: Any) -> None:
    """Simulate ``tasks`` on a dask cluster and write each item here as it arrives;
    ``on_done()`` is called after each write."""
    client, cluster = _dask_client(scheduler, workers)
    from dask.distributed import as_completed

    try:
        try:
            client.wait_for_workers(1, timeout=DASK_WORKER_WAIT_S)
        except (TimeoutError, OSError) as exc:
            raise InvalidInputError(f"scheduler {scheduler!r}: no dask worker connected "
                                    f"within {DASK_WORKER_WAIT_S} s") from exc
        window = max(4, 2 * sum(client.nthreads().values()))
        queue = iter(tasks)
        in_flight: dict[Any, tuple] = {}
        done = as_completed()

        def submit_next() -> None:
            task = next(queue, None)
            if task is not None:
                future = client.submit(_simulate_on_dask_worker, task, pure=False)
                in_flight[future] = task
                done.add(future)

        for _ in range(window):
            submit_next()
        try:
            for future in done:
                task = in_flight.pop(future)
                _store_item(task, future.result())
                future.release()
                on_done()
                submit_next()
        except BaseException:
            client.cancel(list(in_flight))
            raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_WATCHDOG_INTERVAL_S = 0.5


def _die_with_parent(parent_pid: int) -> None:
    """Make this (worker) process end when process ``parent_pid`` ends.

    Linux: the kernel sends SIGKILL when the parent dies (``PR_SET_PDEATHSIG``). Everywhere:
    a daemon thread polls ``os.getppid()`` and exits the process once it differs from
    ``parent_pid`` (the worker was re-parented, i.e. its parent is gone).
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no usable libc: the watchdog below still works
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(_WATCHDOG_INTERVAL_S)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="pympisr-parent-watchdog", daemon=True).start()


def _worker_init(parent_pid: int | None = None) -> None:
    from .system_matrix import configure_threads

    if parent_pid is not None:
        _die_with_parent(parent_pid)
    configure_threads(1)


def _remove_stray_temporaries(folder: Path) -> int:
    """Remove the temporaries of killed runs in a split folder: those of the atomic
    writer whose process is gone, and item temporaries of older pympisr versions."""
    count = len(remove_stale_temporaries(folder))
    for tmp in folder.glob(".[0-9]*.h5.*.tmp"):  # older naming, no owner recorded
        tmp.unlink(missing_ok=True)
        count += 1
    return count


def _write_info(root: Path, info: dict[str, Any]) -> None:
    path = root / "dataset.json"
    if path.exists():
        old = read_dataset_info(root)
        keys = ("dims", "seed", "model", "grid_max", "rule", "sampler_ranges")
        if any(json.dumps(old.get(k), default=json_default)
               != json.dumps(info.get(k), default=json_default) for k in keys):
            raise DatasetError(
                f"{path}: existing dataset was made with different settings "
                f"({ {k: old.get(k) for k in keys} }); use another output folder")
        splits = dict(old.get("splits", {}))
        for name, count in info["splits"].items():  # never shrink: items on disk stay valid
            splits[name] = max(int(count), int(splits.get(name, 0)))
        merged = {**old, "splits": splits}
        if merged == old:
            return
        info = merged
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(info, indent=2))


def generate_dataset(out: str | os.PathLike[str], *, dims: int = 2,
                     splits: dict[str, int] | None = None, seed: int = 0,
                     workers: int | None = None, grid_max: int | None = None,
                     model: str = "anisotropy", rule: SelectionRule | None = None,
                     ranges: dict[str, Any] | None = None,
                     scheduler: str | None = None,
                     progress: bool = True) -> dict[str, Any]:
    """Generate (or complete) a dataset in ``out``; returns the ``dataset.json`` content.

    Parameters
    ----------
    out: dataset folder (created).
    dims: 2 or 3.
    splits: items per split, e.g. ``{"train": 1000, "val": 300, "test": 300}``.
    seed: dataset seed (item seeds derive from it, see :func:`item_seed`).
    workers: processes (default: CPU count); 1 runs in this process with all threads.
        With ``scheduler="local"``: worker processes of the local dask cluster.
    grid_max: cap on the sampled grid size per axis (faster data for CPU training).
    model: "anisotropy" (paper) or "langevin".
    rule: component selection (default :func:`default_rule`).
    ranges: sampler ranges replacing some of ``SAMPLER_RANGES`` (e.g.
        ``{"samples_per_fwhm": (4, 60), "grid": (12, 44)}``); recorded in dataset.json.
    scheduler: None (local worker processes), a dask scheduler address
        (``"tcp://host:8786"``) or ``"local"`` (a dask cluster on 127.0.0.1 for this run);
        see the module docstring. The items are the same, byte for byte.
    progress: show a tqdm progress bar.
    """
    from tqdm import tqdm

    from .. import __version__
    from .parameters import sampler_ranges

    if dims not in (2, 3):
        raise InvalidInputError(f"dims must be 2 or 3, got {dims!r}")
    splits = dict(splits or {"train": 1000, "val": 300, "test": 300})
    for name, count in splits.items():
        if name not in SPLIT_IDS:
            raise InvalidInputError(f"unknown split {name!r}; expected one of "
                                    f"{sorted(SPLIT_IDS)}")
        if count < 0:
            raise InvalidInputError(f"split {name!r}: negative item count {count}")
    if grid_max is not None and grid_max < 2:
        raise InvalidInputError(f"grid_max must be >= 2, got {grid_max}")
    if workers is not None and workers < 1:
        raise InvalidInputError(f"workers must be >= 1, got {workers}")
    if int(seed) < 0:
        raise InvalidInputError(f"seed must be >= 0, got {seed}")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise InvalidInputError(f"scheduler must be a dask scheduler address or 'local', "
                                f"got {scheduler!r}")
    if scheduler is not None and scheduler.strip() != "local" and workers is not None:
        raise InvalidInputError(f"scheduler {scheduler!r}: workers applies only to the "
                                "local cluster (scheduler 'local'); the workers of a remote "
                                "cluster are started with `dask worker ADDRESS`")
    rule = rule or default_rule(dims)
    root = ensure_directory(out, purpose="dataset folder")
    info = {"dims": dims, "seed": int(seed), "model": model, "grid_max": grid_max,
            "splits": splits, "rule": asdict(rule),
            "rule_description": "components (c, k>=1) with energy >= threshold * max energy "
                                "of the SM, at most max_components strongest",
            "item_seed": "SeedSequence([seed, split_id, index]); split ids "
                         + json.dumps(SPLIT_IDS),
            "sampler_ranges": sampler_ranges(ranges), "pympisr_version": __version__}
    ranges = {k: list(v) for k, v in (ranges or {}).items()} or None
    _write_info(root, info)

    tasks = []
    done = 0
    for split, count in splits.items():
        ensure_directory(root / split, purpose="dataset split folder")
        _remove_stray_temporaries(root / split)
        for index in range(count):
            if item_path(root, split, index).exists():
                done += 1
            else:
                tasks.append((str(root), split, index, int(seed), dims, model, grid_max, rule,
                              ranges))
    total = done + len(tasks)
    from ..physics.tables import anisotropy_table

    if model == "anisotropy" and tasks:
        anisotropy_table()  # build the disk cache once before workers start
    bar = tqdm(total=total, initial=done, desc=f"{dims}D system matrices", unit="SM",
               disable=not progress)
    if scheduler is None:
        workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    try:
        if scheduler is not None:
            if tasks:
                _run_on_dask(tasks, scheduler.strip(), workers, lambda: bar.update(1))
        elif workers == 1 or len(tasks) <= 1:
            for task in tasks:
                _make_item(task)
                bar.update(1)
        else:
            ctx = multiprocessing.get_context("spawn")
            with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                        initializer=_worker_init,
                                        initargs=(os.getpid(),)) as pool:
                futures = [pool.submit(_make_item, task) for task in tasks]
                try:
                    for future in cf.as_completed(futures):
                        future.result()
                        bar.update(1)
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    finally:
        bar.close()
    return read_dataset_info(root)
