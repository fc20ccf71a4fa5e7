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
``<stem>.golden_output.npy`` (onnxruntime's output for that input). The sha256 sidecar
``<name>.onnx.sha256`` beside the model vouches for it when it is used outside a
manifest folder (:func:`pympisr.model_zoo.verify_model`).
"""

from __future__ import annotations

import inspect
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..atomic import atomic_output
from ..errors import ExportCheckError
from ..models.conditioning import run_network
from ..tasks import Task, get_task

__all__ = ["OPSET", "EndToEnd", "ExportCheckError", "ExportResult", "check_onnx_against_torch",
           "component_peaks", "export_checkpoint", "export_model",
           "finish_export", "golden_extra_inputs", "golden_extra_path", "golden_input",
           "golden_paths", "onnx_session", "read_metadata", "refuse_existing",
           "relative_difference", "set_metadata"]

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


def _padded_size(n: Any, min_size: int, multiple: int) -> Any:
    """``max(n, min_size)`` rounded up to a multiple of ``multiple``.

    ``n`` is an int in eager mode and a 0-d tensor while the ONNX exporter traces; the
    tensor path keeps the arithmetic in the graph (a Python ``max`` would be baked in).
    """
    target = torch.clamp(n, min=min_size) if isinstance(n, torch.Tensor) else max(n, min_size)
    return target + (-target) % multiple


class EndToEnd(nn.Module):
    """Normalise, pad, run ``net``, crop, rescale (module docstring); ONNX-exportable.

    ``net`` must expose ``dims`` and may expose ``size_multiple``, ``scale_factor``,
    ``noise_channel`` and ``takes_mask`` (see :mod:`pympisr.models`). ``task`` gives
    the grid rule (default: denoising, the grid is kept) and whether a mask is an
    input. ``min_size`` is the training patch size: smaller grids are zero-padded
    (centred) to it, as in training and the seed paper's inference (3.4), so the
    network sees its image inside zeros as it did during training.

    Inputs: ``sm`` ``(B, 2, *grid)`` raw units; ``sigma`` ``(B, 1)`` the noise std of
    the real and of the imaginary part in the same raw units (noise-conditioned
    networks); ``mask`` ``(B, 1, *grid)`` 1 = measured (inpainting).
    """

    def __init__(self, net: nn.Module, *, task: Task | None = None,
                 min_size: int = 1) -> None:
        super().__init__()
        from ..tasks import get_task

        self.net = net
        self.dims = int(net.dims)
        self.size_multiple = int(getattr(net, "size_multiple", 1))
        self.scale_factor = int(getattr(net, "scale_factor", 1))
        self.task = task or get_task("denoise", self.dims)
        if self.task.scale_factor != self.scale_factor:
            raise ValueError(f"network scale factor {self.scale_factor} differs from the "
                             f"task's {self.task!r}")
        self.min_size = int(min_size)
        self.input_names = ["sm"] + (["sigma"] if getattr(net, "noise_channel", False)
                                     else []) + (["mask"] if self.task.needs_mask else [])

    def forward(self, sm: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        inputs = dict(zip(self.input_names[1:], extra))
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
        sigma = inputs.get("sigma")
        if sigma is not None:
            sigma = sigma / peak.reshape(-1, 1)
        mask = inputs.get("mask")
        if mask is not None:
            mask = F.pad(mask, pad_arg)
        y = run_network(self.net, F.pad(x, pad_arg), sigma, mask)
        s = 1 if self.task.grid_rule == "same" else self.scale_factor
        crop = tuple(slice(b * s, b * s + self.task.output_size(n))
                     for b, n in zip(before, shape))
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


def component_peaks(sm: np.ndarray) -> np.ndarray:
    """``max |re + i im|`` ``(B,)`` of each component of ``sm`` ``(B, 2, *grid)``: the
    normalisation of :class:`EndToEnd` (noise levels are relative to it)."""
    return np.sqrt(sm[:, 0] ** 2 + sm[:, 1] ** 2).reshape(sm.shape[0], -1).max(axis=1)


def golden_extra_inputs(sm: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """Deterministic ``sigma`` and ``mask`` (a block of missing positions) for the golden
    files of models with those inputs.

    ``sigma`` is relative to each component's peak: 0.1 (the noise level of
    :func:`golden_input`) for the last component and ten times less for each earlier
    one (2D golden input: 0.001, 0.01, 0.1), so that a noise switch
    (:mod:`pympisr.export.noise_switch`) is checked on both sides of its level."""
    extra: dict[str, np.ndarray] = {}
    if "sigma" in names:
        relative = 0.1 * 10.0 ** -np.arange(sm.shape[0] - 1, -1, -1)
        extra["sigma"] = (relative * component_peaks(sm)).reshape(-1, 1).astype(np.float32)
    if "mask" in names:
        mask = np.ones((sm.shape[0], 1, *sm.shape[2:]), dtype=np.float32)
        block = tuple(slice(n // 3, n // 3 + max(1, n // 4)) for n in sm.shape[2:])
        mask[(slice(None), 0, *block)] = 0.0
        extra["mask"] = mask
    return extra


def golden_paths(onnx_path: str | Path) -> tuple[Path, Path]:
    """``(<stem>.golden_input.npy, <stem>.golden_output.npy)`` beside ``onnx_path``."""
    p = Path(onnx_path)
    return p.with_name(f"{_stem(p)}.golden_input.npy"), p.with_name(f"{_stem(p)}.golden_output.npy")


def golden_extra_path(onnx_path: str | Path, name: str) -> Path:
    """``<stem>.golden_<name>.npy`` beside ``onnx_path`` (extra inputs: sigma, mask)."""
    p = Path(onnx_path)
    return p.with_name(f"{_stem(p)}.golden_{name}.npy")


def _stem(p: Path) -> str:
    return p.name[:-5] if p.name.endswith(".onnx") else p.name


def onnx_session(path: Path) -> Any:
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def check_onnx_against_torch(onnx_path: Path, wrapper: EndToEnd,
                             inputs: list[np.ndarray]) -> float:
    """Run both on each ``sm`` input (extra inputs from :func:`golden_extra_inputs`);
    return the worst relative error or raise ExportCheckError.

    Relative error = ``max |onnx - torch| / max |torch|`` per input; it must be at most
    :data:`PARITY_RTOL` and the output shapes must agree.
    """
    session = onnx_session(onnx_path)
    worst = 0.0
    for x in inputs:
        feeds = {"sm": x, **golden_extra_inputs(x, wrapper.input_names)}
        with torch.inference_mode():
            ref = wrapper(*(torch.from_numpy(feeds[n]) for n in wrapper.input_names)).numpy()
        out = session.run(["restored"], feeds)[0]
        worst = max(worst, relative_difference(onnx_path, out, ref, "PyTorch", x.shape,
                                               PARITY_RTOL))
    return worst


def relative_difference(onnx_path: Path, out: np.ndarray, reference: np.ndarray,
                        reference_name: str, input_shape: tuple[int, ...],
                        limit: float) -> float:
    """``max |out - reference| / max |reference|`` for the graph ``onnx_path``'s output
    ``out`` at an input of ``input_shape``; ExportCheckError (naming ``reference_name``)
    if the shapes differ or the difference exceeds ``limit``."""
    if out.shape != reference.shape:
        raise ExportCheckError(f"{onnx_path}: output shape {out.shape} for input "
                               f"{input_shape}, {reference_name} gives {reference.shape}")
    err = float(np.abs(out - reference).max() / max(np.abs(reference).max(), 1e-30))
    if not err <= limit:
        raise ExportCheckError(f"{onnx_path}: the output and {reference_name}'s differ by "
                               f"{err:.2e} (relative) at input shape {input_shape}; limit "
                               f"{limit}")
    return err


@dataclass
class ExportResult:
    """Files written by an export and the parity check's worst relative error."""

    path: Path
    golden_input: Path
    golden_output: Path
    metadata: dict[str, str]
    parity_error: float
    sidecar: Path | None = None
    golden_extra: dict[str, Path] = field(default_factory=dict)


def export_model(net: nn.Module, out: str | Path, *, metadata: dict[str, Any],
                 task: Task | None = None, min_size: int = 1,
                 overwrite: bool = False) -> ExportResult:
    """Export ``net`` (eval mode) end to end to ``out`` with ``metadata``; check it at the
    trace shape and two other grid shapes; write the golden input/output files.

    ``task`` (default: denoising in ``net.dims`` dimensions) decides the inputs and the
    grid rule. ``metadata`` values that are not strings are stored as JSON. The keys
    ``task``, ``grid_rule``, ``inputs``, ``noise_input``, ``dims``, ``scale_factor``,
    ``size_multiple``, ``min_size``, ``axis_order``, ``julia_layout`` and ``opset`` are
    filled in. ``min_size``: see :class:`EndToEnd`.
    """
    import onnx

    out = Path(out)
    wrapper = EndToEnd(net.eval(), task=task, min_size=min_size).eval()
    refuse_existing(out, wrapper.input_names, overwrite)
    dims = wrapper.dims
    x = golden_input(dims)
    feeds = {"sm": x, **golden_extra_inputs(x, wrapper.input_names)}
    axes = {0: "batch", **{2 + i: name for i, name in
                           enumerate(("depth", "height", "width")[3 - dims:])}}
    dynamic = {"sm": axes, "restored": axes, "sigma": {0: "batch"}, "mask": axes}
    props = {**{k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()},
             "task": wrapper.task.name, "grid_rule": wrapper.task.grid_rule,
             "inputs": json.dumps(wrapper.input_names),
             "noise_input": "sigma" if "sigma" in wrapper.input_names else "none",
             "dims": str(dims), "scale_factor": str(wrapper.scale_factor),
             "size_multiple": str(wrapper.size_multiple), "min_size": str(wrapper.min_size),
             "axis_order": AXIS_ORDER[dims],
             "julia_layout": JULIA_LAYOUT, "opset": str(OPSET)}
    with atomic_output(out, overwrite=overwrite) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(wrapper, tuple(torch.from_numpy(feeds[n])
                                             for n in wrapper.input_names), str(tmp),
                              dynamo=False, input_names=wrapper.input_names,
                              output_names=["restored"],
                              dynamic_axes={n: dynamic[n] for n in
                                            [*wrapper.input_names, "restored"]},
                              opset_version=OPSET, do_constant_folding=True)
        model = onnx.load(str(tmp))
        set_metadata(model, props)
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        rng = np.random.default_rng(0)
        checks = [x] + [(rng.standard_normal((b, 2, *s)) * 1e-3).astype(np.float32)
                        for b, *s in _CHECK_SHAPES[dims]]
        error = check_onnx_against_torch(tmp, wrapper, checks)
        golden = onnx_session(tmp).run(["restored"], feeds)[0].astype(np.float32)
    return finish_export(out, feeds, golden, props, error, overwrite)


def refuse_existing(out: Path, input_names: list[str], overwrite: bool) -> None:
    """FileExistsError if ``out`` or one of its golden files (for a graph with the inputs
    ``input_names``) exists and ``overwrite`` is False."""
    extra = [golden_extra_path(out, name) for name in input_names[1:]]
    for path in (out, *golden_paths(out), *extra):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path}: exists; pass overwrite=True to replace it")


def set_metadata(model: Any, props: dict[str, str]) -> None:
    """Replace the ``metadata_props`` of the ONNX ``model`` by ``props`` (sorted) and
    name pympisr as its producer."""
    del model.metadata_props[:]
    for key, value in sorted(props.items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "pympisr"


def finish_export(out: Path, feeds: dict[str, np.ndarray], golden: np.ndarray,
                  props: dict[str, str], error: float, overwrite: bool) -> ExportResult:
    """Write the golden files of the checked graph ``out`` (its inputs ``feeds``, with
    ``"sm"`` first, and its output ``golden``) and its sha256 sidecar."""
    from ..model_zoo import write_sidecar

    g_in, g_out = golden_paths(out)
    extra_paths = {name: golden_extra_path(out, name) for name in feeds if name != "sm"}
    for path, array in ((g_in, feeds["sm"]), (g_out, golden),
                        *((extra_paths[n], feeds[n]) for n in extra_paths)):
        with atomic_output(path, overwrite=overwrite) as tmp_npy:
            with open(tmp_npy, "wb") as fh:
                np.save(fh, array)
    sidecar = write_sidecar(out, overwrite=True)
    return ExportResult(out, g_in, g_out, props, error, sidecar, extra_paths)


def export_checkpoint(checkpoint: str | Path, out: str | Path, *,
                      test_metrics: dict[str, Any] | None = None,
                      description: str | None = None, ema: bool = True,
                      data_consistency: str | None = None,
                      overwrite: bool = False) -> ExportResult:
    """Export a training checkpoint (EMA weights by default) with full metadata.

    ``data_consistency`` (``"stride"`` or ``"block"``) adds TranSMS' data-consistency
    projection (:mod:`pympisr.models.data_consistency`, no weights) to a
    super-resolution network trained without it; ``model_options`` then record it, the
    training record keeps the options it was trained with. InvalidInputError if the
    network has no such option.
    """
    from .. import __version__
    from ..errors import InvalidInputError
    from ..model_zoo import portable_paths
    from ..training import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(checkpoint)
    if data_consistency is not None:
        from ..models import model_spec

        factory = model_spec(ckpt["model"]["name"]).factory
        if "data_consistency" not in inspect.signature(factory).parameters:
            raise InvalidInputError(f"{checkpoint}: {ckpt['model']['architecture']} has no "
                                    "data-consistency layer to add")
        ckpt = {**ckpt, "model": {**ckpt["model"], "options": {
            **ckpt["model"]["options"], "data_consistency": data_consistency}}}
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
    task = get_task(ckpt["task"], int(config["data"]["dims"]),
                    int(config["experiment"].get("scale_factor", 0)) or None)
    metadata = {
        "architecture": ckpt["model"]["architecture"],
        "model_name": ckpt["model"]["name"],
        "model_options": ckpt["model"]["options"],
        "parameters": sum(p.numel() for p in net.parameters()),
        "noise_range": list(config["data"]["sigma_range"]),
        # shipped artifacts must not carry the training machine's folder layout
        "training_data": portable_paths(data),
        "training": portable_paths(training),
        "pympisr_version": __version__,
        "test_metrics": test_metrics or {},
    }
    return export_model(net, out, metadata=metadata, task=task,
                        min_size=config["data"]["patch_size"], overwrite=overwrite)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict of strings."""
    import onnx
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}
