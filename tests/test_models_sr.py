"""Super-resolution networks (RDN, SMRnet, TranSMS, SRCNN, VDSR), their shared blocks,
the data-consistency layer, and their ONNX export (opset 17, float32, dynamic grids)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pympisr.errors import InvalidInputError
from pympisr.export import EndToEnd, export_model
from pympisr.models import build_model, model_spec
from pympisr.models.conditioning import run_network
from pympisr.models.data_consistency import DataConsistency
from pympisr.models.dense_blocks import ResidualDenseBlock, ResidualInResidualDenseBlock
from pympisr.models.transms import ConvTransformerStage
from pympisr.models.upsampling import interpolate_to_fine, pixel_shuffle, scale_steps
from pympisr.operators import BlockMean, StridedSampling
from pympisr.tasks import get_task

# (name, dims it supports, scale factors to test)
# (identity, x3 and x2 steps; one and three x2 steps; interpolation by 3 and 2)
TINY = [("rdn-tiny", (2, 3), (1, 3, 4)),
        ("smrnet-tiny", (2, 3), (2, 8)),
        ("srcnn-tiny", (2, 3), (3,)),
        ("vdsr-tiny", (2, 3), (2,)),
        ("transms-tiny", (2,), (2, 8))]
# every size, dims and scale without the noise channel; with it at the first scale
SHAPE_CASES = [(name, dims, s, False) for name, all_dims, scales in TINY
               for dims in all_dims for s in scales] + \
    [(name, dims, scales[0], True) for name, all_dims, scales in TINY for dims in all_dims]
CONVS = (nn.Conv2d, nn.Conv3d)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks gain nothing from threads; on a shared machine they only spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def convs(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, CONVS)]


def grid_for(dims: int) -> tuple[int, ...]:
    """Non-square grids (even, for TranSMS' stride-2 stage)."""
    return (6, 4) if dims == 2 else (4, 2, 6)


# ---------------------------------------------------------------- shapes and registry
@pytest.mark.parametrize("name, dims, scale, noise_channel", SHAPE_CASES)
def test_output_grid_is_scale_times_input(name: str, dims: int, scale: int,
                                          noise_channel: bool) -> None:
    torch.manual_seed(0)
    net = build_model(name, dims=dims, scale_factor=scale, noise_channel=noise_channel).eval()
    grid = grid_for(dims)
    x = torch.randn(2, 2, *grid)
    sigma = torch.tensor([[0.1], [0.0]]) if noise_channel else None
    with torch.inference_mode():
        y = run_network(net, x, sigma)
    assert net.dims == dims and net.scale_factor == scale
    assert y.shape == (2, 2, *(scale * n for n in grid))
    assert torch.isfinite(y).all() and y.abs().max() > 0


@pytest.mark.parametrize("name", ["rdn-small", "smrnet-small", "srcnn-small", "vdsr-small",
                                  "transms-small"])
def test_small_sizes_run_in_2d(name: str) -> None:
    net = build_model(name, dims=2, scale_factor=2).eval()
    with torch.inference_mode():
        y = net(torch.randn(1, 2, 8, 6))
    assert y.shape == (1, 2, 16, 12) and torch.isfinite(y).all()


def test_registered_architectures() -> None:
    expected = {"rdn": "RDN", "rdn-a": "RDN", "smrnet": "SMRnet", "srcnn": "SRCNN",
                "vdsr": "VDSR", "transms-x2": "TranSMS", "transms-x4": "TranSMS",
                "transms-x8": "TranSMS"}
    for name, arch in expected.items():
        assert model_spec(name).architecture == arch
        for size in ("-small", "-tiny"):
            stem = name.split("-")[0]
            assert model_spec(stem + size).architecture == arch


def test_rdn_denoiser_is_residual() -> None:
    """scale_factor 1: with the last convolution zeroed, RDN returns its input."""
    net = build_model("rdn-tiny", dims=2, noise_channel=True).eval()
    nn.init.zeros_(net.reconstruct.weight)
    nn.init.zeros_(net.reconstruct.bias)
    x = torch.randn(2, 2, 5, 7)
    with torch.inference_mode():
        assert torch.equal(run_network(net, x, torch.full((2, 1), 0.2)), x)


@pytest.mark.parametrize("dims", [2, 3])
def test_vdsr_is_interpolation_plus_residual(dims: int) -> None:
    net = build_model("vdsr-tiny", dims=dims, scale_factor=2).eval()
    last = convs(net)[-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    x = torch.randn(1, 2, *grid_for(dims))
    with torch.inference_mode():
        torch.testing.assert_close(net(x), interpolate_to_fine(x, 2))


# ---------------------------------------------------------------- paper sizes
@pytest.mark.parametrize("name, blocks, layers, growth", [("rdn", 16, 8, 64),
                                                         ("rdn-a", 20, 6, 32)])
def test_paper_size_rdn(name: str, blocks: int, layers: int, growth: int) -> None:
    net = build_model(name, dims=2, scale_factor=4)
    rdbs = [m for m in net.modules() if isinstance(m, ResidualDenseBlock)]
    assert len(rdbs) == blocks
    assert all(len(b.dense) == layers for b in rdbs)
    assert all(layer[0].out_channels == growth for b in rdbs for layer in b.dense)
    assert all(b.fuse.kernel_size == (1, 1) and b.fuse.out_channels == 64 for b in rdbs)
    # 2 shallow + D (C + 1) + 2 global fusion + 2 sub-pixel (x4 = x2 x2) + 1 output
    assert len(convs(net)) == 2 + blocks * (layers + 1) + 2 + 2 + 1
    assert convs(net)[0].out_channels == 64 and convs(net)[-1].out_channels == 2


def test_paper_size_smrnet() -> None:
    """3d-SMRnet at x4 (the tiny sizes cover x2 and x8: one x2 step each)."""
    scale = 4
    net = build_model("smrnet", dims=3, scale_factor=scale)
    rrdbs = [m for m in net.modules() if isinstance(m, ResidualInResidualDenseBlock)]
    rdbs = [m for m in net.modules() if isinstance(m, ResidualDenseBlock)]
    assert len(rrdbs) == 9 and len(rdbs) == 27
    assert all(layer[0].out_channels == 32 for b in rdbs for layer in b.dense)
    steps = int(math.log2(scale))
    # head + 27 x 5 + trunk conv + one per x2 step + 2 tail
    assert len(convs(net)) == 1 + 27 * 5 + 1 + steps + 2
    assert all(isinstance(c, nn.Conv3d) for c in convs(net))
    assert convs(net)[0].out_channels == 64


@pytest.mark.parametrize("scale", [2, 8])
def test_smrnet_has_one_upsampling_step_per_factor_two(scale: int) -> None:
    net = build_model("smrnet-tiny", dims=2, scale_factor=scale)
    assert len(net.upsample.convs) == int(math.log2(scale))


@pytest.mark.parametrize("name, scale, c1, n_cl", [("transms-x2", 2, 24, 5),
                                                  ("transms-x4", 4, 24, 8),
                                                  ("transms-x8", 8, 64, 9)])
def test_paper_size_transms(name: str, scale: int, c1: int, n_cl: int) -> None:
    net = build_model(name, dims=2)
    assert net.scale_factor == scale and net.size_multiple == 2
    assert net.initial.out_channels == c1
    stages = [m for m in net.modules() if isinstance(m, ConvTransformerStage)]
    assert [s.embed.stride for s in stages] == [(1, 1), (1, 1), (2, 2)]
    assert all(s.embed.out_channels == 64 and s.attention.heads == 4 for s in stages)
    assert stages[0].mlp[0].out_features == 128
    rdbs = [m for m in net.modules() if isinstance(m, ResidualDenseBlock)]
    assert len(rdbs) == 4 and all(len(b.dense) == n_cl for b in rdbs)
    assert all(layer[0].out_channels == 6 and b.fuse.out_channels == 24
               for b in rdbs for layer in b.dense)
    assert net.fuse.out_channels == 48
    assert len(net.upsample.convs) == int(math.log2(scale))
    assert net.consistency is not None and net.consistency.mode == "block"


def test_paper_size_srcnn_and_vdsr() -> None:
    srcnn = convs(build_model("srcnn", dims=2))
    assert [c.kernel_size[0] for c in srcnn] == [9, 1, 5]
    assert [c.out_channels for c in srcnn] == [64, 32, 2]
    vdsr = convs(build_model("vdsr", dims=2))
    assert len(vdsr) == 20 and all(c.out_channels == 64 for c in vdsr[:-1])


# ---------------------------------------------------------------- refusals
def test_transms_refuses_3d() -> None:
    with pytest.raises(InvalidInputError, match="TranSMS is a 2D network.*dims=3"):
        build_model("transms-tiny", dims=3)


def test_transms_refuses_grids_off_its_size_multiple() -> None:
    net = build_model("transms-tiny", dims=2)
    with pytest.raises(InvalidInputError, match="multiple of size_multiple=2"):
        net(torch.randn(1, 2, 5, 6))


@pytest.mark.parametrize("name, scale", [("smrnet-tiny", 3), ("transms-tiny", 6),
                                         ("rdn-tiny", 5)])
def test_unsupported_scale_factors_fail(name: str, scale: int) -> None:
    with pytest.raises(ValueError, match="scale_factor"):
        build_model(name, dims=2, scale_factor=scale)


def test_unknown_options_fail() -> None:
    with pytest.raises(ValueError, match="data_consistency"):
        build_model("vdsr-tiny", dims=2, data_consistency="mask")
    with pytest.raises(ValueError, match="lr_grid"):
        build_model("srcnn-tiny", dims=2, lr_grid="centre")


# ---------------------------------------------------------------- building blocks
def test_pixel_shuffle_matches_torch_in_2d_and_index_rule_in_3d() -> None:
    x = torch.randn(2, 3 * 4, 5, 6)
    assert torch.equal(pixel_shuffle(x, 2), F.pixel_shuffle(x, 2))
    s, c = 2, 3
    v = torch.randn(2, c * s ** 3, 3, 4, 5)
    out = pixel_shuffle(v, s)
    assert out.shape == (2, c, 6, 8, 10)
    for i in range(s):
        for j in range(s):
            for k in range(s):
                channels = [ch * s ** 3 + i * s * s + j * s + k for ch in range(c)]
                assert torch.equal(out[:, :, i::s, j::s, k::s], v[:, channels])


def test_scale_steps() -> None:
    assert scale_steps(8) == [2, 2, 2] and scale_steps(6) == [3, 2] and scale_steps(1) == []
    with pytest.raises(ValueError, match="product of 2"):
        scale_steps(6, allowed=(2,))


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("factor", [2, 3])
def test_interpolation_geometry(dims: int, factor: int) -> None:
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, *grid_for(dims), dtype=torch.float64, generator=gen)
    every_s = (Ellipsis, *[slice(None, None, factor)] * dims)
    # "stride": the input samples are the fine points 0, s, 2s, ... exactly
    fine = interpolate_to_fine(x, factor, "stride")
    assert fine.shape == (2, 3, *(factor * n for n in grid_for(dims)))
    torch.testing.assert_close(fine[every_s], x)
    # "block": samples sit at the block centres (i + 1/2) s - 1/2, so mirroring the
    # input mirrors the output, and a constant stays constant
    block = interpolate_to_fine(x, factor, "block")
    axes = list(range(2, 2 + dims))
    torch.testing.assert_close(interpolate_to_fine(x.flip(axes), factor, "block"),
                               block.flip(axes))
    assert not torch.allclose(fine.flip(axes), interpolate_to_fine(x.flip(axes), factor,
                                                                   "stride"))
    flat = interpolate_to_fine(torch.full_like(x, 0.3), factor, "block")
    torch.testing.assert_close(flat, torch.full_like(flat, 0.3))
    if factor % 2:  # odd s: the centres are fine points, where the input is reproduced
        centres = (Ellipsis, *[slice(factor // 2, None, factor)] * dims)
        torch.testing.assert_close(block[centres], x)


def test_trilinear_block_geometry_reproduces_a_ramp() -> None:
    """3D: a linear ramp sampled at the block centres is reproduced between them."""
    factor, n = 2, 5
    centres = (torch.arange(n, dtype=torch.float64) + 0.5) * factor - 0.5
    fine = interpolate_to_fine(centres.expand(1, 1, 2, 3, n).contiguous(), factor, "block")
    inside = slice(factor // 2, (n - 1) * factor + 1)
    torch.testing.assert_close(fine[0, 0, 1, 2, inside],
                               torch.arange(factor * n, dtype=torch.float64)[inside])


# ---------------------------------------------------------------- data consistency
def complex_of(t: torch.Tensor) -> np.ndarray:
    a = t.detach().double().numpy()
    return a[:, 0] + 1j * a[:, 1]


def operator_for(mode: str, factor: int, dims: int, fine: tuple[int, ...]):
    return StridedSampling(factor, fine) if mode == "stride" else BlockMean(factor, dims)


@pytest.mark.parametrize("mode", ["stride", "block"])
@pytest.mark.parametrize("dims, factor", [(2, 2), (2, 3), (3, 2)])
def test_dc_projection_bound_and_agreement_with_operators(mode: str, dims: int,
                                                          factor: int) -> None:
    """After the layer ||A x - y|| <= eps = sqrt(m) sigma tol (m real measured values);
    the result equals the Euclidean projection of pympisr.operators on complex data."""
    gen = torch.Generator().manual_seed(1)
    grid = (4, 3) if dims == 2 else (3, 2, 3)
    fine = tuple(factor * n for n in grid)
    x = torch.randn(4, 2, *fine, generator=gen)
    y = torch.randn(4, 2, *grid, generator=gen)
    sigma = torch.tensor([0.0, 0.05, 0.3, 5.0]).reshape(4, *[1] * (dims + 1))
    tol = 1.5
    layer = DataConsistency(mode, factor, dims, tolerance=tol)
    out = layer.project(x, y, sigma)
    m = y[0].numel()
    eps = math.sqrt(m) * tol * sigma.reshape(-1)
    residual = (layer.measure(out) - y).flatten(1).norm(dim=1)
    assert (residual <= eps + 1e-5).all()
    before = (layer.measure(x) - y).flatten(1).norm(dim=1)
    assert before[-1] < eps[-1]  # the last image was consistent already ...
    torch.testing.assert_close(out[-1], x[-1])  # ... and stays unchanged
    assert torch.allclose(residual[:3], eps[:3], atol=1e-5)  # the others land on the sphere
    op = operator_for(mode, factor, dims, fine)
    reference = op.project(complex_of(x), complex_of(y), eps.double().numpy().reshape(
        -1, *[1] * dims))
    np.testing.assert_allclose(complex_of(out), reference, atol=1e-5)


@pytest.mark.parametrize("mode", ["stride", "block"])
def test_dc_without_noise_level_is_exact_and_idempotent(mode: str) -> None:
    torch.manual_seed(2)
    layer = DataConsistency(mode, 2, 2)
    x, y = torch.randn(3, 2, 8, 6), torch.randn(3, 2, 4, 3)
    out = layer(x, y)
    torch.testing.assert_close(layer.measure(out), y, atol=1e-6, rtol=0)
    torch.testing.assert_close(layer(out, y), out, atol=1e-6, rtol=0)
    consistent = torch.randn(3, 2, 8, 6)
    torch.testing.assert_close(layer(consistent, layer.measure(consistent)), consistent)


def test_dc_reads_sigma_from_the_noise_channel() -> None:
    layer = DataConsistency("block", 2, 2, tolerance=1.0, noise_channel=True)
    x, y = torch.randn(2, 2, 8, 8), torch.randn(2, 2, 4, 4)
    level = torch.tensor([0.1, 0.4]).reshape(2, 1, 1, 1).expand(2, 1, 4, 4)
    out = layer(x, torch.cat([y, level], dim=1))
    torch.testing.assert_close(out, layer.project(x, y, level[:, :, :1, :1]))


@pytest.mark.parametrize("mode", ["stride", "block"])
@pytest.mark.parametrize("with_sigma", [False, True])
def test_dc_is_differentiable(mode: str, with_sigma: bool) -> None:
    gen = torch.Generator().manual_seed(3)
    layer = DataConsistency(mode, 2, 2, tolerance=1.0)
    x = torch.randn(2, 2, 4, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.randn(2, 2, 2, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    sigma = torch.tensor([0.05, 0.2], dtype=torch.float64).reshape(2, 1, 1, 1)
    sigma = sigma.requires_grad_() if with_sigma else None
    args = (x, y, sigma) if with_sigma else (x, y)
    assert torch.autograd.gradcheck(layer.project, args)


@pytest.mark.parametrize("name, task_name, options", [
    ("vdsr-tiny", "upsample", {"data_consistency": "block"}),
    ("smrnet-tiny", "accelerate", {"data_consistency": "stride"}),
    ("transms-tiny", "upsample", {"noise_channel": True}),
    ("srcnn-tiny", "accelerate", {"data_consistency": "stride", "lr_grid": "stride",
                                  "noise_channel": True, "dc_tolerance": 0.5}),
])
def test_networks_with_dc_are_consistent_and_train(name: str, task_name: str,
                                                   options: dict) -> None:
    torch.manual_seed(4)
    net = build_model(name, dims=2, scale_factor=2, **options)
    net.train()
    x = torch.randn(3, 2, 6, 4)
    sigma = torch.tensor([[0.0], [0.05], [0.5]]) if net.noise_channel else None
    out = run_network(net, x, sigma)
    op = get_task(task_name, 2, 2).operator(out.shape[2:])
    residual = (op.forward(out) - x).flatten(1).norm(dim=1)
    tol = options.get("dc_tolerance", 1.0)
    eps = (math.sqrt(x[0].numel()) * tol * sigma.reshape(-1) if sigma is not None
           else torch.zeros(3))
    assert (residual <= eps + 1e-5).all()
    out.abs().mean().backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


# ---------------------------------------------------------------- ONNX export
# each architecture once, with the parts the registry-wide export test
# (tests/test_registry_networks.py, default options) does not reach: 3D pixel shuffle,
# bicubic (block geometry), trilinear (stride geometry), both data-consistency modes,
# the noise channel as the data-consistency radius
EXPORT_CASES = [
    ("rdn-tiny", 3, "upsample", 2, {"data_consistency": "block"}),
    ("smrnet-tiny", 2, "accelerate", 2, {"data_consistency": "stride"}),
    ("srcnn-tiny", 3, "accelerate", 2, {"lr_grid": "stride", "data_consistency": "stride"}),
    ("vdsr-tiny", 2, "upsample", 2, {"noise_channel": True}),
    ("transms-tiny", 2, "upsample", 2, {"noise_channel": True}),
]
ONNX_FLOAT32 = onnx.TensorProto.FLOAT


def assert_float32_opset17(path: Path) -> None:
    model = onnx.load(str(path))
    assert all(o.version <= 17 for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert all(t.data_type in (ONNX_FLOAT32, onnx.TensorProto.INT64, onnx.TensorProto.BOOL)
               for t in model.graph.initializer)
    for node in model.graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to":
                assert attr.i not in (onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16)
    for value in [*model.graph.input, *model.graph.output]:
        assert value.type.tensor_type.elem_type == ONNX_FLOAT32


@pytest.mark.parametrize("name, dims, task_name, scale, options", EXPORT_CASES)
def test_onnx_round_trip(tmp_path: Path, name: str, dims: int, task_name: str, scale: int,
                         options: dict) -> None:
    torch.manual_seed(5)
    net = build_model(name, dims=dims, scale_factor=scale, **options).eval()
    for m in net.modules():  # non-trivial batch-norm statistics (TranSMS' projections)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    task = get_task(task_name, dims, scale)
    result = export_model(net, tmp_path / f"{name}.onnx", metadata={"architecture": name},
                          task=task)
    assert result.metadata["scale_factor"] == str(scale)
    assert_float32_opset17(result.path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(result.path), options,
                                   providers=["CPUExecutionProvider"])
    wrapper = EndToEnd(net, task=task).eval()
    rng = np.random.default_rng(6)
    grids = [(9, 14), (16, 7)] if dims == 2 else [(5, 3, 6), (4, 7, 2)]
    for grid in grids:
        feeds = {"sm": rng.standard_normal((2, 2, *grid)).astype(np.float32)}
        if net.noise_channel:
            feeds["sigma"] = np.array([[0.05], [0.3]], dtype=np.float32)
        out = session.run(["restored"], feeds)[0]
        with torch.inference_mode():
            ref = wrapper(*(torch.from_numpy(feeds[n]) for n in wrapper.input_names)).numpy()
        assert out.shape == (2, 2, *task.output_grid(grid)) == ref.shape
        assert np.abs(out - ref).max() < 1e-4
