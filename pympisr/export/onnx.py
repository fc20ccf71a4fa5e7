"""End-to-end ONNX export of restoration networks (DESIGN section 8).

The exported graph takes ``sm``: float32 ``(B, 2, H, W)`` or ``(B, 2, D, H, W)``, the
real and imaginary parts of B frequency components in raw (un-normalised) units, and
returns ``restored`` in the same layout on the output grid. Inside the graph
(:class:`EndToEnd`):

1. each component is divided by its maximum magnitude ``max |re + i im|`` (seed paper
   3.4: "scaled to unit magnitude", as in training);
2. the grid is zero-padded symmetrically to at least the training patch size
   (``min_size``; seed paper 3.4: "padded to the required patch size") and to a multiple
   of the network's ``size_multiple``;
3. the network runs;
4. the padding is cropped (scaled by the network's ``scale_factor``) and the result is
   multiplied by the per-component maximum again.

Batch and spatial axes are dynamic. The TorchScript-based exporter is used because it
writes opset 17 directly (ONNXRunTime.jl bundles an older runtime); the dynamo exporter
only emits opset >= 18 here. Shape arithmetic (padding, cropping) is traced as ONNX
shape operations; :func:`check_onnx_against_torch` proves it at two further grid shapes
(a shape-dependent Python branch would otherwise be baked in silently, DESIGN section 9).

Metadata (``metadata_props``, all strings, JSON where structured): ``task``,
``architecture``, ``model_name``, ``model_options``, ``dims``, ``scale_factor``,
``size_multiple``, ``min_size``, ``axis_order``, ``julia_layout``, ``noise_range``, ``training_data``,
``training``, ``pympisr_version``, ``test_metrics``, ``opset``.

Golden files beside the model (float32, ONNX layout): ``<stem>.golden_input.npy`` and
``<stem>.golden_output.npy`` (onnxruntime's output for that input).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..atomic import atomic_output
from ..errors import PympisrError

__all__ = ["OPSET", "EndToEnd", "ExportCheckError", "ExportResult", "check_onnx_against_torch",
           "export_checkpoint", "export_model", "golden_input", "golden_paths", "read_metadata"]

OPSET = 17
AXIS_ORDER = {
    2: "sm/restored float32 (B, 2, H, W) = (component, [real, imag], y, x); C order, x "
       "fastest (MDF voxel order); a SystemMatrix component data[c, k, 0] is (Ny, Nx)",
    3: "sm/restored float32 (B, 2, D, H, W) = (component, [real, imag], z, y, x); C order, "
       "x fastest (MDF voxel order); a SystemMatrix component data[c, k] is (Nz, Ny, Nx)",
}
JULIA_LAYOUT = ("the C-order (B, 2, [D,] H, W) buffer read column-major is a Julia array "
                "A of size (Nx, Ny, [Nz,] 2, B) with A[x, y, (z,) c, b], c = 1 real part, "
                "c = 2 imaginary part; a runtime that wants the ONNX logical shape takes "
                "permutedims(A, ndims(A):-1:1)")
# relative tolerance of the ONNX-vs-PyTorch check: max |onnx - torch| / max |torch|
PARITY_RTOL = 1e-4
# grids below and above a training patch size of 32 in some axes
_CHECK_SHAPES = {2: [(2, 30, 12), (1, 41, 36)], 3: [(1, 12, 7, 10), (1, 35, 9, 6)]}


class ExportCheckError(PympisrError, RuntimeError):
    """The exported ONNX graph disagrees with the PyTorch model."""


def _padded_size(n: Any, min_size: int, multiple: int) -> Any:
    """``max(n, min_size)`` rounded up to a multiple of ``multiple``.

    ``n`` is an int in eager mode and a 0-d tensor while the ONNX exporter traces; the
    tensor path keeps the arithmetic in the graph (a Python ``max`` would be baked in).
    """
    target = torch.clamp(n, min=min_size) if isinstance(n, torch.Tensor) else max(n, min_size)
    return target + (-target) % multiple


class EndToEnd(nn.Module):
    """Normalise, pad, run ``net``, crop, rescale (module docstring); ONNX-exportable.

    ``net`` must expose ``dims``, ``size_multiple`` and ``scale_factor`` (see
    :mod:`pympisr.models`). ``min_size`` is the training patch size: smaller grids are
    zero-padded (centred) to it, as in training and the seed paper's inference (3.4),
    so the network sees its image inside zeros as it did during training.
    """

    def __init__(self, net: nn.Module, *, min_size: int = 1) -> None:
        super().__init__()
        self.net = net
        self.dims = int(net.dims)
        self.size_multiple = int(getattr(net, "size_multiple", 1))
        self.scale_factor = int(getattr(net, "scale_factor", 1))
        self.min_size = int(min_size)

    def forward(self, sm: torch.Tensor) -> torch.Tensor:
        spatial = tuple(range(2, 2 + self.dims))
        magnitude = torch.sqrt(sm[:, 0:1] ** 2 + sm[:, 1:2] ** 2)
        peak = torch.amax(magnitude, dim=spatial, keepdim=True).clamp_min(1e-30)
        x = sm / peak
        shape = x.shape[2:]
        before, pads = [], []
        for n in shape:
            total = _padded_size(n, self.min_size, self.size_multiple) - n
            before.append(total // 2)
            pads.append((total // 2, total - total // 2))
        pad_arg: list[Any] = [p for pair in reversed(pads) for p in pair]
        y = self.net(F.pad(x, pad_arg))
        s = self.scale_factor
        crop = tuple(slice(b * s, (b + n) * s) for b, n in zip(before, shape))
        return y[(slice(None), slice(None), *crop)] * peak


def golden_input(dims: int, seed: int = 20251121) -> np.ndarray:
    """Deterministic test input in raw units: smooth oscillating blobs plus noise.

    float32 ``(3, 2, 17, 37)`` (2D) or ``(2, 2, 9, 11, 13)`` (3D): non-square grids so a
    transposed axis is caught, in 2D one axis below and one above the usual training
    patch size (32); peak amplitudes between 1e-4 and 1e-2, different per component.
    """
    rng = np.random.default_rng(seed)
    shape = (3, 17, 37) if dims == 2 else (2, 9, 11, 13)
    axes = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape[1:]], indexing="ij")
    comps = []
    for b in range(shape[0]):
        freq = rng.uniform(0.5, 2.5, dims)
        arg = np.pi * sum(f * a for f, a in zip(freq, axes)) + rng.uniform(0, 2 * np.pi)
        env = np.exp(-sum(a ** 2 for a in axes) / 0.5)
        clean = env * np.exp(1j * arg) * 10.0 ** rng.uniform(-4, -2)
        sigma = 0.1 * np.abs(clean).max()
        comps.append(clean + sigma * (rng.standard_normal(clean.shape)
                                      + 1j * rng.standard_normal(clean.shape)))
    c = np.stack(comps)
    return np.stack([c.real, c.imag], axis=1).astype(np.float32)


def golden_paths(onnx_path: str | Path) -> tuple[Path, Path]:
    """``(<stem>.golden_input.npy, <stem>.golden_output.npy)`` beside ``onnx_path``."""
    p = Path(onnx_path)
    stem = p.name[:-5] if p.name.endswith(".onnx") else p.name
    return p.with_name(f"{stem}.golden_input.npy"), p.with_name(f"{stem}.golden_output.npy")


def _session(path: Path) -> Any:
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def check_onnx_against_torch(onnx_path: Path, wrapper: EndToEnd,
                             inputs: list[np.ndarray]) -> float:
    """Run both on each input; return the worst relative error or raise ExportCheckError.

    Relative error = ``max |onnx - torch| / max |torch|`` per input; it must be at most
    :data:`PARITY_RTOL` and the output shapes must agree.
    """
    session = _session(onnx_path)
    worst = 0.0
    for x in inputs:
        with torch.inference_mode():
            ref = wrapper(torch.from_numpy(x)).numpy()
        out = session.run(["restored"], {"sm": x})[0]
        if out.shape != ref.shape:
            raise ExportCheckError(f"{onnx_path}: output shape {out.shape} for input "
                                   f"{x.shape}, PyTorch gives {ref.shape}")
        err = float(np.abs(out - ref).max() / max(np.abs(ref).max(), 1e-30))
        if not err <= PARITY_RTOL:
            raise ExportCheckError(f"{onnx_path}: ONNX and PyTorch differ by {err:.2e} "
                                   f"(relative) at input shape {x.shape}; limit {PARITY_RTOL}")
        worst = max(worst, err)
    return worst


@dataclass
class ExportResult:
    """Files written by an export and the parity check's worst relative error."""

    path: Path
    golden_input: Path
    golden_output: Path
    metadata: dict[str, str]
    parity_error: float


def export_model(net: nn.Module, out: str | Path, *, metadata: dict[str, Any],
                 min_size: int = 1, overwrite: bool = False) -> ExportResult:
    """Export ``net`` (eval mode) end to end to ``out`` with ``metadata``; check it at the
    trace shape and two other grid shapes; write the golden input/output pair.

    ``metadata`` values that are not strings are stored as JSON. The keys ``dims``,
    ``scale_factor``, ``size_multiple``, ``min_size``, ``axis_order``, ``julia_layout``
    and ``opset`` are filled in. ``min_size``: see :class:`EndToEnd`.
    """
    import onnx

    out = Path(out)
    g_in, g_out = golden_paths(out)
    for path in (out, g_in, g_out):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path}: exists; pass overwrite=True to replace it")
    wrapper = EndToEnd(net.eval(), min_size=min_size).eval()
    dims = wrapper.dims
    x = golden_input(dims)
    axes = {0: "batch", **{2 + i: name for i, name in
                           enumerate(("depth", "height", "width")[3 - dims:])}}
    props = {**{k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()},
             "dims": str(dims), "scale_factor": str(wrapper.scale_factor),
             "size_multiple": str(wrapper.size_multiple), "min_size": str(wrapper.min_size),
             "axis_order": AXIS_ORDER[dims],
             "julia_layout": JULIA_LAYOUT, "opset": str(OPSET)}
    with atomic_output(out, overwrite=overwrite) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(wrapper, (torch.from_numpy(x),), str(tmp), dynamo=False,
                              input_names=["sm"], output_names=["restored"],
                              dynamic_axes={"sm": axes, "restored": axes},
                              opset_version=OPSET, do_constant_folding=True)
        model = onnx.load(str(tmp))
        del model.metadata_props[:]
        for key, value in sorted(props.items()):
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        model.producer_name = "pympisr"
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        rng = np.random.default_rng(0)
        checks = [x] + [(rng.standard_normal((b, 2, *s)) * 1e-3).astype(np.float32)
                        for b, *s in _CHECK_SHAPES[dims]]
        error = check_onnx_against_torch(tmp, wrapper, checks)
        golden = _session(tmp).run(["restored"], {"sm": x})[0].astype(np.float32)
    for path, array in ((g_in, x), (g_out, golden)):
        with atomic_output(path, overwrite=overwrite) as tmp_npy:
            with open(tmp_npy, "wb") as fh:
                np.save(fh, array)
    return ExportResult(out, g_in, g_out, props, error)


def export_checkpoint(checkpoint: str | Path, out: str | Path, *,
                      test_metrics: dict[str, Any] | None = None,
                      description: str | None = None, ema: bool = True,
                      overwrite: bool = False) -> ExportResult:
    """Export a training checkpoint (EMA weights by default) with full metadata."""
    from .. import __version__
    from ..training import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(checkpoint)
    net = model_from_checkpoint(ckpt, ema=ema)
    config = ckpt["config"]
    history = ckpt.get("history", {})
    training = {
        "config": config,
        "steps": ckpt["step"],
        "elapsed_s": round(float(ckpt["elapsed_s"]), 1),
        "final_train_loss": history["train"][-1][1] if history.get("train") else None,
        "final_val_loss": history["val"][-1][1] if history.get("val") else None,
        "best_val_loss": ckpt.get("best_val"),
        "weights": "ema" if ema and ckpt.get("ema_state_dict") else "live",
    }
    data = dict(ckpt.get("data", {}))
    if description:
        data["description"] = description
    metadata = {
        "task": ckpt["task"],
        "architecture": ckpt["model"]["architecture"],
        "model_name": ckpt["model"]["name"],
        "model_options": ckpt["model"]["options"],
        "parameters": sum(p.numel() for p in net.parameters()),
        "noise_range": list(config["data"]["sigma_range"]),
        "training_data": data,
        "training": training,
        "pympisr_version": __version__,
        "test_metrics": test_metrics or {},
    }
    return export_model(net, out, metadata=metadata, min_size=config["data"]["patch_size"],
                        overwrite=overwrite)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict of strings."""
    import onnx
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}
