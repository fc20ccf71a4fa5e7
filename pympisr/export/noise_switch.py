"""Two exported networks of one task in one ONNX graph, chosen per component by noise level.

A network trained with the noise-level-weighted loss (``[loss] noise_floor``,
:func:`pympisr.training.losses.noise_level_weights`) is the most accurate at low noise
and loses 1-3 dB under strong noise; the same network trained with the plain L1 is the
reverse (README, "Noise-level-weighted loss"). :func:`compose_noise_switch` puts two
end-to-end graphs (:mod:`pympisr.export.onnx`) side by side in one graph with the same
inputs ``sm``, ``sigma`` and output ``restored``, and keeps per component ``b``

    restored_b = low(sm, sigma)_b    if sigma_b / max_x |sm_b(x)| <= level
                 high(sm, sigma)_b   otherwise,

the relative noise level being the one the networks themselves see (each part divides
``sigma`` by the component's maximum magnitude, :class:`pympisr.export.onnx.EndToEnd`).
Each part keeps its own normalisation, padding and cropping, so on its side of the level
the switch computes exactly what the part computes alone (checked at export, below). Both
parts run on every component, so a switch costs their sum. It works on the shipped ONNX
files themselves, with no training checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_output
from ..errors import InvalidInputError
from ..model_zoo import decoded_metadata
from .onnx import (ExportResult, component_peaks, finish_export, golden_extra_inputs,
                   golden_input, onnx_session, read_metadata, refuse_existing,
                   relative_difference, set_metadata)

__all__ = ["SWITCH_INPUTS", "compose_noise_switch"]

SWITCH_INPUTS = ["sm", "sigma"]
# metadata that must agree between the parts (the graph's contract)
_SHARED_KEYS = ("task", "grid_rule", "inputs", "dims", "scale_factor", "opset", "axis_order")
# on its side of the level a component is the part's own output, up to the runtime's
# rounding: max |switch - part| / max |part|
_PARITY_RTOL = 1e-6


def _check_parts(low: Path, high: Path, meta: dict[str, dict[str, Any]]) -> None:
    for label, path in (("low", low), ("high", high)):
        if meta[label].get("inputs") != SWITCH_INPUTS:
            raise InvalidInputError(
                f"{path}: a noise switch needs networks with the inputs {SWITCH_INPUTS}; "
                f"this one takes {meta[label].get('inputs')}")
    for key in _SHARED_KEYS:
        if meta["low"].get(key) != meta["high"].get(key):
            raise InvalidInputError(f"{low} and {high}: the networks differ in {key} "
                                    f"({meta['low'].get(key)!r} and {meta['high'].get(key)!r})")


def _prefixed_graph(model: Any, prefix: str) -> tuple[list[Any], list[Any], str]:
    """The nodes and initializers of ``model`` with every name except the graph inputs
    prefixed, and the (prefixed) name of its output."""
    keep = set(SWITCH_INPUTS) | {""}

    def rename(name: str) -> str:
        return name if name in keep else prefix + name

    nodes = []
    for node in model.graph.node:
        copy = type(node)()
        copy.CopyFrom(node)
        copy.name = prefix + node.name
        copy.input[:] = [rename(n) for n in node.input]
        copy.output[:] = [rename(n) for n in node.output]
        nodes.append(copy)
    initializers = []
    for tensor in model.graph.initializer:
        copy = type(tensor)()
        copy.CopyFrom(tensor)
        copy.name = rename(tensor.name)
        initializers.append(copy)
    return nodes, initializers, rename(model.graph.output[0].name)


def _switch_nodes(dims: int, level: float, low_out: str, high_out: str) -> tuple[list, list]:
    """Nodes computing ``Where(sigma / max|sm| <= level, low_out, high_out)``."""
    from onnx import helper, numpy_helper

    p = "switch/"
    consts = {
        "one": np.array([1], np.int64), "two": np.array([2], np.int64),
        "zero": np.array([0], np.int64),
        "tiny": np.array(1e-30, np.float32), "level": np.array(level, np.float32),
        "shape": np.array([-1, 1] + [1] * dims, np.int64),
    }
    inits = [numpy_helper.from_array(v, p + k) for k, v in consts.items()]
    spatial = list(range(2, 2 + dims))
    nodes = [
        helper.make_node("Slice", ["sm", p + "zero", p + "one", p + "one"], [p + "re"]),
        helper.make_node("Slice", ["sm", p + "one", p + "two", p + "one"], [p + "im"]),
        helper.make_node("Mul", [p + "re", p + "re"], [p + "re2"]),
        helper.make_node("Mul", [p + "im", p + "im"], [p + "im2"]),
        helper.make_node("Add", [p + "re2", p + "im2"], [p + "mag2"]),
        helper.make_node("ReduceMax", [p + "mag2"], [p + "peak2"], axes=spatial, keepdims=0),
        helper.make_node("Sqrt", [p + "peak2"], [p + "peak"]),
        helper.make_node("Max", [p + "peak", p + "tiny"], [p + "safe_peak"]),
        helper.make_node("Div", ["sigma", p + "safe_peak"], [p + "relative"]),
        helper.make_node("LessOrEqual", [p + "relative", p + "level"], [p + "is_low"]),
        helper.make_node("Reshape", [p + "is_low", p + "shape"], [p + "choose_low"]),
        helper.make_node("Where", [p + "choose_low", low_out, high_out], ["restored"]),
    ]
    return nodes, inits


def _switch_metadata(meta: dict[str, dict[str, Any]], level: float,
                     files: dict[str, Path], test_metrics: dict[str, Any] | None
                     ) -> dict[str, str]:
    low, high = meta["low"], meta["high"]
    ranges = [m.get("noise_range") or [0.0, 0.0] for m in (low, high)]
    data = high.get("training_data")
    props: dict[str, Any] = {
        **{key: high[key] for key in _SHARED_KEYS if key in high},
        "julia_layout": high.get("julia_layout", ""),
        "noise_input": "sigma",
        "architecture": f"NoiseSwitch({low.get('architecture')}, {high.get('architecture')})",
        "model_name": "noise-switch",
        "model_options": {"level": level, **{
            label: {"file": files[label].name, "architecture": m.get("architecture"),
                    "model_name": m.get("model_name"), "model_options": m.get("model_options"),
                    "noise_range": m.get("noise_range")}
            for label, m in meta.items()}},
        "parameters": sum(int(m.get("parameters") or 0) for m in (low, high)),
        "noise_range": [min(r[0] for r in ranges), max(r[1] for r in ranges)],
        "size_multiple": 1,
        "min_size": max(int(m.get("min_size", 1)) for m in (low, high)),
        "training_data": data if low.get("training_data") == data else
        {label: m.get("training_data") for label, m in meta.items()},
        "training": {label: m.get("training") for label, m in meta.items()},
        "pympisr_version": high.get("pympisr_version"),
        "test_metrics": test_metrics or {},
    }
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in props.items()}


def _check_against_parts(path: Path, low: Path, high: Path, level: float,
                         inputs: list[dict[str, np.ndarray]]) -> float:
    """Check that the switch's output equals ``low``'s output for components at or below
    the level and ``high``'s above it (up to :data:`_PARITY_RTOL`) on every input, else
    raise ExportCheckError; return the worst relative difference."""
    switch, parts = onnx_session(path), [onnx_session(low), onnx_session(high)]
    worst = 0.0
    for feeds in inputs:
        out = switch.run(["restored"], feeds)[0]
        a, b = (s.run(["restored"], feeds)[0] for s in parts)
        sm = feeds["sm"]
        relative = feeds["sigma"][:, 0] / np.maximum(component_peaks(sm), np.float32(1e-30))
        choose_low = relative <= np.float32(level)
        expected = np.where(choose_low.reshape(-1, *[1] * (out.ndim - 1)), a, b)
        worst = max(worst, relative_difference(path, out, expected, "the parts", sm.shape,
                                               _PARITY_RTOL))
    return worst


def compose_noise_switch(low: str | os.PathLike[str], high: str | os.PathLike[str],
                         out: str | os.PathLike[str], *, level: float,
                         test_metrics: dict[str, Any] | None = None,
                         overwrite: bool = False) -> ExportResult:
    """Write the noise switch of the exported networks ``low`` and ``high`` to ``out``
    (module docstring), with golden files and a sha256 sidecar like any export.

    ``level``: relative noise level (noise std of each part over the component's
    maximum magnitude) at and below which ``low`` is used; > 0. Both files must be
    end-to-end exports of the same task, dims and scale factor with the inputs ``sm``
    and ``sigma``. The metadata name both parts (``model_options``: the level and each
    part's file, architecture and options; ``training``: each part's record). The
    result's ``parity_error`` is the worst relative difference from the parts.

    Raises
    ------
    InvalidInputError
        The parts do not fit together, or ``level`` is not a positive finite number.
    ExportCheckError
        The composed graph does not reproduce its parts (checked at the golden input
        and at two other grid shapes, with components on both sides of the level).
    """
    import onnx
    from onnx import helper

    low, high, out = Path(low), Path(high), Path(out)
    if not (np.isfinite(level) and level > 0):
        raise InvalidInputError(f"noise switch level must be a positive relative noise "
                                f"level, got {level}")
    meta = {"low": decoded_metadata(read_metadata(low)),
            "high": decoded_metadata(read_metadata(high))}
    _check_parts(low, high, meta)
    refuse_existing(out, SWITCH_INPUTS, overwrite)
    models = {"low": onnx.load(str(low)), "high": onnx.load(str(high))}
    nodes, inits, outputs = [], [], {}
    for label, model in models.items():
        part_nodes, part_inits, outputs[label] = _prefixed_graph(model, label + "/")
        nodes += part_nodes
        inits += part_inits
    dims = int(meta["high"]["dims"])
    switch_nodes, switch_inits = _switch_nodes(dims, float(level), outputs["low"],
                                               outputs["high"])
    reference = models["high"].graph
    graph = helper.make_graph(nodes + switch_nodes, "noise_switch",
                              list(reference.input), list(reference.output),
                              initializer=inits + switch_inits)
    model = helper.make_model(graph, opset_imports=list(models["high"].opset_import))
    model.ir_version = models["high"].ir_version
    props = _switch_metadata(meta, float(level), {"low": low, "high": high}, test_metrics)
    set_metadata(model, props)
    onnx.checker.check_model(model)
    x = golden_input(dims)
    feeds = {"sm": x, **golden_extra_inputs(x, SWITCH_INPUTS)}
    rng = np.random.default_rng(0)
    checks = [feeds]
    for shape in ((4, 2, *(13,) * dims), (4, 2, *(5,) * (dims - 1), 21)):
        sm = rng.standard_normal(shape).astype(np.float32)
        sigma = level * np.array([0.25, 0.9, 1.5, 8.0]) * component_peaks(sm)
        checks.append({"sm": sm, "sigma": sigma.reshape(-1, 1).astype(np.float32)})
    with atomic_output(out, overwrite=overwrite) as tmp:
        onnx.save(model, str(tmp))
        error = _check_against_parts(tmp, low, high, float(level), checks)
        golden = onnx_session(tmp).run(["restored"], feeds)[0].astype(np.float32)
    return finish_export(out, feeds, golden, props, error, overwrite)
