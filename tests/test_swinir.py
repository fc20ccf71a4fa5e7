"""SwinIR (2D): paper size, shifted-window mask, locality of window attention, padding
to the window inside the network, global residual, noise channel, end-to-end export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pympisr.errors import InvalidInputError
from pympisr.export import EndToEnd, export_model
from pympisr.export.onnx import check_onnx_against_torch
from pympisr.models import build_model
from pympisr.models.conditioning import run_network
from pympisr.models.swinir import (MASK_VALUE, SwinIR, SwinLayer, shifted_window_mask,
                                   window_partition, window_reverse)


def expected_parameters(first: int, out: int, embed: int, depths: list[int], heads: int,
                        window: int, ratio: float) -> int:
    """SwinIR's parameter count from its layer list (Liang et al. 2021, Fig. 2)."""
    hidden = int(embed * ratio)
    conv3 = 9 * embed * embed + embed
    layer = (2 * 2 * embed                              # two layer norms
             + 3 * embed * embed + 3 * embed           # qkv
             + embed * embed + embed                   # attention projection
             + (2 * window - 1) ** 2 * heads            # relative position bias table
             + embed * hidden + hidden + hidden * embed + embed)  # MLP
    stages = sum(depth * layer + conv3 for depth in depths)
    return (9 * first * embed + embed + 2 * embed + stages + 2 * embed + conv3
            + 9 * embed * out + out)


def test_paper_size() -> None:
    """Embed 180, 6 stages of depth 6, 6 heads, window 8, MLP ratio 2: 11.5 M parameters
    for two channels (the paper's 11.8 M is its super-resolution variant with an
    upsampler)."""
    net = build_model("swinir", dims=2)
    assert len(net.stages) == 6 and all(len(s.layers) == 6 for s in net.stages)
    layer = net.stages[0].layers[1]
    assert layer.attn.num_heads == 6 and layer.window_size == 8 and layer.shift == 4
    assert net.stages[0].layers[0].shift == 0
    assert layer.mlp[0].out_features == 360
    count = sum(p.numel() for p in net.parameters())
    assert count == expected_parameters(2, 2, 180, [6] * 6, 6, 8, 2.0)
    assert 11.4e6 < count < 11.6e6


def test_refuses_3d_and_bad_options() -> None:
    with pytest.raises(ValueError, match="SwinIR is a 2D network.*got 3"):
        build_model("swinir-small", dims=3)
    with pytest.raises(InvalidInputError, match="embed_dim 18 is not divisible by num_heads 4"):
        build_model("swinir-tiny", embed_dim=18, num_heads=4)
    with pytest.raises(InvalidInputError, match="window_size"):
        build_model("swinir-tiny", window_size=0)
    with pytest.raises(InvalidInputError, match="depths"):
        build_model("swinir-tiny", depths=[])


def reference_mask(height: int, width: int, window: int, shift: int) -> torch.Tensor:
    """The shifted-window mask built as in Swin's reference: label three slices per axis
    of the grid, partition into windows, compare labels."""
    labels = torch.zeros(1, height, width, 1)
    count = 0
    for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            labels[:, hs, ws, :] = count
            count += 1
    windows = window_partition(labels, window).squeeze(-1)
    return (windows[:, :, None] != windows[:, None, :]).float() * MASK_VALUE


@pytest.mark.parametrize(("height", "width", "window"), [(8, 8, 4), (12, 16, 4),
                                                          (16, 24, 8), (8, 8, 8)])
def test_shifted_window_mask_matches_reference(height: int, width: int, window: int) -> None:
    mask = shifted_window_mask(height, width, window, window // 2)
    assert mask.shape == (height * width // window ** 2, window ** 2, window ** 2)
    assert mask.dtype == torch.float32
    torch.testing.assert_close(mask, reference_mask(height, width, window, window // 2))
    assert (mask[-1] != 0).any()  # the bottom-right window holds wrapped pixels
    if height > window and width > window:
        assert (mask[0] == 0).all()  # the top-left one does not


def test_window_partition_round_trip() -> None:
    x = torch.randn(2, 8, 12, 3)
    windows = window_partition(x, 4)
    assert windows.shape == (2 * 6, 16, 3)
    torch.testing.assert_close(windows[1].reshape(4, 4, 3), x[0, 0:4, 4:8])
    torch.testing.assert_close(window_reverse(windows, 4, 8, 12), x)


def perturbation_reach(layer: SwinLayer, mask: torch.Tensor | None) -> torch.Tensor:
    """Which output pixels of an 8 x 8 grid change when input pixel (0, 0) changes."""
    torch.manual_seed(0)
    x = torch.randn(1, 8, 8, 8)
    bumped = x.clone()
    bumped[0, 0, 0, 0] += 1.0  # one channel (layer norm removes a uniform shift)
    with torch.inference_mode():
        change = (layer(bumped, mask) - layer(x, mask)).abs().sum(-1)[0]
    return change > 1e-6


def test_window_attention_is_local() -> None:
    """A regular layer mixes pixels inside the 4 x 4 window only; a shifted layer mixes
    the shifted window, but its mask keeps pixels that the cyclic roll brought from the
    opposite border apart (without the mask they would mix)."""
    torch.manual_seed(0)
    regular = SwinLayer(8, 4, 2, 2.0, shifted=False).eval()
    reach = perturbation_reach(regular, None)
    assert reach[:4, :4].all() and not reach[4:].any() and not reach[:, 4:].any()

    shifted = SwinLayer(8, 4, 2, 2.0, shifted=True).eval()
    reach = perturbation_reach(shifted, shifted_window_mask(8, 8, 4, 2))
    # rolled by -2, pixel (0, 0) shares a window with rows/cols {6, 7, 0, 1}, but only
    # rows/cols {0, 1} belong to its region
    assert reach[:2, :2].all()
    assert reach.sum() == 4
    unmasked = perturbation_reach(shifted, None)
    assert unmasked[7, 7] and unmasked[6, 0]


def test_pads_with_zeros_to_the_window_and_crops() -> None:
    """Output on a 13 x 17 grid = output on the grid zero-padded to 16 x 20, cropped."""
    net = build_model("swinir-tiny").eval()
    x = torch.randn(2, 2, 13, 17)
    padded = torch.nn.functional.pad(x, (0, 3, 0, 3))
    with torch.inference_mode():
        y = net(x)
        y_padded = net(padded)
    assert y.shape == x.shape and y_padded.shape == padded.shape
    torch.testing.assert_close(y, y_padded[..., :13, :17], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 2, 3, 2), (2, 2, 9, 23), (1, 2, 16, 16)])
def test_any_grid_with_window_8(shape: tuple[int, ...]) -> None:
    net = SwinIR(embed_dim=8, depths=[2], num_heads=2, window_size=8).eval()
    with torch.inference_mode():
        y = net(torch.randn(shape))
    assert y.shape == shape and torch.isfinite(y).all()


@pytest.mark.parametrize("noise", [False, True])
def test_global_residual(noise: bool) -> None:
    """With the reconstruction convolution zeroed the output is the input's real and
    imaginary channels (the network predicts a correction)."""
    net = build_model("swinir-tiny", noise_channel=noise).eval()
    assert net.conv_first.in_channels == (3 if noise else 2)
    assert net.conv_last.out_channels == 2
    nn.init.zeros_(net.conv_last.weight)
    nn.init.zeros_(net.conv_last.bias)
    x = torch.randn(2, 2, 6, 10)
    with torch.inference_mode():
        y = run_network(net, x, torch.full((2, 1), 0.1))
    torch.testing.assert_close(y, x)


def test_noise_channel_changes_the_output() -> None:
    net = build_model("swinir-tiny", noise_channel=True).eval()
    x = torch.randn(2, 2, 9, 7)
    with torch.inference_mode():
        low = run_network(net, x, torch.full((2, 1), 0.01))
        high = run_network(net, x, torch.full((2, 1), 0.5))
    assert low.shape == x.shape
    assert not torch.allclose(low, high)


def test_end_to_end_export_at_other_grids(tmp_path: Path) -> None:
    """One exported end-to-end graph (normalisation, network, noise input) matches
    PyTorch at grids that are neither the export grid (17 x 37) nor window multiples;
    ``export_model`` itself checks two more grids (30 x 12, 41 x 36)."""
    net = SwinIR(embed_dim=8, depths=[2], num_heads=2, window_size=8, noise_channel=True)
    result = export_model(net, tmp_path / "swinir.onnx", metadata={"model_name": "test"})
    assert result.parity_error <= 1e-4
    assert result.metadata["size_multiple"] == "1"
    assert np.load(result.golden_output).shape == (3, 2, 17, 37)
    wrapper = EndToEnd(net.eval()).eval()
    rng = np.random.default_rng(5)
    grids = [(2, 2, 9, 23), (1, 2, 44, 44)]
    inputs = [(rng.standard_normal(g) * 1e-3).astype(np.float32) for g in grids]
    assert check_onnx_against_torch(result.path, wrapper, inputs) <= 1e-4
