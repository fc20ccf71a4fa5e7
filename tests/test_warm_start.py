"""Warm start from an exported ONNX graph: the copy computes what the export did."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pympisr.errors import InvalidInputError
from pympisr.export import EndToEnd, export_model
from pympisr.models import build_model
from pympisr.models.warm_start import load_onnx_convolutions


def _net_with_statistics() -> torch.nn.Module:
    """dncnn-tiny with non-trivial batch-norm statistics (folded by the exporter)."""
    torch.manual_seed(3)
    net = build_model("dncnn-tiny", dims=2)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_warm_started_network_reproduces_the_export(tmp_path: Path) -> None:
    net = _net_with_statistics()
    result = export_model(net.eval(), tmp_path / "m.onnx", metadata={})
    fresh = build_model("dncnn-tiny", dims=2, noise_channel=True, batch_norm=False)
    load_onnx_convolutions(fresh, result.path)
    x = torch.randn(3, 2, 14, 9) * 1e-3
    with torch.no_grad():
        ref = EndToEnd(net.eval())(x)
        out = EndToEnd(fresh.eval())(x, torch.full((3, 1), 1e-4))
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


def test_mismatched_networks_are_refused(tmp_path: Path) -> None:
    result = export_model(_net_with_statistics(), tmp_path / "m.onnx", metadata={})
    with pytest.raises(InvalidInputError, match="convolutions"):
        load_onnx_convolutions(build_model("dncnn-small", dims=2, batch_norm=False), result.path)
    with pytest.raises(InvalidInputError, match="bias"):
        load_onnx_convolutions(build_model("dncnn-tiny", dims=2), result.path)
