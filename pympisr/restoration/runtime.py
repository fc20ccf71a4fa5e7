"""Run an exported end-to-end ONNX model on complex components with onnxruntime (CPU).

>>> restorer = OnnxRestorer("denoise-dncnn-small-2d")      # name in the manifest
>>> clean = restorer(noisy)          # complex64 (B, H, W) -> complex64 (B, H, W)

The graph normalises, pads, runs the network, crops and rescales by itself (DESIGN
section 8); this class only splits complex arrays into real/imaginary float32 channels,
batches, and joins the result back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..model_zoo import ResolvedModel, resolve_model, verify_model

__all__ = ["OnnxRestorer", "default_threads"]


def default_threads() -> int:
    """CPUs this process may use (affinity-aware), at most 8."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(available, 8))


class OnnxRestorer:
    """An ONNX restoration model ready to run.

    Parameters
    ----------
    model:
        Name in ``onnx_models/manifest.json`` or path to an ``.onnx`` file. A listed
        model's sha256 is checked before it is loaded (:class:`ModelIntegrityError` on a
        mismatch).
    threads:
        onnxruntime intra-op threads (default :func:`default_threads`).
    batch_size:
        Components per onnxruntime call.

    Attributes
    ----------
    path, entry:
        Model file and its manifest entry (None if unlisted).
    metadata:
        The model's ``metadata_props`` (strings).
    task, dims, scale_factor:
        From the metadata.
    """

    def __init__(self, model: str | os.PathLike[str] | ResolvedModel, *,
                 threads: int | None = None, batch_size: int = 128) -> None:
        import onnxruntime as ort

        resolved = model if isinstance(model, ResolvedModel) else resolve_model(model)
        verify_model(resolved)
        self.path: Path = resolved.path
        self.entry = resolved.entry
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = int(batch_size)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.path), opts,
                                            providers=["CPUExecutionProvider"])
        self.metadata: dict[str, str] = dict(
            self.session.get_modelmeta().custom_metadata_map)
        missing = {"task", "dims"} - set(self.metadata)
        if missing:
            raise ValueError(f"{self.path}: not a pympisr model (metadata lacks "
                             f"{sorted(missing)})")
        self.task = self.metadata["task"]
        self.dims = int(self.metadata["dims"])
        self.scale_factor = int(self.metadata.get("scale_factor", "1"))
        self.input_names = [i.name for i in self.session.get_inputs()]

    @property
    def name(self) -> str:
        """Manifest name, or the file name for an unlisted model."""
        return self.entry["name"] if self.entry else self.path.name

    @property
    def noise_range(self) -> list[float] | None:
        """Noise standard deviations the model was trained on (relative to unit max)."""
        raw = self.metadata.get("noise_range")
        return json.loads(raw) if raw else None

    def describe(self) -> dict[str, Any]:
        """Provenance record: name, file, sha256 (from the manifest), task, dims."""
        return {"name": self.name, "file": self.path.name,
                "sha256": self.entry["sha256"] if self.entry else "",
                "task": self.task, "dims": self.dims,
                "architecture": self.metadata.get("architecture", ""),
                "pympisr_version_trained": self.metadata.get("pympisr_version", "")}

    def _batches(self, n: int) -> Iterator[slice]:
        for start in range(0, n, self.batch_size):
            yield slice(start, min(n, start + self.batch_size))

    def __call__(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Restore components ``x``: complex ``(B, H, W)`` (2D) or ``(B, D, H, W)`` (3D).

        ``mask`` (bool, same shape, True = valid sample) is required by inpainting models
        and rejected by the others. Returns complex64 of shape ``(B, *grid_out)``
        (``grid_out = scale_factor * grid``).
        """
        x = np.asarray(x)
        if x.ndim != self.dims + 1:
            raise ValueError(f"{self.name}: expected {self.dims}D components "
                             f"(B, {'D, ' if self.dims == 3 else ''}H, W), got shape {x.shape}")
        needs_mask = "mask" in self.input_names
        if needs_mask and mask is None:
            raise ValueError(f"{self.name}: this {self.task} model needs a mask")
        if not needs_mask and mask is not None:
            raise ValueError(f"{self.name}: a {self.task} model takes no mask")
        if mask is not None and np.shape(mask) != x.shape:
            raise ValueError(f"mask shape {np.shape(mask)} differs from data shape {x.shape}")
        out_grid = tuple(self.scale_factor * n for n in x.shape[1:])
        out = np.empty((x.shape[0], *out_grid), dtype=np.complex64)
        for sl in self._batches(x.shape[0]):
            chunk = x[sl]
            feeds = {"sm": np.stack([chunk.real, chunk.imag], axis=1).astype(np.float32)}
            if mask is not None:
                feeds["mask"] = np.asarray(mask[sl], dtype=np.float32)[:, None]
            y = self.session.run(["restored"], feeds)[0]
            out[sl] = y[:, 0] + 1j * y[:, 1]
        return out
