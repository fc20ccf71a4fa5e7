"""Calibration protocol (R): one absolute noise floor per simulated SM, scores per bin."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pympisr import SystemMatrix
from pympisr.calibration_protocol import (BIN_LABELS, DCT, NOISY, NoiseFloor, dct_method,
                                          evaluate_calibration, markdown_tables, noisy_method,
                                          pympisr_method, relative_noise_bin,
                                          restore_accepts_noise, simulate_case,
                                          write_calibration_results)
from pympisr.cli import main

SMALL = dict(grid_range=(12, 14))
REAL_MDF = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / \
    "daq_systemMatrix_v2.0.mdf"


def identity_onnx(path: Path) -> Path:
    """An end-to-end 2D 'denoising model' whose output is its input (for fast CLI tests)."""
    import onnx
    from onnx import TensorProto, helper

    io = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["B", 2, "H", "W"])
          for name in ("sm", "restored")]
    graph = helper.make_graph([helper.make_node("Identity", ["sm"], ["restored"])],
                              "identity", [io[0]], [io[1]])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    helper.set_model_props(model, {"task": "denoise", "dims": "2"})
    onnx.save(model, path)
    return path


def test_bins_are_assigned_with_inclusive_lower_edges() -> None:
    values = [1e-4, 0.003, 0.0099, 0.01, 0.029, 0.03, 0.1, 0.2999, 0.3, 1.0, 50.0]
    labels = [BIN_LABELS[b] for b in relative_noise_bin(values)]
    assert labels == ["<0.003", "0.003-0.01", "0.003-0.01", "0.01-0.03", "0.01-0.03",
                      "0.03-0.1", "0.1-0.3", "0.1-0.3", "0.3-1", ">1", ">1"]


def test_floor_is_one_absolute_level() -> None:
    case = simulate_case(0, 5, (4.0, 12.0), NoiseFloor(fraction_range=(3e-3, 3e-3)), **SMALL)
    peak = np.abs(simulate_case(0, 5, (4.0, 12.0), NoiseFloor(), **SMALL).clean.data).max()
    # one absolute std for every component (white floor), = fraction x max|S| of the SM
    np.testing.assert_allclose(case.noise_std, 3e-3 * peak, rtol=1e-6)
    # ... so the relative noise differs across components by orders of magnitude
    assert case.relative_noise.max() / case.relative_noise.min() > 100
    assert case.relative_noise.min() == pytest.approx(3e-3, rel=1e-5)  # strongest component
    noise = case.noisy.data - case.clean.data
    assert np.std(noise.real) == pytest.approx(3e-3 * peak, rel=0.05)
    # kept components: k >= 1, all in the SM handed to the methods
    assert np.all(case.clean.frequency_indices[case.pairs[:, 1]] >= 1)
    assert case.noisy.snr is not None and case.noisy.snr.shape == case.noise_std.shape


def test_floor_profile_from_real_background() -> None:
    floor = NoiseFloor.from_file(REAL_MDF)
    freqs = np.linspace(10e3, 1.2e6, 50)
    shape = floor.shape(freqs, 3)
    assert shape.shape == (3, 50) and np.median(shape) == pytest.approx(1.0, rel=0.05)
    assert shape.max() / shape.min() > 1.5  # coloured, not white
    assert floor.kind.startswith("real-profile") and REAL_MDF.name in floor.kind


def _perfect_method(seed: int, count: int, floor: NoiseFloor) -> object:
    """A method that returns the clean SM (looked up by the noisy data it is given)."""
    lookup = {}
    for i in range(count):
        case = simulate_case(i, seed, ((4.0, 12.0), (12.0, 60.0))[i % 2], floor, **SMALL)
        lookup[hashlib.sha1(case.noisy.data.tobytes()).hexdigest()] = case.clean.data

    def perfect(sm: SystemMatrix, noise_std: np.ndarray) -> SystemMatrix:
        return sm.replace(data=lookup[hashlib.sha1(sm.data.tobytes()).hexdigest()].copy())

    return perfect


def test_dct_beats_noisy_at_high_noise_and_perfect_method_is_best() -> None:
    floor = NoiseFloor(fraction_range=(2e-3, 2e-3))  # populates the high-noise bins
    result = evaluate_calibration(1, seed=1, methods={NOISY: noisy_method,
                                                      DCT: dct_method(2.0),
                                                      "perfect": _perfect_method(1, 1, floor)},
                                  floor=floor, dct_factors=(1.5, 2.5, 3.0), progress=False,
                                  **SMALL)
    assert result.methods == [NOISY, DCT, "perfect"]
    rows = {(r["bin"], r["method"]): r for r in result.summary() if r["stratum"] == "all"}
    high = [b for b in ("0.1-0.3", "0.3-1", ">1") if (b, NOISY) in rows]
    assert high, "no high-noise bin populated"
    for label in high:
        assert rows[(label, DCT)]["psnr"] > rows[(label, NOISY)]["psnr"] + 3
        assert rows[(label, DCT)]["ssim"] > rows[(label, NOISY)]["ssim"]
    for (label, method), row in rows.items():
        assert row["psnr"] <= rows[(label, "perfect")]["psnr"]
        assert row["ssim"] <= rows[(label, "perfect")]["ssim"] + 1e-12
        assert rows[(label, "perfect")]["ssim"] == pytest.approx(1.0)
    # counts agree across methods and the DCT-F factor was tuned per bin on the grid
    for label in {b for b, _ in rows}:
        assert rows[(label, NOISY)]["n"] == rows[(label, DCT)]["n"] == rows[(label, "perfect")]["n"]
        assert result.dct_factor[label] in (1.5, 2.5, 3.0)
        best = max(result.dct_tuning[label].values())
        assert rows[(label, DCT)]["psnr"] == pytest.approx(best)
    table = markdown_tables(result)
    assert "| rel. noise | n | noisy | DCT-F | perfect |" in table
    assert "DCT-F threshold factor per bin" in table


def test_dct_with_zero_threshold_is_identity_and_noise_std_is_checked() -> None:
    case = simulate_case(0, 2, (4.0, 12.0), **SMALL)
    out = dct_method(0.0)(case.noisy, case.noise_std)
    np.testing.assert_allclose(out.data, case.noisy.data, atol=1e-4 * np.abs(case.noisy.data).max())
    with pytest.raises(ValueError, match="noise_std"):
        dct_method(2.0)(case.noisy, case.noise_std[:, :3])
    # per-bin factors: the same factor everywhere equals the scalar; unknown bins fail
    same = dct_method({label: 2.0 for label in BIN_LABELS})(case.noisy, case.noise_std)
    np.testing.assert_array_equal(same.data, dct_method(2.0)(case.noisy, case.noise_std).data)
    with pytest.raises(ValueError, match="unknown bins"):
        dct_method({"huge": 2.0})


def test_pympisr_method_restores_with_the_shipped_model() -> None:
    case = simulate_case(0, 3, (4.0, 12.0), **SMALL)
    method = pympisr_method()
    assert method.passes_noise == restore_accepts_noise()
    out = method(case.noisy, case.noise_std)
    assert out.data.shape == case.noisy.data.shape and out.data.dtype == np.complex64
    assert not np.array_equal(out.data, case.noisy.data)


def test_write_results_and_refuse_overwrite(tmp_path: Path) -> None:
    result = evaluate_calibration(1, seed=0, methods={NOISY: noisy_method, DCT: dct_method(2)},
                                  dct_factors=(1.5, 2.5), progress=False, **SMALL)
    paths = write_calibration_results(result, tmp_path)
    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["protocol"] == "calibration"
    assert set(metrics["dct_factor"].values()) <= {1.5, 2.5}
    with pytest.raises(FileExistsError):
        write_calibration_results(result, tmp_path)
    write_calibration_results(result, tmp_path, overwrite=True)


def test_cli_calibration_writes_files_and_refuses_overwrite(tmp_path: Path) -> None:
    model = identity_onnx(tmp_path / "ident.onnx")
    out = tmp_path / "cal"
    args = ["evaluate", "--protocol", "calibration", "--num-sms", "1", "--spf-range", "4,5",
            "--model", str(model), "--trust-model", "--seed", "3", "--dct-threshold", "2",
            "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "| rel. noise | n | noisy | DCT-F | pympisr:ident |" in result.output
    for name in ("calibration_per_component.csv", "calibration_summary.csv",
                 "calibration_table.md", "calibration.png", "metrics.json"):
        assert (out / name).is_file(), name
    assert (out / "calibration.png").read_bytes()[:4] == b"\x89PNG"
    with open(out / "calibration_summary.csv") as handle:
        rows = {(r["bin"], r["method"]): r for r in csv.DictReader(handle) if r["stratum"] == "all"}
    assert {m for _, m in rows} == {NOISY, DCT, "pympisr:ident"}
    assert all(np.isfinite(float(r["psnr"])) and int(r["n"]) > 0 for r in rows.values())
    again = CliRunner().invoke(main, args)
    assert again.exit_code != 0 and "exist" in again.output
    assert CliRunner().invoke(main, [*args, "--overwrite"]).exit_code == 0


def test_cli_papers_still_needs_data(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["evaluate", "--out", str(tmp_path / "p")])
    assert result.exit_code != 0 and "--data" in result.output
