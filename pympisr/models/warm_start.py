"""Initialise a network from the convolutions of an exported ONNX graph (warm start).

The ONNX graph of a convolution-only network (e.g. a DnCNN whose batch norms the
exporter folded into the convolutions) holds one weight and bias per ``Conv`` node, in
the order the network applies them. :func:`load_onnx_convolutions` copies them, in that
order, into the network's ``Conv2d``/``Conv3d`` modules (which must be in the same
order). Where the new network's first layer has more input channels (e.g. an added
noise-level channel), the extra input weights are set to zero, so the warm-started
network computes exactly what the exported one did until training changes it.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from ..errors import InvalidInputError

__all__ = ["load_onnx_convolutions"]


def _conv_tensors(path: str | os.PathLike[str]) -> list[tuple[np.ndarray, np.ndarray | None]]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(os.fspath(path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    convs = []
    for node in graph.node:
        if node.op_type == "Conv":
            weight = init.get(node.input[1])
            bias = init.get(node.input[2]) if len(node.input) > 2 else None
            if weight is None:
                raise InvalidInputError(f"{path}: Conv node {node.name!r} has no constant weight")
            convs.append((weight, bias))
    return convs


@torch.no_grad()
def load_onnx_convolutions(net: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Copy the ``Conv`` weights of the ONNX file ``path`` into ``net`` (module doc).

    Raises InvalidInputError when the number or shapes of the convolutions differ
    (other than extra input channels of the first layer).
    """
    modules = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))]
    tensors = _conv_tensors(path)
    if len(modules) != len(tensors):
        raise InvalidInputError(f"{path}: {len(tensors)} convolutions, the network has "
                                f"{len(modules)}")
    for index, (module, (weight, bias)) in enumerate(zip(modules, tensors)):
        target = module.weight
        if (weight.shape[0] != target.shape[0] or weight.shape[2:] != tuple(target.shape[2:])
                or weight.shape[1] > target.shape[1]
                or (weight.shape[1] != target.shape[1] and index != 0)):
            raise InvalidInputError(f"{path}: convolution {index} has weight shape "
                                    f"{weight.shape}, the network's is {tuple(target.shape)}")
        target.zero_()
        target[:, :weight.shape[1]] = torch.from_numpy(np.array(weight))
        if module.bias is not None:
            module.bias.copy_(torch.from_numpy(np.array(bias)) if bias is not None
                              else torch.zeros_like(module.bias))
        elif bias is not None and np.any(bias):
            raise InvalidInputError(f"{path}: convolution {index} has a bias; the network's "
                                    "has none (build it without batch norm)")
    return net
