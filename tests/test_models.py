"""Network registry and DnCNN (2D and 3D from one code path)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pympisr.models import DnCNN, available_models, build_model, model_spec, register


def test_registry_lists_dncnn_sizes() -> None:
    names = available_models()
    assert {"dncnn", "dncnn-small", "dncnn-tiny"} <= set(names)
    assert names == sorted(names)
    assert model_spec("dncnn").architecture == "DnCNN"


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="dncnn-small"):
        build_model("no-such-net")


def test_register_refuses_a_taken_name() -> None:
    with pytest.raises(ValueError, match="already registered"):
        @register("dncnn")
        class Other(nn.Module):
            pass


def test_options_override_registered_defaults() -> None:
    net = build_model("dncnn-small", dims=2, depth=5)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5
    assert convs[0].out_channels == model_spec("dncnn-small").defaults["features"]


@pytest.mark.parametrize("dims", [2, 3])
def test_paper_size_dncnn(dims: int) -> None:
    net = build_model("dncnn", dims=dims)
    conv_cls = nn.Conv2d if dims == 2 else nn.Conv3d
    convs = [m for m in net.modules() if isinstance(m, conv_cls)]
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(convs) == 17 and len(norms) == 15
    assert all(c.out_channels == 64 for c in convs[:-1]) and convs[-1].out_channels == 2


@pytest.mark.parametrize("name", ["dncnn-tiny", "dncnn-small", "dncnn"])
@pytest.mark.parametrize("shape", [(2, 2, 13, 17), (1, 2, 5, 7, 6)])
def test_output_shape_equals_input_shape(name: str, shape: tuple[int, ...]) -> None:
    net = build_model(name, dims=len(shape) - 2).eval()
    with torch.inference_mode():
        y = net(torch.randn(shape))
    assert y.shape == shape and torch.isfinite(y).all()


@pytest.mark.parametrize("dims", [2, 3])
def test_dncnn_is_residual(dims: int) -> None:
    """With the last convolution zeroed the network predicts zero noise: output = input."""
    net = DnCNN(dims=dims, depth=3, features=4).eval()
    last = net.body[-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    x = torch.randn(2, 2, *([6] * dims))
    with torch.inference_mode():
        assert torch.equal(net(x), x)


def test_dims_mismatch_fails() -> None:
    net = build_model("dncnn-tiny", dims=3)
    with pytest.raises(RuntimeError):
        net(torch.randn(1, 2, 8, 8))
    with pytest.raises(ValueError, match="dims"):
        build_model("dncnn-tiny", dims=1)
