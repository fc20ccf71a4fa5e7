"""The column-major recipe of julia/MPISR (src/layout.jl) and the golden ONNX vectors.

DESIGN section 8: a network input is a float32 C-order tensor ``(B, 2, [D,] H, W)``
(channel 0 real, channel 1 imaginary; D, H, W = Nz, Ny, Nx). Julia is column-major:

* the tensor's bytes, read column-major, are the Julia array ``raw`` of size
  ``(Nx, Ny, Nz, 2, B)``, which numpy shows as ``tensor.T``;
* ONNXRunTime.jl's high-level API and NPZ.jl present a C-order tensor as the Julia array
  with numpy's shape and indexing, ``permutedims(raw, (5, 4, 3, 2, 1))``.

MPISR builds ``raw`` from complex components ``(Nx, Ny, Nz, B)`` (MPIFiles' voxel order,
x fastest) and reverses its dimensions. The tests below emulate those Julia steps in
numpy with Fortran-order arrays and check they reproduce the tensor pympisr's Python side
feeds onnxruntime, byte for byte; then they check the golden files in onnx_models/.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "onnx_models"
MANIFEST = MODELS / "manifest.json"
MAX_OPSET = 17  # DESIGN section 8: safe for the onnxruntime bundled with ONNXRunTime.jl
# Newest ONNX IR version the Julia side can load: julia/MPISR requires ONNXRunTime.jl 1.3
# (Project.toml compat "1.3"), which bundles onnxruntime 1.20.1 (ONNX 1.16: IR 10, opset
# 21); ONNXRunTime.jl 1.0-1.2 bundled onnxruntime 1.15.1 (IR 9) and are excluded.
# MPISR.MAX_IR_VERSION (julia/MPISR/src/model.jl) is the same number; see
# test_ir_bound_matches_the_julia_package.
MAX_IR_VERSION = 10
JULIA = ROOT / "julia" / "MPISR"
JULIA_FIXTURES = JULIA / "test" / "data"
TASKS = {"denoise", "upsample", "accelerate", "inpaint"}
GRID_RULES = {"same", "scale", "stride"}


# ------------------------------------------------------------------ emulated Julia steps
def julia_onnx_tensor(images: np.ndarray, dims: int) -> np.ndarray:
    """MPISR.onnx_tensor: complex (Nx, Ny, Nz, B) -> array as ONNXRunTime.jl takes it."""
    nx, ny, nz, batch = images.shape
    raw = np.empty((nx, ny, nz, 2, batch), dtype=np.float32, order="F")
    raw[:, :, :, 0, :] = images.real
    raw[:, :, :, 1, :] = images.imag
    if dims == 2:
        assert nz == 1
        raw = raw.reshape(nx, ny, 2, batch, order="F")
    return raw.transpose(tuple(range(raw.ndim - 1, -1, -1)))


def julia_complex_images(tensor: np.ndarray, dims: int) -> np.ndarray:
    """MPISR.complex_images: ONNX-layout array -> complex (Nx, Ny, Nz, B)."""
    raw = tensor.transpose(tuple(range(tensor.ndim - 1, -1, -1)))
    if dims == 2:
        nx, ny, _, batch = raw.shape
        raw = raw.reshape(nx, ny, 1, 2, batch, order="F")
    return raw[:, :, :, 0, :] + 1j * raw[:, :, :, 1, :]


def ortjl_c_buffer(tensor: np.ndarray) -> np.ndarray:
    """The C-order memory ONNXRunTime.jl hands to onnxruntime: vec(reversedims(tensor))."""
    return tensor.transpose(tuple(range(tensor.ndim - 1, -1, -1))).ravel(order="F")


def python_tensor(components: np.ndarray) -> np.ndarray:
    """What pympisr's Python side feeds onnxruntime for components (B, [D,] H, W)."""
    return np.ascontiguousarray(np.stack([components.real, components.imag], axis=1),
                                dtype=np.float32)


# ------------------------------------------------------------------ the recipe
@pytest.fixture()
def system_matrix_data() -> np.ndarray:
    rng = np.random.default_rng(1)
    shape = (2, 3, 4, 5, 6)  # (C, K, Nz, Ny, Nx)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def test_julia_view_of_the_c_order_tensor_is_the_reversed_array(system_matrix_data) -> None:
    comps = system_matrix_data.reshape(-1, 4, 5, 6)  # (B, Nz, Ny, Nx)
    tensor = python_tensor(comps)  # (B, 2, Nz, Ny, Nx)
    raw = tensor.T  # column-major reading of the same bytes: (Nx, Ny, Nz, 2, B)
    assert raw.shape == (6, 5, 4, 2, comps.shape[0])
    assert np.shares_memory(raw, tensor) and raw.flags.f_contiguous
    x, y, z, b = 5, 1, 3, 4
    assert raw[x, y, z, 0, b] == comps[b, z, y, x].real
    assert raw[x, y, z, 1, b] == comps[b, z, y, x].imag


def test_recipe_reproduces_the_python_tensor_byte_for_byte(system_matrix_data) -> None:
    channels, freqs, nz, ny, nx = system_matrix_data.shape
    # MPIReco's system matrix: one column per (frequency, channel), voxels x fastest
    columns = system_matrix_data.reshape(channels * freqs, -1).T  # (voxels, B)
    images = columns.reshape(nx, ny, nz, -1, order="F")  # Julia reshape(S, Nx, Ny, Nz, B)
    c, k = 1, 2
    assert np.array_equal(images[..., c * freqs + k], system_matrix_data[c, k].T)

    tensor = julia_onnx_tensor(images, 3)
    expected = python_tensor(system_matrix_data.reshape(-1, nz, ny, nx))
    assert tensor.shape == expected.shape == (channels * freqs, 2, nz, ny, nx)
    assert np.array_equal(tensor, expected)
    assert np.array_equal(ortjl_c_buffer(tensor), expected.ravel())
    assert np.array_equal(julia_complex_images(tensor, 3), images)


def test_recipe_for_planar_models(system_matrix_data) -> None:
    planar = system_matrix_data[:, :, :1].reshape(-1, 5, 6)  # (B, Ny, Nx)
    images = planar.transpose(2, 1, 0)[:, :, None, :]  # (Nx, Ny, 1, B)
    tensor = julia_onnx_tensor(images, 2)
    expected = python_tensor(planar)
    assert tensor.shape == expected.shape == (planar.shape[0], 2, 5, 6)
    assert np.array_equal(tensor, expected)
    assert np.array_equal(ortjl_c_buffer(tensor), expected.ravel())
    assert np.array_equal(julia_complex_images(tensor, 2), images)


def _read_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of an open .npy file, positioned at the data."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


def npzjl_read(path: Path) -> np.ndarray:
    """NPZ.jl's npzread of a C-order .npy: read column-major into the reversed shape,
    then permutedims(x, ndims:-1:1)."""
    with open(path, "rb") as f:
        shape, fortran_order, dtype = _read_header(f)
        assert not fortran_order
        flat = np.frombuffer(f.read(), dtype=dtype)
    x = flat.reshape(tuple(reversed(shape)), order="F")
    return x.transpose(tuple(range(x.ndim - 1, -1, -1)))


def test_npz_jl_presents_c_order_files_with_numpy_indexing(tmp_path: Path,
                                                           system_matrix_data) -> None:
    tensor = python_tensor(system_matrix_data.reshape(-1, 4, 5, 6))
    path = tmp_path / "golden_input.npy"
    np.save(path, tensor)
    assert np.array_equal(npzjl_read(path), tensor)


# ------------------------------------------------------------------ golden files
def manifest_entries() -> dict[str, dict]:
    """Entries of onnx_models/manifest.json by name (julia/MPISR/test/runtests.jl reads
    the same file)."""
    if not MANIFEST.is_file():
        return {}
    from pympisr.model_zoo import read_manifest

    return {entry["name"]: entry for entry in read_manifest(MODELS)["models"]}


ENTRIES = manifest_entries()
needs_models = pytest.mark.skipif(not ENTRIES, reason="no onnx_models/manifest.json models")


def golden_files(entry: dict) -> dict[str, Path | None]:
    """Golden file paths of an entry; the export's ``<stem>.golden_*.npy`` names unless
    the manifest lists others (the Julia tests use the same rule)."""
    stem = Path(entry["file"]).stem
    listed = entry.get("golden", {})
    files: dict[str, Path | None] = {}
    for kind in ("input", "output", "sigma", "mask"):
        default = MODELS / f"{stem}.golden_{kind}.npy"
        files[kind] = MODELS / listed[kind] if kind in listed else default
    for kind in ("sigma", "mask"):
        if not files[kind].is_file():
            files[kind] = None
    return files


def _header(path: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    with open(path, "rb") as f:
        return _read_header(f)


@needs_models
@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_golden_pair_has_the_documented_layout(name: str) -> None:
    import onnx

    entry = ENTRIES[name]
    files = golden_files(entry)
    assert (MODELS / entry["file"]).is_file()
    assert files["input"].is_file() and files["output"].is_file()
    model = onnx.load(MODELS / entry["file"], load_external_data=False)
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    expected_inputs = (["sm"] + (["sigma"] if files["sigma"] else [])
                       + (["mask"] if files["mask"] else []))
    assert inputs == expected_inputs and outputs == ["restored"]
    metadata = {p.key: p.value for p in model.metadata_props}
    dims = int(metadata["dims"])
    assert dims == entry["dims"] and metadata["task"] == entry["task"]
    assert "sm/restored" in metadata.get("axis_order", "")
    opsets = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    assert opsets and max(opsets) <= MAX_OPSET
    assert model.ir_version <= MAX_IR_VERSION

    in_shape, in_fortran, in_dtype = _header(files["input"])
    out_shape, out_fortran, out_dtype = _header(files["output"])
    assert in_dtype == out_dtype == np.float32 and not in_fortran and not out_fortran
    assert len(in_shape) == len(out_shape) == dims + 2
    assert in_shape[1] == out_shape[1] == 2 and in_shape[0] == out_shape[0]
    if float(metadata.get("scale_factor", "1")) == 1:
        assert out_shape == in_shape
    if files["mask"] is not None:
        mask_shape, mask_fortran, mask_dtype = _header(files["mask"])
        assert mask_dtype == np.float32 and not mask_fortran
        assert mask_shape == (in_shape[0], 1, *in_shape[2:])
        assert set(np.unique(np.load(files["mask"]))) <= {0.0, 1.0}
    if files["sigma"] is not None:
        sigma_shape, sigma_fortran, sigma_dtype = _header(files["sigma"])
        assert sigma_dtype == np.float32 and not sigma_fortran
        assert sigma_shape == (in_shape[0], 1)
        assert np.all(np.load(files["sigma"]) > 0)


@needs_models
@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_golden_output_is_what_onnxruntime_computes(name: str) -> None:
    import onnxruntime as ort

    entry = ENTRIES[name]
    files = golden_files(entry)
    session = ort.InferenceSession(str(MODELS / entry["file"]),
                                   providers=["CPUExecutionProvider"])
    feeds = {"sm": np.load(files["input"])}
    for kind in ("sigma", "mask"):
        if files[kind] is not None:
            feeds[kind] = np.load(files[kind])
    (restored,) = session.run(["restored"], feeds)
    expected = np.load(files["output"])
    assert restored.shape == expected.shape
    np.testing.assert_allclose(restored, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # the Julia side reads the same numbers: NPZ.jl's view equals numpy's
    assert np.array_equal(npzjl_read(files["input"]), feeds["sm"])
    assert np.array_equal(npzjl_read(files["output"]), expected)


# ------------------------------------------------------------------ IR version, metadata
def test_ir_bound_matches_the_julia_package() -> None:
    """The IR bound above, MPISR's MAX_IR_VERSION and its ONNXRunTime compat agree."""
    import re

    project = (JULIA / "Project.toml").read_text(encoding="utf-8")
    assert re.search(r'^ONNXRunTime = "1\.3"$', project, re.M), \
        "julia/MPISR must require ONNXRunTime 1.3 (onnxruntime 1.20.1) for IR version 10"
    model_jl = (JULIA / "src" / "model.jl").read_text(encoding="utf-8")
    match = re.search(r"^const MAX_IR_VERSION = (\d+)$", model_jl, re.M)
    assert match and int(match.group(1)) == MAX_IR_VERSION


def _fixture_entries() -> dict[str, tuple[Path, dict]]:
    path = JULIA_FIXTURES / "manifest.json"
    if not path.is_file():
        return {}
    return {e["name"]: (JULIA_FIXTURES, e)
            for e in json.loads(path.read_text(encoding="utf-8"))["models"]}


ALL_MODELS = {**{name: (MODELS, e) for name, e in ENTRIES.items()}, **_fixture_entries()}


def _output_size(rule: str, factor: int, n: int) -> int:
    if rule == "same":
        return n
    if rule == "scale":
        return n * factor
    return factor * (n - 1) + 1


@pytest.mark.parametrize("name", sorted(ALL_MODELS))
def test_model_metadata_and_ir_version(name: str) -> None:
    """What julia/MPISR reads from every shipped model (and its contract fixtures): IR
    version, dims, task, scale_factor, grid_rule, noise_input, julia_layout; and golden
    outputs on the grid the rule gives."""
    import onnx

    folder, entry = ALL_MODELS[name]
    model = onnx.load(folder / entry["file"], load_external_data=False)
    assert 1 <= model.ir_version <= MAX_IR_VERSION
    metadata = {p.key: p.value for p in model.metadata_props}
    inputs = [i.name for i in model.graph.input]
    dims = int(metadata["dims"])
    assert dims in (2, 3) and dims == entry["dims"]
    assert metadata.get("task") in TASKS and metadata["task"] == entry["task"]
    assert metadata.get("julia_layout"), "julia_layout recipe missing"
    factor = float(metadata.get("scale_factor", "1"))
    assert factor.is_integer() and factor >= 1
    factor = int(factor)
    rule = metadata.get("grid_rule", "same" if factor == 1 else "scale")
    assert rule in GRID_RULES
    assert rule != "same" or factor == 1
    for key in ("scale_factor", "grid_rule"):
        if key in entry:
            assert entry[key] == (factor if key == "scale_factor" else rule)
    # the noise level input is named by the metadata and present together with it
    # the noise level input is named by the metadata ("none" or absent: no such input)
    noise = metadata.get("noise_input")
    noise = None if noise in (None, "", "none") else noise
    if noise is None:
        assert "sigma" not in inputs, "an input 'sigma' needs metadata noise_input"
    else:
        assert noise in inputs
    if "inputs" in metadata:
        assert json.loads(metadata["inputs"]) == inputs
    assert set(inputs) <= {"sm", "mask", noise or "sigma"} and "sm" in inputs

    golden = entry.get("golden", {})
    stem = Path(entry["file"]).stem
    files = {kind: folder / golden.get(kind, f"{stem}.golden_{kind}.npy")
             for kind in ("input", "output", "sigma", "mask")}
    in_shape, _, _ = _header(files["input"])
    out_shape, _, _ = _header(files["output"])
    assert out_shape[:2] == in_shape[:2]
    assert tuple(out_shape[2:]) == tuple(_output_size(rule, factor, n) for n in in_shape[2:])
    if noise is not None:
        assert files["sigma"].is_file(), "a model with a noise input needs golden_sigma"
        sigma_shape, fortran, dtype = _header(files["sigma"])
        assert sigma_shape == (in_shape[0], 1) and dtype == np.float32 and not fortran
    if "mask" in inputs:
        assert files["mask"].is_file(), "a model with a mask input needs golden_mask"
