"""Storage format of simulated system-matrix datasets, streamable by training loops.

Layout of a dataset folder::

    DIR/dataset.json            {"dims", "seed", "splits": {"train": n, ...}, "rule", ...}
    DIR/<split>/<index:05d>.h5  one simulated system matrix each

Each item file (plain HDF5, not MDF; one file per SM so generation is resumable and
parallel, and a loader can open items independently) holds only the frequency
components that carry signal (the selection rule is recorded in ``dataset.json``):

==================  ==========================  =========================================
dataset             dtype / shape               meaning
==================  ==========================  =========================================
components          complex64 (M, Nz, Ny, Nx)   clean (noise-free) components
channel             int16 (M,)                  receive channel of each component
frequency_index     int32 (M,)                  rfft bin index of each component
energy              float32 (M,)                component energy ``sum |S|^2`` (ranking)
grid                int64 (3,)                  (Nx, Ny, Nz)
fov, center         float64 (3,)                metres
params_json         variable-length string      every simulation parameter (JSON)
==================  ==========================  =========================================

Items are written atomically (temporary file + rename), so a killed generator leaves
only complete items and a rerun skips them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..atomic import atomic_output
from ..errors import DatasetError, MDFError

__all__ = ["ComponentStore", "DatasetItem", "item_path", "json_default", "read_dataset_info",
           "read_item", "write_item"]


@dataclass
class DatasetItem:
    """One simulated system matrix as stored in a dataset (see module docstring)."""

    components: np.ndarray
    channel: np.ndarray
    frequency_index: np.ndarray
    energy: np.ndarray
    grid: tuple[int, int, int]
    fov: np.ndarray
    center: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)


def read_dataset_info(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Contents of ``root/dataset.json`` (empty dict if absent).

    Raises
    ------
    DatasetError
        The file is not valid UTF-8 JSON or not a JSON object (the message names it).
    """
    meta = Path(root) / "dataset.json"
    if not meta.exists():
        return {}
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{meta}: not a valid dataset description (invalid JSON: "
                           f"{exc})") from exc
    if not isinstance(info, dict):
        raise DatasetError(f"{meta}: not a valid dataset description (a JSON object "
                           f"expected, got {type(info).__name__})")
    return info


def item_path(root: str | os.PathLike[str], split: str, index: int) -> Path:
    """Path of item ``index`` of ``split`` in the dataset folder ``root``."""
    return Path(root) / split / f"{index:05d}.h5"


def write_item(path: str | os.PathLike[str], item: DatasetItem, *, overwrite: bool = False) -> None:
    """Write one item atomically (temporary file + rename)."""
    with atomic_output(path, overwrite=overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            components = np.asarray(item.components, np.complex64)
            # one chunk per component; an item without components is stored contiguous
            # (HDF5 rejects chunks larger than an empty dataset)
            chunks = (1, *components.shape[1:]) if components.shape[0] else None
            f.create_dataset("components", data=components, chunks=chunks)
            f["channel"] = np.asarray(item.channel, np.int16)
            f["frequency_index"] = np.asarray(item.frequency_index, np.int32)
            f["energy"] = np.asarray(item.energy, np.float32)
            f["grid"] = np.asarray(item.grid, np.int64)
            f["fov"] = np.asarray(item.fov, np.float64)
            f["center"] = np.asarray(item.center, np.float64)
            f["params_json"] = json.dumps(item.params, default=json_default)


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` hook: numpy arrays become lists, numpy scalars numbers."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store a {type(value).__name__} as JSON")


def read_item(path: str | os.PathLike[str], components: slice | np.ndarray | None = None) -> DatasetItem:
    """Read an item; ``components`` selects rows (indices or a slice) without reading the rest."""
    try:
        with h5py.File(path, "r") as f:
            sel = slice(None) if components is None else components
            if isinstance(sel, np.ndarray):
                order = np.argsort(sel)
                data = np.empty((sel.size, *f["components"].shape[1:]), np.complex64)
                data[order] = f["components"][np.sort(sel)]
            else:
                data = f["components"][sel]
            return DatasetItem(
                components=data,
                channel=f["channel"][()][sel],
                frequency_index=f["frequency_index"][()][sel],
                energy=f["energy"][()][sel],
                grid=tuple(int(g) for g in f["grid"][()]),
                fov=f["fov"][()],
                center=f["center"][()],
                params=json.loads(f["params_json"][()]),
            )
    except (OSError, KeyError) as exc:
        raise MDFError(path, "/", f"not a readable pympisr dataset item ({exc})") from exc


class ComponentStore:
    """Index over all frequency components of one split of a dataset folder.

    ``store[i]`` returns ``(component complex64 (Nz, Ny, Nx), item_index, row)``; the
    index (item, row) is built from the small ``channel`` datasets only.
    """

    def __init__(self, root: str | os.PathLike[str], split: str) -> None:
        self.root = Path(root)
        self.split = split
        self.files = sorted((self.root / split).glob("[0-9]*.h5"))
        if not self.files:
            raise FileNotFoundError(f"{self.root / split}: no dataset items (*.h5) found")
        counts = []
        for path in self.files:
            try:
                with h5py.File(path, "r") as f:
                    counts.append(int(f["channel"].shape[0]))
            except (OSError, KeyError) as exc:
                raise MDFError(path, "/channel",
                               f"not a readable pympisr dataset item ({exc})") from exc
        self.counts = np.asarray(counts, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)])

    @property
    def info(self) -> dict[str, Any]:
        """Contents of ``dataset.json`` (empty dict if absent)."""
        return read_dataset_info(self.root)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """(item index, row within item) of global component ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        item = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return item, int(index - self.offsets[item])

    def __getitem__(self, index: int) -> tuple[np.ndarray, int, int]:
        item, row = self.locate(index)
        with h5py.File(self.files[item], "r") as f:
            return f["components"][row], item, row

    def item(self, index: int) -> DatasetItem:
        """The whole item (system matrix) ``index``."""
        return read_item(self.files[index])
