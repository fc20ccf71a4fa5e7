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
    half-written.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_output
from ..datasets.store import DatasetItem, item_path, write_item

__all__ = ["SelectionRule", "generate_dataset", "item_seed", "simulate_item"]

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
_ESTIMATE_ABOVE = 16  # 3D grids with an axis above this rank components on a sub-grid


@dataclass(frozen=True)
class SelectionRule:
    """Which components of a simulated SM are stored (see module docstring)."""

    threshold: float = 1e-5
    max_components: int = 400

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
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_IDS)}")
    state = np.random.SeedSequence([int(seed), SPLIT_IDS[split], int(index)]).generate_state(
        2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def item_parameters(seed: int, split: str, index: int, *, dims: int, model: str,
                    grid_max: int | None):
    """The simulation parameters of one item (grid capped at ``grid_max`` per axis)."""
    from .parameters import sample_parameters

    params = sample_parameters(item_seed(seed, split, index), dims=dims, model=model)
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


def _make_item(task: tuple) -> tuple[str, int, float]:
    root, split, index, seed, dims, model, grid_max, rule = task
    start = time.perf_counter()
    params = item_parameters(seed, split, index, dims=dims, model=model, grid_max=grid_max)
    item = simulate_item(params, rule)
    path = item_path(root, split, index)
    try:
        write_item(path, item)
    except FileExistsError:
        pass  # finished meanwhile by another run: identical by determinism
    return split, index, time.perf_counter() - start


def _worker_init() -> None:
    from .system_matrix import configure_threads

    configure_threads(1)


def _remove_stray_temporaries(folder: Path) -> int:
    count = 0
    for tmp in folder.glob(".[0-9]*.h5.*.tmp"):
        tmp.unlink(missing_ok=True)
        count += 1
    return count


def _write_info(root: Path, info: dict[str, Any]) -> None:
    path = root / "dataset.json"
    if path.exists():
        old = json.loads(path.read_text())
        keys = ("dims", "seed", "model", "grid_max", "rule")
        if any(old.get(k) != info.get(k) for k in keys):
            raise ValueError(
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
                     progress: bool = True) -> dict[str, Any]:
    """Generate (or complete) a dataset in ``out``; returns the ``dataset.json`` content.

    Parameters
    ----------
    out: dataset folder (created).
    dims: 2 or 3.
    splits: items per split, e.g. ``{"train": 1000, "val": 300, "test": 300}``.
    seed: dataset seed (item seeds derive from it, see :func:`item_seed`).
    workers: processes (default: CPU count); 1 runs in this process with all threads.
    grid_max: cap on the sampled grid size per axis (faster data for CPU training).
    model: "anisotropy" (paper) or "langevin".
    rule: component selection (default :func:`default_rule`).
    progress: show a tqdm progress bar.
    """
    from tqdm import tqdm

    from .. import __version__
    from .parameters import SAMPLER_RANGES

    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims!r}")
    splits = dict(splits or {"train": 1000, "val": 300, "test": 300})
    for name, count in splits.items():
        if name not in SPLIT_IDS:
            raise ValueError(f"unknown split {name!r}; expected one of {sorted(SPLIT_IDS)}")
        if count < 0:
            raise ValueError(f"split {name!r}: negative item count {count}")
    if grid_max is not None and grid_max < 2:
        raise ValueError(f"grid_max must be >= 2, got {grid_max}")
    rule = rule or default_rule(dims)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    info = {"dims": dims, "seed": int(seed), "model": model, "grid_max": grid_max,
            "splits": splits, "rule": asdict(rule),
            "rule_description": "components (c, k>=1) with energy >= threshold * max energy "
                                "of the SM, at most max_components strongest",
            "item_seed": "SeedSequence([seed, split_id, index]); split ids "
                         + json.dumps(SPLIT_IDS),
            "sampler_ranges": SAMPLER_RANGES, "pympisr_version": __version__}
    _write_info(root, info)

    tasks = []
    done = 0
    for split, count in splits.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        _remove_stray_temporaries(root / split)
        for index in range(count):
            if item_path(root, split, index).exists():
                done += 1
            else:
                tasks.append((str(root), split, index, int(seed), dims, model, grid_max, rule))
    total = done + len(tasks)
    from ..physics.tables import anisotropy_table

    if model == "anisotropy" and tasks:
        anisotropy_table()  # build the disk cache once before workers start
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    bar = tqdm(total=total, initial=done, desc=f"{dims}D system matrices", unit="SM",
               disable=not progress)
    try:
        if workers == 1 or len(tasks) <= 1:
            for task in tasks:
                _make_item(task)
                bar.update(1)
        else:
            ctx = multiprocessing.get_context("spawn")
            with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                        initializer=_worker_init) as pool:
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
    return json.loads((root / "dataset.json").read_text())
