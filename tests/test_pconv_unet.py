"""PConvUNet: partial convolutions, any grid, mask semantics, ONNX export with a mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pympisr.models import available_models, build_model
from pympisr.models.conditioning import run_network
from pympisr.models.pconv_unet import PartialConv, PConvUNet


def _mask(shape: tuple[int, ...], missing: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand((shape[0], 1, *shape[2:]), generator=gen) >= missing).float()


def test_registered_sizes() -> None:
    assert {"pconv-unet", "pconv-unet-small", "pconv-unet-tiny"} <= set(available_models())
    net = build_model("pconv-unet", dims=2)
    assert len(net.encoder) == 7 and len(net.decoder) == 7
    assert [lvl.pconv.conv.out_channels for lvl in net.encoder] == [64, 128, 256, 512, 512,
                                                                    512, 512]
    assert net.encoder[0].pconv.conv.kernel_size == (7, 7)
    assert isinstance(net.encoder[0].norm, nn.Identity)  # no BN in the first layer (Liu)
    assert isinstance(net.decoder[-1].norm, nn.Identity)  # nor in the last
    assert net.decoder[-1].pconv.conv.out_channels == 2
    assert net.takes_mask and net.size_multiple == 1 and net.scale_factor == 1
    small = build_model("pconv-unet-small", dims=3)
    assert len(small.encoder) < 7 and isinstance(small.encoder[0].pconv.conv, nn.Conv3d)


def test_partial_conv_renormalises_and_updates_mask() -> None:
    """Liu eq. 1-2: a constant image with holes gives the same output as without holes
    wherever the window sees a valid pixel; fully hidden windows give 0 and mask 0."""
    layer = PartialConv(2, (1,), 1, kernel_size=3)
    with torch.no_grad():
        layer.conv.weight.fill_(1.0)
        layer.conv.bias.fill_(0.5)
    x = torch.full((1, 1, 7, 7), 2.0)
    mask = torch.ones(1, 1, 7, 7)
    mask[..., 1:6, 1:6] = 0  # a 5x5 hole: the 3x3 windows centred on its inner 3x3 see nothing
    y, new_mask = layer(x, mask)
    expected = 9 * 2.0 + 0.5  # sum(1)/sum(M) * W^T(X M) + b = the full-window response
    assert torch.allclose(y[new_mask == 1], torch.tensor(expected))
    assert torch.all(new_mask[0, 0, 2:5, 2:5] == 0) and torch.all(y[0, 0, 2:5, 2:5] == 0)
    assert new_mask[0, 0, 1, 1] == 1 and new_mask.sum() == 49 - 9
    # zero padding counts as missing: the border is renormalised too
    y_full, m_full = layer(x, torch.ones(1, 1, 7, 7))
    assert torch.allclose(y_full, torch.tensor(expected)) and torch.all(m_full == 1)


def test_partial_conv_group_masks() -> None:
    """Concatenated parts with their own masks: a hidden part contributes nothing and
    the count sum(M) weighs each mask by its channels."""
    layer = PartialConv(2, (2, 1), 1, kernel_size=1)
    with torch.no_grad():
        layer.conv.weight.fill_(1.0)
        layer.conv.bias.zero_()
    x = torch.tensor([1.0, 1.0, 10.0]).reshape(1, 3, 1, 1).expand(1, 3, 4, 4)
    mask = torch.stack([torch.ones(4, 4), torch.zeros(4, 4)])[None]  # third channel hidden
    y, m = layer(x, mask)
    assert torch.allclose(y, torch.tensor(3.0 / 2.0 * 2.0))  # sum(1)=3, sum(M)=2, W^T X M=2
    assert torch.all(m == 1)


@pytest.mark.parametrize("shape", [(2, 2, 13, 17), (1, 2, 7, 5, 9), (1, 2, 1, 4, 3)])
@pytest.mark.parametrize("name", ["pconv-unet-tiny", "pconv-unet-small"])
def test_any_grid_and_missing_values_are_ignored(name: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    net = build_model(name, dims=len(shape) - 2).eval()
    x = torch.randn(shape)
    mask = _mask(shape, 0.3, 1)
    with torch.inference_mode():
        y = net(x, mask)
        scrambled = torch.where(mask.bool().expand_as(x), x, torch.randn(shape) * 1e3)
        y2 = net(scrambled, mask)
    assert y.shape == shape and torch.isfinite(y).all()
    assert torch.allclose(y, y2, atol=1e-5)  # values under the mask never enter
    with torch.inference_mode():
        y3 = net(x, torch.ones_like(mask))
    assert not torch.allclose(y, y3)  # ... but the mask itself matters


def test_noise_channel_and_run_network() -> None:
    torch.manual_seed(0)
    net = build_model("pconv-unet-tiny", dims=3, noise_channel=True).eval()
    assert net.encoder[0].pconv.conv.in_channels == 3
    x = torch.randn(2, 2, 6, 5, 7)
    mask = _mask(x.shape, 0.2, 2)
    with torch.inference_mode():
        low = run_network(net, x, torch.full((2, 1), 0.01), mask)
        high = run_network(net, x, torch.full((2, 1), 0.5), mask)
    assert low.shape == x.shape and not torch.allclose(low, high)
    with pytest.raises(ValueError, match="mask"):
        run_network(net, x, torch.full((2, 1), 0.01))


def test_trains_one_step() -> None:
    torch.manual_seed(0)
    net = build_model("pconv-unet-tiny", dims=2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x = torch.randn(4, 2, 12, 12)
    mask = _mask(x.shape, 0.2, 3)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = (net(x * mask, mask) - x).abs().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="equal length"):
        PConvUNet(dims=2, features=(4, 8), kernel_sizes=(3,))
    with pytest.raises(ValueError, match="odd"):
        PConvUNet(dims=2, features=(4,), kernel_sizes=(4,))
    with pytest.raises(ValueError, match="dims"):
        PConvUNet(dims=1)
    with pytest.raises(ValueError, match="stem_layers"):
        PConvUNet(dims=2, features=(4,), kernel_sizes=(3,), stem_layers=-1)
    with pytest.raises(ValueError, match="fill_iterations"):
        PConvUNet(dims=2, features=(4,), kernel_sizes=(3,), fill_iterations=-2)


@pytest.mark.parametrize("options", [{}, {"fill_iterations": 16},
                                     {"fill_iterations": 16, "noise_scaled_residual": True,
                                      "stem_layers": 2}])
def test_onnx_export_with_mask_matches_torch_at_two_3d_shapes(tmp_path, options: dict) -> None:
    """End-to-end export (opset 17, float32) with the mask input, with and without the
    biharmonic fill inside the graph; onnxruntime agrees with PyTorch at two further 3D
    grids and random masks."""
    import onnx
    import onnxruntime as ort

    from pympisr.export.onnx import OPSET, EndToEnd, export_model
    from pympisr.tasks import get_task

    torch.manual_seed(0)
    net = build_model("pconv-unet-tiny", dims=3, noise_channel=True, **options).eval()
    if options:  # a non-zero residual, so that both parts of the graph count
        torch.nn.init.normal_(net.decoder[-1].pconv.conv.weight, std=0.1)
    task = get_task("inpaint", 3)
    result = export_model(net, tmp_path / "pconv.onnx", metadata={"test": True}, task=task,
                          min_size=8)
    model = onnx.load(str(result.path))
    assert [i.name for i in model.graph.input] == ["sm", "sigma", "mask"]
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) <= OPSET
    assert {t.data_type for t in model.graph.initializer} <= {onnx.TensorProto.FLOAT,
                                                              onnx.TensorProto.INT64}
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    wrapper = EndToEnd(net, task=task, min_size=8).eval()
    rng = np.random.default_rng(1)
    for batch, *grid in [(2, 6, 11, 9), (1, 13, 4, 10)]:
        sm = (rng.standard_normal((batch, 2, *grid)) * 1e-3).astype(np.float32)
        sigma = np.full((batch, 1), 0.05, np.float32)
        mask = (rng.random((batch, 1, *grid)) > 0.2).astype(np.float32)
        out = session.run(["restored"], {"sm": sm, "sigma": sigma, "mask": mask})[0]
        with torch.inference_mode():
            ref = wrapper(*(torch.from_numpy(a) for a in (sm, sigma, mask))).numpy()
        assert out.shape == sm.shape
        assert np.abs(out - ref).max() <= 1e-4 * np.abs(ref).max()
