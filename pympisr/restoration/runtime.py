"""Run an exported end-to-end ONNX model on complex components with onnxruntime (CPU).

>>> restorer = OnnxRestorer("denoise-dncnn-small-2d")      # name in the manifest
>>> clean = restorer(noisy)          # complex64 (B, H, W) -> complex64 (B, H, W)

The graph normalises, pads, runs the network, crops and rescales by itself (DESIGN
section 8); this class only splits complex arrays into real/imaginary float32 channels,
batches, and joins the result back.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelLoadError
from ..model_zoo import ResolvedModel, resolve_model, sha256_file, verify_model
from ..tasks import get_task

__all__ = ["OnnxRestorer", "default_threads"]


def default_threads() -> int:
    """CPUs this process may use (affinity-aware), at most 8."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(available, 8))


def _onnxruntime_errors() -> tuple[type[BaseException], ...]:
    """The exception types onnxruntime raises for files it cannot load as a model."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("InvalidProtobuf", "Fail", "InvalidGraph", "InvalidArgument", "NoSuchFile",
             "NotImplemented", "RuntimeException")
    return tuple(getattr(state, n) for n in names if isinstance(getattr(state, n, None), type))


class OnnxRestorer:
    """An ONNX restoration model ready to run.

    Parameters
    ----------
    model:
        Name in ``onnx_models/manifest.json`` or path to an ``.onnx`` file. A listed
        model's sha256 is checked before it is loaded (:class:`ModelIntegrityError` on a
        mismatch), as is an unlisted file's sha256 sidecar ``<model>.onnx.sha256``.
        An unlisted file without sidecar is refused (:class:`UntrustedModelError`)
        unless ``trust`` is True. A corrupt or non-ONNX file raises
        :class:`ModelLoadError`.
    threads:
        onnxruntime intra-op threads (default :func:`default_threads`).
    batch_size:
        Components per onnxruntime call.
    trust:
        Run an unlisted model without sidecar (the user vouches for it).

    Attributes
    ----------
    path, entry:
        Model file and its manifest entry (None if unlisted).
    verification:
        How the file was verified: ``"manifest"``, ``"sidecar"`` or ``"trusted by user"``.
    sha256:
        The model file's sha256.
    metadata:
        The model's ``metadata_props`` (strings).
    task, dims, scale_factor:
        From the metadata.
    task_rules:
        The :class:`pympisr.tasks.Task` of the model (grid rule, operator, baseline).
    """

    def __init__(self, model: str | os.PathLike[str] | ResolvedModel, *,
                 threads: int | None = None, batch_size: int = 128,
                 trust: bool = False) -> None:
        import onnxruntime as ort

        if isinstance(model, ResolvedModel):
            resolved = dataclasses.replace(model, trusted=True) if trust else model
        else:
            resolved = resolve_model(model, trust=trust)
        self.verification: str = verify_model(resolved)
        self.path: Path = resolved.path
        self.entry = resolved.entry
        self.sha256: str = (self.entry["sha256"] if self.entry is not None
                            else sha256_file(self.path))
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = int(batch_size)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(self.path), opts,
                                                providers=["CPUExecutionProvider"])
        except _onnxruntime_errors() as exc:
            raise ModelLoadError(f"{self.path}: not a loadable ONNX model "
                                 f"({type(exc).__name__}: {exc})") from exc
        self.metadata: dict[str, str] = dict(
            self.session.get_modelmeta().custom_metadata_map)
        missing = {"task", "dims"} - set(self.metadata)
        if missing:
            raise ModelLoadError(f"{self.path}: not a pympisr model (metadata lacks "
                                 f"{sorted(missing)})")
        self.task = self.metadata["task"]
        try:
            self.dims = int(self.metadata["dims"])
            self.scale_factor = int(self.metadata.get("scale_factor", "1"))
        except ValueError as exc:
            raise ModelLoadError(f"{self.path}: metadata 'dims'/'scale_factor' are not "
                                 f"integers ({exc})") from exc
        try:
            self.task_rules = get_task(self.task, self.dims, self.scale_factor)
        except ValueError as exc:  # unknown task, or dims/scale factor it does not allow
            raise ModelLoadError(f"{self.path}: metadata 'task'/'dims'/'scale_factor': "
                                 f"{exc}") from exc
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

    @property
    def recommended_safety(self) -> dict[str, float]:
        """Safety-step options the manifest entry recommends for this model
        (``"safety"``, e.g. ``{"network_ceiling": 1.0}``: chosen with the calibration
        protocol; :meth:`pympisr.restoration.safety.SafetyOptions.for_model`); empty
        for a model outside a manifest."""
        return dict(self.entry.get("safety", {})) if self.entry else {}

    def describe(self) -> dict[str, Any]:
        """Provenance record: name, file, sha256, how the file was verified
        (``verification``: "manifest", "sidecar" or "trusted by user"), task, dims."""
        return {"name": self.name, "file": self.path.name,
                "sha256": self.sha256, "verification": self.verification,
                "task": self.task, "dims": self.dims,
                "architecture": self.metadata.get("architecture", ""),
                "pympisr_version_trained": self.metadata.get("pympisr_version", "")}

    def _batches(self, n: int) -> Iterator[slice]:
        for start in range(0, n, self.batch_size):
            yield slice(start, min(n, start + self.batch_size))

    @property
    def takes_noise_level(self) -> bool:
        """Whether the graph has the ``sigma`` input (noise-level conditioned)."""
        return "sigma" in self.input_names

    def __call__(self, x: np.ndarray, mask: np.ndarray | None = None,
                 sigma: np.ndarray | None = None) -> np.ndarray:
        """Restore components ``x``: complex ``(B, H, W)`` (2D) or ``(B, D, H, W)`` (3D).

        ``mask`` (bool, same shape, True = valid sample) is required by inpainting models
        and rejected by the others. ``sigma`` ``(B,)``: noise std of the real and of the
        imaginary part of each component in the units of ``x``, required by
        noise-conditioned models (:attr:`takes_noise_level`) and ignored by the others.
        Returns complex64 of shape ``(B, *grid_out)`` (the task's grid rule,
        :meth:`pympisr.tasks.Task.output_grid`).
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
        if self.takes_noise_level:
            if sigma is None:
                raise ValueError(f"{self.name}: this model needs the noise level sigma")
            sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float32), (x.shape[0],))
            if not np.all(np.isfinite(sigma)) or np.any(sigma < 0):
                raise ValueError(f"{self.name}: sigma must be finite and >= 0")
        out = np.empty((x.shape[0], *self.task_rules.output_grid(x.shape[1:])),
                       dtype=np.complex64)
        for sl in self._batches(x.shape[0]):
            chunk = x[sl]
            feeds = {"sm": np.stack([chunk.real, chunk.imag], axis=1).astype(np.float32)}
            if mask is not None:
                feeds["mask"] = np.asarray(mask[sl], dtype=np.float32)[:, None]
            if self.takes_noise_level:
                feeds["sigma"] = np.ascontiguousarray(sigma[sl]).reshape(-1, 1)
            y = self.session.run(["restored"], feeds)[0]
            out[sl] = y[:, 0] + 1j * y[:, 1]
        return out
