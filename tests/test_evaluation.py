"""End-to-end evaluation on tiny datasets written in the test."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pympisr.cli import main
from pympisr.datasets import ComponentStore, write_item
from pympisr.datasets.store import DatasetItem, item_path
from pympisr.evaluation import (Method, dct_method, evaluate_denoising, grid_stratum,
                                markdown_tables, noisy_component, write_results)


def _components(count: int, shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """Smooth complex components (M, Nz, Ny, Nx) of varying amplitude."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    z, y, x = np.meshgrid(np.linspace(-1, 1, nz), np.linspace(-1, 1, ny),
                          np.linspace(-1, 1, nx), indexing="ij")
    comps = []
    for _ in range(count):
        kx, ky, kz = rng.uniform(1, 4, size=3)
        field = np.cos(kx * x) * np.sin(ky * y + 0.3) * np.cos(kz * z * (nz > 1))
        comps.append(rng.uniform(0.01, 5) * field * np.exp(1j * rng.uniform(0, 6)))
    return np.asarray(comps, np.complex64)


def _write_dataset(root: Path, shapes: list[tuple[int, int, int]], per_item: int = 3) -> None:
    for i, shape in enumerate(shapes):
        comps = _components(per_item, shape, seed=i)
        write_item(item_path(root, "test", i), DatasetItem(
            components=comps, channel=np.arange(per_item) % 3,
            frequency_index=np.arange(per_item) + 10,
            energy=np.sum(np.abs(comps) ** 2, axis=(1, 2, 3)),
            grid=(shape[2], shape[1], shape[0]), fov=np.array([0.02, 0.02, 0.001]),
            center=np.zeros(3)))


def test_noise_is_reproducible_and_calibrated() -> None:
    clean = np.zeros((64, 64), np.complex64)
    a = noisy_component(clean, 0.1, seed=3, index=7)
    np.testing.assert_array_equal(a, noisy_component(clean, 0.1, seed=3, index=7))
    assert not np.array_equal(a, noisy_component(clean, 0.1, seed=3, index=8))
    assert np.std(a.real) == pytest.approx(0.1, rel=0.05)
    assert np.std(a.imag) == pytest.approx(0.1, rel=0.05)


def test_grid_strata() -> None:
    assert grid_stratum((44, 44, 1)) is None
    assert grid_stratum((13, 14, 15)) == "(12,18]"
    assert grid_stratum((25, 21, 26)) == "(18,24]"  # mean 24: upper bin edge included
    assert grid_stratum((25, 21, 27)) == "(24,30]"
    assert grid_stratum((30, 28, 26)) == "(24,30]"


def test_evaluate_2d_dct_beats_noisy_and_identity_is_noisy(tmp_path: Path) -> None:
    _write_dataset(tmp_path, [(1, 20, 22), (1, 18, 18)])
    store = ComponentStore(tmp_path, "test")
    calls = []

    def identity(x: np.ndarray) -> np.ndarray:
        calls.append(x.shape)
        return x

    result = evaluate_denoising(store, [dct_method(), Method("identity", identity)],
                                [0.0, 0.1, 0.3], seed=1, progress=False)
    assert all(len(shape) == 3 for shape in calls)  # 2D batches (B, Ny, Nx)
    assert len(result.records) == 6 * 3 * 3  # components x sigmas x (noisy + 2 methods)
    rows = {(r["sigma"], r["method"]): r for r in result.summary()}
    for sigma in (0.1, 0.3):
        assert rows[(sigma, "DCT-F")]["psnr"] > rows[(sigma, "noisy")]["psnr"] + 3
        assert rows[(sigma, "DCT-F")]["ssim"] > rows[(sigma, "noisy")]["ssim"]
        assert rows[(sigma, "identity")]["psnr"] == pytest.approx(rows[(sigma, "noisy")]["psnr"])
        # PSNR of the noisy input is close to its definition: 10 log10(1 / sigma^2)
        assert rows[(sigma, "noisy")]["psnr"] == pytest.approx(-20 * np.log10(sigma), abs=0.5)
    assert rows[(0.0, "noisy")]["psnr"] == float("inf")
    table = markdown_tables(result)
    assert "| sigma | noisy | DCT-F | identity |" in table
    assert table.count("\n| 0.1 |") == 1 and " ± " in table
    assert len(result.examples) == 4


def test_evaluate_3d_strata_and_max_components(tmp_path: Path) -> None:
    _write_dataset(tmp_path, [(13, 14, 15), (20, 19, 21)], per_item=2)
    store = ComponentStore(tmp_path, "test")
    result = evaluate_denoising(store, {"identity": lambda x: x}, [0.1], max_components=3,
                                num_examples=2, progress=False)
    assert {r["component"] for r in result.records} == {0, 2, 3}
    assert result.strata() == ["all", "(12,18]", "(18,24]"]
    summary = result.summary()
    counts = {(r["stratum"], r["method"]): r["n"] for r in summary}
    assert counts[("all", "identity")] == 3
    assert counts[("(12,18]", "identity")] == 1 and counts[("(18,24]", "identity")] == 2
    table = markdown_tables(result)
    assert "Average grid size (12,18]" in table and "Average grid size (18,24]" in table
    paths = write_results(result, tmp_path / "out")
    assert paths["figure"].stat().st_size > 0
    metrics = json.loads(paths["metrics"].read_text())
    for sigma_key, methods in metrics["sigma"].items():
        for method, values in methods.items():
            row = next(r for r in summary if r["stratum"] == "all" and r["method"] == method
                       and f"{r['sigma']:g}" == sigma_key)
            assert values["n"] == row["n"]
            if values["psnr"] is not None:
                assert values["psnr"] == pytest.approx(row["psnr"], abs=1e-4)
                assert values["psnr_ci"][0] <= values["psnr"] <= values["psnr_ci"][1]
    with pytest.raises(FileExistsError):
        write_results(result, tmp_path / "out")


def test_method_shape_check(tmp_path: Path) -> None:
    _write_dataset(tmp_path, [(1, 12, 12)], per_item=1)
    with pytest.raises(ValueError, match="returned shape"):
        evaluate_denoising(ComponentStore(tmp_path, "test"), {"bad": lambda x: x[:, :5]},
                           [0.1], progress=False)


def test_cli_evaluate_writes_table_csv_figure(tmp_path: Path) -> None:
    _write_dataset(tmp_path / "data", [(1, 16, 18), (1, 16, 18)])
    out = tmp_path / "eval"
    args = ["evaluate", "--data", str(tmp_path / "data"), "--split", "test",
            "--sigmas", "0.06,0.2", "--out", str(out), "--max-components", "5"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "| sigma | noisy | DCT-F |" in result.output
    assert "| 0.06 |" in result.output and "| 0.2 |" in result.output
    with open(out / "per_component.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 * 2 * 2
    assert {"component", "sigma", "method", "psnr", "ssim", "nrmse"} <= set(rows[0])
    with open(out / "summary.csv") as handle:
        summary = list(csv.DictReader(handle))
    assert {(r["sigma"], r["method"]) for r in summary} == {
        ("0.06", "noisy"), ("0.06", "DCT-F"), ("0.2", "noisy"), ("0.2", "DCT-F")}
    for r in summary:
        assert float(r["psnr_low"]) <= float(r["psnr"]) <= float(r["psnr_high"])
    assert (out / "examples.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "table.md").read_text().startswith("**All components")
    again = CliRunner().invoke(main, args)
    assert again.exit_code != 0 and "exist" in again.output
    bad = CliRunner().invoke(main, [*args, "--overwrite", "--sigmas", "0.1,-1"])
    assert bad.exit_code != 0


def test_all_zero_component_is_reported(tmp_path: Path) -> None:
    _write_dataset(tmp_path, [(1, 12, 12)], per_item=2)
    item = item_path(tmp_path, "test", 0)
    comps = np.zeros((2, 1, 12, 12), np.complex64)
    comps[0, 0, 3, 3] = 1
    write_item(item, DatasetItem(components=comps, channel=np.zeros(2), frequency_index=np.arange(2),
                                 energy=np.ones(2), grid=(12, 12, 1), fov=np.ones(3),
                                 center=np.zeros(3)), overwrite=True)
    with pytest.raises(ValueError, match="component 1 is all zero"):
        evaluate_denoising(ComponentStore(tmp_path, "test"), {"id": lambda x: x}, [0.1],
                           progress=False)


def _identity_onnx(path: Path, task: str = "denoise") -> Path:
    """A minimal end-to-end ONNX 'model' (restored = sm) with pympisr metadata."""
    import onnx
    from onnx import TensorProto, helper

    sm = helper.make_tensor_value_info("sm", TensorProto.FLOAT, ["B", 2, "H", "W"])
    restored = helper.make_tensor_value_info("restored", TensorProto.FLOAT, ["B", 2, "H", "W"])
    graph = helper.make_graph([helper.make_node("Identity", ["sm"], ["restored"])],
                              "identity", [sm], [restored])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    helper.set_model_props(model, {"task": task, "dims": "2"})
    onnx.save(model, path)
    return path


def test_cli_evaluate_with_onnx_model(tmp_path: Path) -> None:
    _write_dataset(tmp_path / "data", [(1, 16, 18)])
    model = _identity_onnx(tmp_path / "ident.onnx")
    out = tmp_path / "eval"
    result = CliRunner().invoke(main, ["evaluate", "--data", str(tmp_path / "data"),
                                       "--model", str(model), "--trust-model",
                                       "--sigmas", "0.1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "| sigma | noisy | DCT-F | ident | ident (network) |" in result.output
    with open(out / "summary.csv") as handle:
        rows = {r["method"]: r for r in csv.DictReader(handle)}
    assert float(rows["ident (network)"]["psnr"]) == pytest.approx(float(rows["noisy"]["psnr"]),
                                                                 abs=1e-3)
    # the safety step makes even an identity network as good as the better of its inputs
    best = max(float(rows["noisy"]["psnr"]), float(rows["DCT-F"]["psnr"]))
    assert float(rows["ident"]["psnr"]) >= best - 0.3
    wrong = _identity_onnx(tmp_path / "inpaint.onnx", task="inpaint")
    bad = CliRunner().invoke(main, ["evaluate", "--data", str(tmp_path / "data"),
                                    "--model", str(wrong), "--trust-model",
                                    "--out", str(tmp_path / "e2")])
    assert bad.exit_code != 0 and "not a denoising model" in bad.output
