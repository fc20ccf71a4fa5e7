"""Training samples from a simulated dataset, with the seed paper's preprocessing (3.3).

For one clean frequency component ``S`` (complex, ``(H, W)`` or ``(D, H, W)``) a sample is
built as follows (DESIGN section 6):

1. ``g = S / max|S|`` (unit maximum magnitude);
2. ``g <- a * exp(i phi) * g`` with one random angle ``phi ~ U(0, 2 pi)`` and a random
   scale ``a ~ U(scale_range)``;
3. ``y = T(g)`` with the task's degradation ``T`` (identity for denoising);
4. ``y <- y + N`` with noise whose real and imaginary parts have standard deviation
   ``sigma ~ U(sigma_range)`` (:class:`pympisr.degradations.AdditiveGaussianNoise` by
   default);
5. both ``y`` and the target ``g`` are divided by ``max|y|`` (the corrupted image's
   maximum magnitude, which is what is known at inference);
6. both are zero-padded into a fixed patch (random offset; a component larger than the
   patch is randomly cropped) and split into real/imaginary channels.

A sample is a dict of float32 tensors: ``input`` and ``target`` ``(2, *patch)`` and
``valid`` ``(1, *patch)`` (1 on pixels of the component's grid, 0 on padding).

Randomness is explicit: sample ``(index, seed)`` draws from
``numpy.random.default_rng(seed)``, so a batch is reproducible from the step number and
training resumes bit-exactly; an integer key ``index`` uses a fixed per-index seed
(deterministic validation).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..datasets import ComponentStore

__all__ = ["ComponentDataset", "Preprocessing", "StepBatchSampler", "complex_to_channels",
           "dataset_description"]

Degradation = Callable[[np.ndarray, np.random.Generator], np.ndarray]
NoiseFactory = Callable[[float], Degradation]


def complex_to_channels(x: np.ndarray) -> np.ndarray:
    """One complex image ``(*spatial)`` -> float32 ``(2, *spatial)`` (real, imag)."""
    return np.stack([x.real, x.imag], axis=0).astype(np.float32)


def _gaussian_noise(sigma: float) -> Degradation:
    from ..degradations import AdditiveGaussianNoise
    return AdditiveGaussianNoise(sigma)


@dataclass(frozen=True)
class Preprocessing:
    """Parameters of the per-sample preprocessing (see module docstring).

    Attributes
    ----------
    dims:
        2 or 3 spatial axes.
    patch_size:
        Edge length of the (square/cubic) training patch in pixels.
    sigma_range:
        ``(low, high)`` of the uniform noise standard deviation, relative to the unit-max
        ground truth before the random scale.
    scale_range:
        ``(low, high)`` of the uniform random amplitude scale.
    """

    dims: int = 2
    patch_size: int = 32
    sigma_range: tuple[float, float] = (0.0, 0.35)
    scale_range: tuple[float, float] = (0.8, 1.2)

    def __post_init__(self) -> None:
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {self.dims}")
        if self.patch_size < 1:
            raise ValueError(f"patch_size must be positive, got {self.patch_size}")
        for name in ("sigma_range", "scale_range"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must satisfy 0 <= low <= high, got {(lo, hi)}")
        if self.scale_range[0] <= 0:
            raise ValueError("scale_range must be positive")


def _place_in_patch(images: Sequence[np.ndarray], patch: int, dims: int,
                    rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """Zero-pad (or crop) same-shaped complex images into a ``patch``-sized box at one
    random offset; return the placed images and the float32 valid mask."""
    shape = images[0].shape
    dst_slices, src_slices = [], []
    for n in shape:
        if n <= patch:
            start = int(rng.integers(0, patch - n + 1))
            dst_slices.append(slice(start, start + n))
            src_slices.append(slice(0, n))
        else:
            start = int(rng.integers(0, n - patch + 1))
            dst_slices.append(slice(0, patch))
            src_slices.append(slice(start, start + patch))
    placed = []
    for img in images:
        out = np.zeros((patch,) * dims, dtype=np.complex64)
        out[tuple(dst_slices)] = img[tuple(src_slices)]
        placed.append(out)
    valid = np.zeros((patch,) * dims, dtype=np.float32)
    valid[tuple(dst_slices)] = 1.0
    return placed, valid


class ComponentDataset(Dataset):
    """Preprocessed training samples from the components of one dataset split.

    Parameters
    ----------
    root, split:
        Dataset folder written by ``pympisr dataset`` and split name (``"train"``, ...).
    prep:
        :class:`Preprocessing` parameters.
    degradation:
        Task operator ``T(x, rng)`` applied before the noise; None = identity (denoising).
    noise:
        ``noise(sigma)`` returns the noise operator for one sample (default additive
        complex Gaussian noise).
    seed:
        Base seed of the deterministic per-index randomness (integer keys).
    """

    def __init__(self, root: str | os.PathLike[str], split: str, prep: Preprocessing, *,
                 degradation: Degradation | None = None, noise: NoiseFactory | None = None,
                 seed: int = 0) -> None:
        self.store = ComponentStore(root, split)
        self.prep = prep
        self.degradation = degradation
        self.noise = noise or _gaussian_noise
        self.seed = int(seed)
        self._files: dict[int, h5py.File] = {}

    def __len__(self) -> int:
        return len(self.store)

    def __getstate__(self) -> dict[str, Any]:  # open HDF5 handles do not pickle
        state = dict(self.__dict__)
        state["_files"] = {}
        return state

    def close(self) -> None:
        """Close the cached HDF5 file handles."""
        for f in self._files.values():
            f.close()
        self._files.clear()

    def component(self, index: int) -> np.ndarray:
        """Clean component ``index`` as complex64 ``(H, W)`` (2D) or ``(D, H, W)`` (3D)."""
        item, row = self.store.locate(index)
        f = self._files.get(item)
        if f is None:
            f = self._files[item] = h5py.File(self.store.files[item], "r")
        comp = np.asarray(f["components"][row], dtype=np.complex64)
        if self.prep.dims == 2:
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
        """Apply the preprocessing (module docstring) to one clean component."""
        p = self.prep
        peak = float(np.abs(clean).max())
        gt = clean / peak if peak > 0 else clean.astype(np.complex64)
        phase = np.exp(1j * rng.uniform(0.0, 2.0 * np.pi))
        gt = (gt * (rng.uniform(*p.scale_range) * phase)).astype(np.complex64)
        degraded = gt if self.degradation is None else self.degradation(gt, rng)
        noisy = self.noise(float(rng.uniform(*p.sigma_range)))(degraded, rng)
        norm = float(np.abs(noisy).max())
        norm = norm if norm > 0 else 1.0
        (noisy, gt), valid = _place_in_patch([noisy / norm, gt / norm], p.patch_size,
                                             p.dims, rng)
        return {"input": torch.from_numpy(complex_to_channels(noisy)),
                "target": torch.from_numpy(complex_to_channels(gt)),
                "valid": torch.from_numpy(valid[None])}


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
    """Short JSON-able description of a dataset folder (its ``dataset.json`` + path)."""
    store_root = Path(root)
    meta = store_root / "dataset.json"
    info: dict[str, Any] = {"path": str(store_root.resolve())}
    if meta.exists():
        info.update(json.loads(meta.read_text()))
    return info
