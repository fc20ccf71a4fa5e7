"""Every registered network, generically (MONAI style): construction in 2D and 3D,
forward shapes, gradients and an ONNX round trip at grid sizes other than the export's.

The tests read only what networks declare (``dims``, ``scale_factor``, ``size_multiple``,
``noise_channel``, ``takes_mask``, and whether the constructor takes ``noise_channel``)
and call them through :func:`pympisr.models.conditioning.run_network`, so a network
added to the registry later is covered without editing this file. Forward passes and
exports use each architecture's smallest registered size (fewest parameters); the
other sizes (paper sizes) are only constructed and counted.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from pympisr.export.onnx import OPSET
from pympisr.models import available_models, build_model, model_spec
from pympisr.models.conditioning import run_network

NAMES = available_models()
ARCHITECTURES = sorted({model_spec(name).architecture for name in NAMES})
DIMS = (2, 3)
# odd grid shapes (networks with size_multiple > 1 get multiples of it instead, below)
GRIDS = {2: [(13, 9), (7, 11)], 3: [(5, 7, 3), (3, 5, 7)]}
EXPORT_GRID = {2: (12, 10), 3: (6, 4, 5)}
BATCH = 2
ONNX_ATOL = 1e-4


def sizes_of(architecture: str) -> list[str]:
    return [name for name in NAMES if model_spec(name).architecture == architecture]


@functools.cache
def construct(name: str, dims: int) -> int | ValueError:
    """Parameter count of ``name`` built for ``dims``, or the ValueError it refused with."""
    try:
        net = build_model(name, dims=dims)
    except ValueError as exc:
        return exc
    return sum(p.numel() for p in net.parameters())


def smallest_size(architecture: str, dims: int) -> str:
    """The architecture's registered size with the fewest parameters in ``dims``-D
    (only called for the pairs of :data:`SUPPORTED`)."""
    built = {name: construct(name, dims) for name in sizes_of(architecture)}
    counts = {name: n for name, n in built.items() if isinstance(n, int)}
    return min(counts, key=counts.__getitem__)


def supports(architecture: str, dims: int) -> bool:
    """Whether some registered size builds in ``dims``-D; tries the ``-tiny`` size first,
    so collection builds no paper-size network when the architecture has one."""
    names = sorted(sizes_of(architecture), key=lambda name: not name.endswith("-tiny"))
    return any(isinstance(construct(name, dims), int) for name in names)


def takes_noise_option(name: str) -> bool:
    """Whether the network's constructor has a ``noise_channel`` option."""
    return "noise_channel" in inspect.signature(model_spec(name).factory).parameters


# (architecture, dims) pairs the architecture builds in (the refusals are tested by
# test_every_size_builds_or_refuses_clearly), and the noise-input variants each has
SUPPORTED = [(arch, dims) for arch in ARCHITECTURES for dims in DIMS if supports(arch, dims)]
VARIANTS = [(arch, dims, noise) for arch, dims in SUPPORTED
            for noise in ((False, True) if any(takes_noise_option(name)
                                               for name in sizes_of(arch)) else (False,))]


def grid_for(base: tuple[int, ...], multiple: int) -> tuple[int, ...]:
    """``base`` itself for ``size_multiple == 1``; otherwise 1-3 multiples of it per
    axis, distinct for the distinct base grids used here."""
    return base if multiple == 1 else tuple(multiple * (1 + n % 3) for n in base)


def build_small(architecture: str, dims: int, noise: bool) -> tuple[str, nn.Module]:
    name = smallest_size(architecture, dims)
    options: dict[str, object] = {"dims": dims}
    if takes_noise_option(name):
        options["noise_channel"] = noise
    return name, build_model(name, **options)


def extra_inputs(net: nn.Module, grid: tuple[int, ...],
                 generator: torch.Generator) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``sigma`` ``(B, 1)`` and ``mask`` ``(B, 1, *grid)`` (1 = valid) where ``net``
    declares it needs them, else None."""
    sigma = mask = None
    if getattr(net, "noise_channel", False):
        sigma = torch.tensor([[0.05], [0.3]])[:BATCH]
    if getattr(net, "takes_mask", False):
        mask = (torch.rand(BATCH, 1, *grid, generator=generator) > 0.25).float()
    return sigma, mask


# --------------------------------------------------------------------- construction
@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("name", NAMES)
def test_every_size_builds_or_refuses_clearly(name: str, dims: int) -> None:
    """Every registered size (paper sizes too) builds with a positive parameter count,
    or refuses the dimensionality with a ValueError that names the network."""
    result = construct(name, dims)
    architecture = model_spec(name).architecture
    if isinstance(result, ValueError):
        message = str(result).lower()
        assert architecture.lower() in message or name.split("-")[0] in message, (
            f"{name} refuses dims={dims} without naming the network: {result}")
        assert str(dims) in message, f"{name}'s refusal does not name dims={dims}: {result}"
    else:
        assert result > 0


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_architecture_builds_in_some_dims(architecture: str) -> None:
    assert any(isinstance(construct(name, dims), int)
               for name in sizes_of(architecture) for dims in DIMS)


# -------------------------------------------------------------------------- forward
@pytest.mark.parametrize("architecture,dims,noise", VARIANTS)
def test_forward_shape_on_odd_grids(architecture: str, dims: int, noise: bool) -> None:
    """Output ``(B, 2, *scale_factor * grid)``, finite, for two odd grids; the declared
    attributes match the options; the noise-level input reaches the output."""
    name, net = build_small(architecture, dims, noise)
    net.eval()
    assert net.dims == dims
    assert bool(getattr(net, "noise_channel", False)) == noise
    scale = int(net.scale_factor)
    multiple = int(getattr(net, "size_multiple", 1))
    assert scale >= 1 and multiple >= 1
    generator = torch.Generator().manual_seed(0)
    for base in GRIDS[dims]:
        grid = grid_for(base, multiple)
        x = 0.5 * torch.randn(BATCH, 2, *grid, generator=generator)
        sigma, mask = extra_inputs(net, grid, generator)
        with torch.inference_mode():
            y = run_network(net, x, sigma, mask)
        assert y.shape == (BATCH, 2, *(scale * n for n in grid)), (name, grid)
        assert torch.isfinite(y).all(), (name, grid)
        if noise:
            with torch.inference_mode():
                louder = run_network(net, x, 4 * sigma, mask)
            assert not torch.allclose(louder, y), f"{name}: the noise level has no effect"


@pytest.mark.parametrize("architecture,dims", SUPPORTED)
def test_every_parameter_gets_a_gradient(architecture: str, dims: int) -> None:
    """One training step's backward pass reaches every parameter (no unused modules)."""
    name, net = build_small(architecture, dims, noise=False)
    net.train()
    generator = torch.Generator().manual_seed(1)
    grid = grid_for(GRIDS[dims][0], int(getattr(net, "size_multiple", 1)))
    x = 0.5 * torch.randn(BATCH, 2, *grid, generator=generator)
    sigma, mask = extra_inputs(net, grid, generator)
    run_network(net, x, sigma, mask).abs().mean().backward()
    missing = [n for n, p in net.named_parameters()
               if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
    assert not missing, f"{name}: no finite gradient for {missing}"


# ----------------------------------------------------------------------------- ONNX
class GraphInputs(nn.Module):
    """``net`` called as :func:`run_network` calls it, with its extra inputs (``sigma``,
    ``mask``) as graph inputs, for exporting the bare network."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.names = (["x"] + (["sigma"] if getattr(net, "noise_channel", False) else [])
                      + (["mask"] if getattr(net, "takes_mask", False) else []))

    def forward(self, x: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        named = dict(zip(self.names[1:], extra))
        return run_network(self.net, x, named.get("sigma"), named.get("mask"))


def feeds_for(wrapper: GraphInputs, grid: tuple[int, ...], seed: int) -> dict[str, np.ndarray]:
    generator = torch.Generator().manual_seed(seed)
    x = 0.5 * torch.randn(BATCH, 2, *grid, generator=generator)
    sigma, mask = extra_inputs(wrapper.net, grid, generator)
    tensors = {"x": x, "sigma": sigma, "mask": mask}
    return {n: tensors[n].numpy() for n in wrapper.names}  # type: ignore[union-attr]


def assert_float32_only(model: onnx.ModelProto) -> None:
    """Graph inputs and outputs are float32 (or int64 shape data), and no tensor in the
    graph is float64 or float16 (ONNXRunTime.jl maps neither, DESIGN section 8)."""
    banned = {onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
    for value in [*model.graph.input, *model.graph.output]:
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT, value.name
    assert not [i.name for i in model.graph.initializer if i.data_type in banned]
    casts = [a.i for node in model.graph.node if node.op_type == "Cast"
             for a in node.attribute if a.name == "to"]
    assert not banned & set(casts)


@pytest.mark.parametrize("architecture,dims", SUPPORTED)
def test_onnx_export_runs_at_other_grid_sizes(architecture: str, dims: int,
                                              tmp_path: Path) -> None:
    """Export once (dynamic batch and spatial axes, opset <= 17, float32), then
    onnxruntime at two grids that differ from the export grid matches PyTorch."""
    import onnxruntime as ort

    name, net = build_small(architecture, dims, noise=takes_noise_option(
        smallest_size(architecture, dims)))
    wrapper = GraphInputs(net.eval()).eval()
    multiple = int(getattr(net, "size_multiple", 1))
    export_grid = grid_for(EXPORT_GRID[dims], multiple)
    spatial = {0: "batch", **{2 + i: f"axis{i}" for i in range(dims)}}
    dynamic = {n: (spatial if n in ("x", "mask") else {0: "batch"}) for n in wrapper.names}
    example = feeds_for(wrapper, export_grid, seed=2)
    path = tmp_path / f"{name}_{dims}d.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(wrapper, tuple(torch.from_numpy(example[n]) for n in wrapper.names),
                          str(path), dynamo=False, input_names=wrapper.names,
                          output_names=["y"], dynamic_axes={**dynamic, "y": spatial},
                          opset_version=OPSET)
    model = onnx.load(str(path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) <= 17
    assert_float32_only(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for seed, base in enumerate(GRIDS[dims], start=3):
        grid = grid_for(base, multiple)
        assert grid != export_grid
        feeds = feeds_for(wrapper, grid, seed)
        with torch.inference_mode():
            expected = wrapper(*(torch.from_numpy(feeds[n]) for n in wrapper.names)).numpy()
        got = session.run(["y"], feeds)[0]
        assert got.shape == expected.shape, (name, grid)
        np.testing.assert_allclose(got, expected, rtol=0, atol=ONNX_ATOL,
                                   err_msg=f"{name} {dims}D at grid {grid}")
