"""Write the tiny ONNX contract fixtures of julia/MPISR's tests (run from the repository
root: ``.venv/bin/python julia/MPISR/test/data/make_fixtures.py``).

They are not restoration networks: each one exercises one part of the pympisr ONNX
contract (DESIGN section 8) with a closed-form output, so the Julia tests can check
what MPISR feeds the graph and how it reads the result before trained models with these
inputs ship:

* ``fixture_denoise_sigma_2d``: inputs ``sm`` and ``sigma`` (B, 1); ``restored = sm +
  2 sigma`` (both parts), task denoise, grid_rule same.
* ``fixture_inpaint_mask_2d``: inputs ``sm`` and ``mask`` (B, 1, H, W); ``restored =
  sm * mask``, task inpaint, grid_rule same.
* ``fixture_upsample_scale_3d``: ``restored`` = nearest-neighbour upsampling by 2 per
  spatial axis, task upsample, grid_rule scale, scale_factor 2.
* ``fixture_accelerate_stride_2d``: ``restored`` has the input at every 3rd position
  and zeros between (output 3 (n - 1) + 1 per axis), task accelerate, grid_rule stride,
  scale_factor 3.

ONNX IR version 8, opset 17 (what pympisr's exporter writes). Golden vectors
(``<name>.golden_{input,output,sigma,mask}.npy``, float32, C order) and ``manifest.json``
(the format of onnx_models/manifest.json) are written beside them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

HERE = Path(__file__).resolve().parent
OPSET = 17
IR_VERSION = 8
JULIA_LAYOUT = ("the C-order (B, 2, [D,] H, W) buffer read column-major is a Julia array "
                "A of size (Nx, Ny, [Nz,] 2, B) with A[x, y, (z,) c, b], c = 1 real part, "
                "c = 2 imaginary part")


def tensor(name: str, dims: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def spatial(dims: int) -> list[str]:
    return ["D", "H", "W"][3 - dims:]


def save(name: str, nodes, inputs, initializers, dims: int, metadata: dict) -> Path:
    out_dims = ["B", 2] + [f"{a}_out" for a in spatial(dims)]
    graph = helper.make_graph(nodes, name, inputs, [tensor("restored", out_dims)],
                              initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="pympisr-julia-fixtures")
    model.ir_version = IR_VERSION
    props = {"dims": str(dims), "julia_layout": JULIA_LAYOUT, "opset": str(OPSET),
             "axis_order": "sm/restored float32 (B, 2, [D,] H, W), C order, x fastest",
             "architecture": "fixture", **metadata}
    for key, value in sorted(props.items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    path = HERE / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def main() -> None:
    rng = np.random.default_rng(16)
    entries = []

    def golden(name: str, path: Path, feeds: dict, task: str, dims: int, factor: int,
               rule: str) -> None:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (restored,) = session.run(["restored"], feeds)
        files = {"input": f"{name}.golden_input.npy", "output": f"{name}.golden_output.npy"}
        np.save(HERE / files["input"], feeds["sm"])
        np.save(HERE / files["output"], restored.astype(np.float32))
        for key in ("sigma", "mask"):
            if key in feeds:
                files[key] = f"{name}.golden_{key}.npy"
                np.save(HERE / files[key], feeds[key])
        entries.append({"name": name, "file": path.name, "task": task, "dims": dims,
                        "scale_factor": factor, "grid_rule": rule, "golden": files})

    def sm(batch: int, shape: tuple) -> np.ndarray:
        return (rng.standard_normal((batch, 2, *shape)) * 1e-3).astype(np.float32)

    # sigma: restored = sm + 2 * sigma
    name = "fixture_denoise_sigma_2d"
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [2, 3])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    nodes = [helper.make_node("Unsqueeze", ["sigma", "axes"], ["s4"]),
             helper.make_node("Mul", ["s4", "two"], ["s2"]),
             helper.make_node("Add", ["sm", "s2"], ["restored"])]
    path = save(name, nodes, [tensor("sm", ["B", 2, "H", "W"]), tensor("sigma", ["B", 1])],
                [axes, two], 2, {"task": "denoise", "scale_factor": "1", "grid_rule": "same",
                                 "noise_input": "sigma"})
    x = sm(3, (7, 9))
    sigma = (np.array([[1e-4], [2e-4], [5e-5]])).astype(np.float32)
    golden(name, path, {"sm": x, "sigma": sigma}, "denoise", 2, 1, "same")

    # mask: restored = sm * mask
    name = "fixture_inpaint_mask_2d"
    nodes = [helper.make_node("Mul", ["sm", "mask"], ["restored"])]
    path = save(name, nodes, [tensor("sm", ["B", 2, "H", "W"]),
                              tensor("mask", ["B", 1, "H", "W"])],
                [], 2, {"task": "inpaint", "scale_factor": "1", "grid_rule": "same"})
    x = sm(2, (6, 8))
    mask = (rng.random((2, 1, 6, 8)) > 0.25).astype(np.float32)
    golden(name, path, {"sm": x, "mask": mask}, "inpaint", 2, 1, "same")

    # scale: nearest-neighbour upsampling by 2 in D, H, W
    name = "fixture_upsample_scale_3d"
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [5], [1, 1, 2, 2, 2])
    nodes = [helper.make_node("Resize", ["sm", "", "scales"], ["restored"], mode="nearest",
                              coordinate_transformation_mode="asymmetric",
                              nearest_mode="floor")]
    path = save(name, nodes, [tensor("sm", ["B", 2, "D", "H", "W"])], [scales], 3,
                {"task": "upsample", "scale_factor": "2", "grid_rule": "scale"})
    x = sm(2, (3, 4, 5))
    golden(name, path, {"sm": x}, "upsample", 3, 2, "scale")

    # stride: the input at every 3rd position of the output, zeros between
    name = "fixture_accelerate_stride_2d"
    weight = helper.make_tensor("weight", TensorProto.FLOAT, [2, 1, 1, 1], [1.0, 1.0])
    nodes = [helper.make_node("ConvTranspose", ["sm", "weight"], ["restored"], group=2,
                              strides=[3, 3], kernel_shape=[1, 1])]
    path = save(name, nodes, [tensor("sm", ["B", 2, "H", "W"])], [weight], 2,
                {"task": "accelerate", "scale_factor": "3", "grid_rule": "stride"})
    x = sm(2, (4, 5))
    golden(name, path, {"sm": x}, "accelerate", 2, 3, "stride")

    manifest = {"format": "pympisr-model-manifest", "version": 1, "models": entries}
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
