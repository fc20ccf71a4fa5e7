"""BiharmonicFill: the biharmonic inpainting baseline as a network layer (CG steps)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pympisr.baselines.inpainting import inpaint_biharmonic
from pympisr.degradations import InpaintingMask
from pympisr.models import build_model
from pympisr.models.biharmonic_fill import BiharmonicFill


def _smooth_field(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A smooth complex field (a few low spatial frequencies), like an SM component."""
    rng = np.random.default_rng(seed)
    axes = np.meshgrid(*(np.linspace(0, 1, n) for n in shape), indexing="ij")
    field = np.zeros(shape, np.complex128)
    for _ in range(4):
        k = rng.uniform(0.5, 3.0, len(shape))
        phase = sum(ki * a for ki, a in zip(k, axes))
        field += rng.standard_normal(2) @ [1, 1j] * np.cos(np.pi * phase + rng.uniform(0, 6))
    return field


def _to_channels(z: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack([z.real, z.imag]).astype(np.float32))[None]


@pytest.mark.parametrize("shape", [(23, 19), (13, 11, 12)])
def test_matches_scikit_image_biharmonic_inpainting(shape: tuple[int, ...]) -> None:
    """On a paper-style mask (a contiguous block in robot order) the layer's fill agrees
    with scikit-image's biharmonic inpainting far beyond the gap to a harmonic fill."""
    z = _smooth_field(shape, 0)
    mask = InpaintingMask(0.1, len(shape), 1).sample(shape, np.random.default_rng(3))
    assert 0 < (~mask).sum() < mask.size
    reference = inpaint_biharmonic(z, mask, dims=len(shape))
    layer = BiharmonicFill(len(shape), iterations=40)
    out = layer(_to_channels(z * mask), torch.from_numpy(mask)[None, None].float())[0].numpy()
    filled = out[0] + 1j * out[1]
    missing = ~mask
    error = np.abs(filled - reference)[missing].max()
    gap_to_truth = np.abs(reference - z)[missing].max()
    assert error <= 0.05 * gap_to_truth + 1e-5
    assert np.allclose(filled[mask], z[mask], atol=1e-6)  # measured points are kept


def test_more_steps_converge_and_full_masks_pass_through() -> None:
    shape = (15, 14, 9)
    z = _smooth_field(shape, 1)
    mask = InpaintingMask(0.1, 3, 1).sample(shape, np.random.default_rng(5))
    x, m = _to_channels(z), torch.from_numpy(mask)[None, None].float()
    errors = []
    for steps in (2, 8, 40):
        out = BiharmonicFill(3, steps)(x, m)[0].numpy()
        errors.append(np.abs(out[0] + 1j * out[1] - z)[~mask].mean())
    assert errors[2] < errors[1] < errors[0]
    full = torch.ones_like(m)
    assert torch.equal(BiharmonicFill(3, 4)(x, full), x)  # nothing missing: unchanged


def test_runs_in_float32_under_autocast_and_rejects_bad_options() -> None:
    x = _to_channels(_smooth_field((12, 12), 2))
    mask = torch.ones(1, 1, 12, 12)
    mask[..., 5:7, :] = 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = BiharmonicFill(2, 16)(x, mask)
    assert out.dtype == torch.float32
    with pytest.raises(ValueError, match="iterations"):
        BiharmonicFill(2, 0)
    with pytest.raises(ValueError, match="dims"):
        BiharmonicFill(4)


def test_pconv_unet_with_fill_starts_as_the_biharmonic_fill() -> None:
    """With ``fill_iterations`` the U-Net learns a residual on the fill, and its last
    layer starts at zero, so the untrained network is exactly the classical baseline;
    values under the mask still never enter."""
    torch.manual_seed(0)
    net = build_model("pconv-unet-tiny", dims=3, fill_iterations=24).eval()
    shape = (1, 2, 9, 8, 10)
    x = torch.randn(shape)
    mask = (torch.rand(1, 1, *shape[2:]) > 0.15).float()
    with torch.inference_mode():
        y = net(x, mask)
        scrambled = torch.where(mask.bool().expand_as(x), x, torch.randn(shape) * 1e3)
        assert torch.allclose(y, net(scrambled, mask), atol=1e-5)
        assert torch.allclose(y, BiharmonicFill(3, 24)(x, mask), atol=1e-6)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    loss = (net(x, mask) - 0.5 * x).abs().mean()
    loss.backward()
    assert net.decoder[-1].pconv.conv.weight.grad.abs().sum() > 0  # the residual can learn
    opt.step()
    with torch.inference_mode():
        assert not torch.allclose(net.eval()(x, mask), y)


def test_noise_scaled_residual_is_the_fill_at_zero_noise() -> None:
    """``noise_scaled_residual``: the U-Net's correction is multiplied by the noise
    channel, so a trained (non-zero) residual leaves the biharmonic fill unchanged at
    zero noise and acts at a positive noise level; it needs the fill and the channel."""
    torch.manual_seed(0)
    net = build_model("pconv-unet-tiny", dims=3, noise_channel=True, fill_iterations=8,
                      noise_scaled_residual=True).eval()
    torch.nn.init.normal_(net.decoder[-1].pconv.conv.weight)
    x = torch.randn(1, 3, 7, 6, 8)
    mask = (torch.rand(1, 1, 7, 6, 8) > 0.2).float()
    fill = BiharmonicFill(3, 8)(x[:, :2], mask)
    with torch.inference_mode():
        x[:, 2] = 0.0
        assert torch.allclose(net(x, mask), fill, atol=1e-6)
        x[:, 2] = 0.1
        assert not torch.allclose(net(x, mask), fill, atol=1e-3)
    with pytest.raises(ValueError, match="noise_scaled_residual"):
        build_model("pconv-unet-tiny", dims=3, fill_iterations=8, noise_scaled_residual=True)
    with pytest.raises(ValueError, match="noise_scaled_residual"):
        build_model("pconv-unet-tiny", dims=3, noise_channel=True, noise_scaled_residual=True)



def test_full_resolution_stem_keeps_the_mask_semantics() -> None:
    """``stem_layers`` adds full-resolution partial convolutions before the encoder;
    values under the mask still never enter and zero noise still gives the fill."""
    torch.manual_seed(0)
    net = build_model("pconv-unet-tiny", dims=3, noise_channel=True, fill_iterations=12,
                      noise_scaled_residual=True, stem_layers=2).eval()
    assert len(net.stem) == 2 and net.encoder[0].pconv.conv.in_channels == 4
    torch.nn.init.normal_(net.decoder[-1].pconv.conv.weight, std=0.3)
    x = torch.randn(2, 3, 9, 7, 8)
    x[:, 2] = 0.2
    mask = (torch.rand(2, 1, 9, 7, 8) > 0.2).float()
    with torch.inference_mode():
        out = net(x, mask)
        scrambled = x.clone()
        scrambled[:, :2] = torch.where(mask.bool().expand(-1, 2, -1, -1, -1), x[:, :2],
                                       torch.randn(2, 2, 9, 7, 8) * 1e3)
        assert torch.allclose(out, net(scrambled, mask), atol=1e-4)
        assert not torch.allclose(out, BiharmonicFill(3, 12)(x[:, :2], mask), atol=1e-3)
        x[:, 2] = 0.0
        assert torch.allclose(net(x, mask), BiharmonicFill(3, 12)(x[:, :2], mask), atol=1e-6)
