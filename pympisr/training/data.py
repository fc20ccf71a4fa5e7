"""Training samples from a simulated dataset.

:class:`ComponentDataset` reads clean frequency components of one split and turns each
into a training sample with its task's :meth:`pympisr.tasks.Task.make_sample` (the seed
paper's preprocessing, section 3.3, with the task's degradation and a noise-level
input); :class:`StepBatchSampler` makes the batches of every step reproducible.

Randomness is explicit: sample ``(index, seed)`` draws from
``numpy.random.default_rng(seed)``, so a batch is reproducible from the step number and
training resumes bit-exactly; an integer key ``index`` uses a fixed per-index seed
(deterministic validation).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..datasets import ComponentStore
from ..simulation.noise import NoiseSource
from ..tasks import SampleOptions, Task, get_task

__all__ = ["ComponentDataset", "StepBatchSampler", "dataset_description"]


class ComponentDataset(Dataset):
    """Preprocessed training samples from the components of one dataset split.

    Parameters
    ----------
    root, split:
        Dataset folder written by ``pympisr dataset`` and split name (``"train"``, ...).
    options:
        :class:`~pympisr.tasks.SampleOptions` (patch size, noise distribution, ...).
    task:
        The restoration task building the samples (default: denoising in
        ``options.dims`` dimensions).
    noise:
        ``"gaussian"`` (white), ``"parametric"`` (:class:`ParametricNoise` along the
        robot path: coloured, drifting, with spikes) or the path of an MDF file whose
        background frames give the noise (:meth:`NoiseSource.from_mdf`).
    seed:
        Base seed of the deterministic per-index randomness (integer keys).
    """

    def __init__(self, root: str | os.PathLike[str], split: str, options: SampleOptions, *,
                 task: Task | None = None, noise: str = "gaussian", seed: int = 0) -> None:
        self.store = ComponentStore(root, split)
        self.options = options
        self.task = task or get_task("denoise", options.dims)
        if self.task.dims != options.dims:
            raise ValueError(f"task {self.task!r} does not match dims={options.dims}")
        self.seed = int(seed)
        self.noise = noise_sampler(noise, options.dims)
        # open "components" datasets per item: looking the dataset up in its file costs
        # about three times as much as reading one component (h5py), so it is done once
        self._components: dict[int, h5py.Dataset] = {}

    def __len__(self) -> int:
        return len(self.store)

    def __getstate__(self) -> dict[str, Any]:  # open HDF5 handles do not pickle
        state = dict(self.__dict__)
        state["_components"] = {}
        return state

    def close(self) -> None:
        """Close the cached HDF5 file handles."""
        for dataset in self._components.values():
            dataset.file.close()
        self._components.clear()

    def component(self, index: int) -> np.ndarray:
        """Clean component ``index`` as complex64 ``(H, W)`` (2D) or ``(D, H, W)`` (3D)."""
        item, row = self.store.locate(index)
        dataset = self._components.get(item)
        if dataset is None:
            dataset = self._components[item] = h5py.File(self.store.files[item],
                                                          "r")["components"]
        comp = np.asarray(dataset[row], dtype=np.complex64)
        if self.options.dims == 2:
            if comp.shape[0] != 1:
                raise ValueError(f"{self.store.files[item]}: components have Nz = "
                                 f"{comp.shape[0]}, expected 1 for a 2D dataset")
            comp = comp[0]
        return comp

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        if isinstance(key, tuple):
            index, seed = key
            rng = np.random.default_rng(seed)
        else:
            index = int(key)
            rng = np.random.default_rng([self.seed, index])
        return self.make_sample(self.component(index), rng)

    def make_sample(self, clean: np.ndarray, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """One training sample of the task from a clean component."""
        return self.task.make_sample(clean, rng, self.options, self.noise)


def noise_sampler(noise: str, dims: int) -> NoiseSource | None:
    """The training noise named by a config's ``data.noise`` (see ComponentDataset)."""
    if noise == "gaussian":
        return None
    if noise == "parametric":
        return NoiseSource(None, dims=dims)
    return NoiseSource.from_mdf(noise, dims=dims)


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``(index, sample_seed)`` keys for steps ``start_step .. num_steps-1``.

    Batch ``t`` draws its indices uniformly with replacement from
    ``default_rng([seed, t])`` and gives each sample its own seed, so a run resumed at
    step ``t`` sees exactly the batches an uninterrupted run would have seen.
    """

    def __init__(self, num_items: int, batch_size: int, *, seed: int, num_steps: int,
                 start_step: int = 0) -> None:
        if num_items < 1:
            raise ValueError("the training split has no components")
        self.num_items, self.batch_size = int(num_items), int(batch_size)
        self.seed, self.num_steps, self.start_step = int(seed), int(num_steps), int(start_step)

    def __len__(self) -> int:
        return max(0, self.num_steps - self.start_step)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.num_steps):
            rng = np.random.default_rng([self.seed, step])
            indices = rng.integers(0, self.num_items, self.batch_size)
            seeds = rng.integers(0, 2**63 - 1, self.batch_size)
            yield [(int(i), int(s)) for i, s in zip(indices, seeds)]


def dataset_description(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Short JSON-able description of a dataset folder: its ``dataset.json`` (settings and
    seed), a one-line ``description``, the folder name and, when ``root`` is given as a
    relative path (relative to the training run's working folder), that ``path``.

    Absolute paths are never recorded: they describe the training machine, not the data,
    and end up in the metadata of exported models. A corrupt ``dataset.json`` raises
    :class:`~pympisr.errors.DatasetError` naming the file.
    """
    from ..datasets import read_dataset_info

    store_root = Path(root)
    info: dict[str, Any] = {"folder": store_root.resolve().name}
    if not store_root.is_absolute():
        info["path"] = store_root.as_posix()
    meta = read_dataset_info(store_root)
    info.update(meta)
    if meta and "description" not in meta:
        splits = ", ".join(f"{k} {v}" for k, v in dict(meta.get("splits", {})).items())
        info["description"] = (f"simulated {meta.get('dims', '?')}D system matrices "
                               f"({meta.get('model', '?')} particle model), dataset seed "
                               f"{meta.get('seed', '?')}, splits: {splits or 'none'}")
    return info
