"""Image protocol (I): phantom reconstructions with noisy / DCT-F / restored / clean SMs."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pympisr import SystemMatrix
from pympisr.calibration_protocol import (DCT, NOISY, NoiseFloor, default_methods, dct_method,
                                          noisy_method)
from pympisr.cli import main
from pympisr.image_protocol import (evaluate_images, image_metrics, markdown_tables,
                                    simulate_image_case, write_image_results)
from pympisr.tasks import get_task

from test_calibration_protocol import identity_onnx, protocol_zoo  # noqa: F401 - fixture

SMALL = dict(grid_range=(12, 16))


def test_image_metrics_perfect_scaled_and_constant() -> None:
    rng = np.random.default_rng(0)
    phantom = (rng.random((1, 14, 15)) > 0.7).astype(float)
    perfect = image_metrics(phantom, phantom)
    assert perfect["corr"] == pytest.approx(1.0) and perfect["psnr"] == float("inf")
    assert perfect["ssim"] == pytest.approx(1.0)
    scaled = image_metrics(3.5 * phantom, phantom)  # least-squares scaling undoes the factor
    assert scaled["scale"] == pytest.approx(1 / 3.5) and scaled["psnr"] == float("inf")
    noisy = image_metrics(phantom + 0.3 * rng.standard_normal(phantom.shape), phantom)
    assert 0 < noisy["corr"] < 1 and noisy["psnr"] < 30 and noisy["ssim"] < 1
    flat = image_metrics(np.ones_like(phantom), phantom)
    assert flat["corr"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        image_metrics(phantom[:, :5], phantom)


def test_case_noise_snr_and_measurement() -> None:
    floor = NoiseFloor(fraction_range=(1e-3, 1e-3))
    case = simulate_image_case(0, 4, (4.0, 12.0), floor, snr_mode="true", **SMALL)
    assert case.clean.num_channels == 2 and case.measurement.data.shape[0] == 3
    peak = np.abs(case.clean.data).max()
    # true SNR = component max / the one absolute noise std; every kept bin reaches 2
    np.testing.assert_allclose(case.noise_std, 1e-3 * np.abs(
        simulate_image_case(0, 4, (4.0, 12.0), floor, snr_mode="true", **SMALL).clean.data).max()
        * np.ones_like(case.noise_std), rtol=1e-5)
    assert np.all(case.clean.snr.max(axis=0) >= 2)
    assert case.clean.snr.max() == pytest.approx(1e3 * np.abs(case.clean.data).max() / peak,
                                                 rel=1e-4)
    mpi = simulate_image_case(0, 4, (4.0, 12.0), floor, snr_mode="mpifiles", **SMALL)
    assert mpi.noisy.snr.max() == pytest.approx(case.noisy.snr.max() / np.sqrt(np.pi), rel=0.3)
    np.testing.assert_array_equal(case.phantoms, mpi.phantoms)


def _perfect(seed: int, floor: NoiseFloor) -> object:
    lookup = {}
    case = simulate_image_case(0, seed, (4.0, 12.0), floor, snr_mode="true",
                               min_threshold=3.0, **SMALL)
    lookup[hashlib.sha1(case.noisy.data.tobytes()).hexdigest()] = case.clean.data

    def perfect(sm: SystemMatrix, noise_std: np.ndarray) -> SystemMatrix:
        return sm.replace(data=lookup[hashlib.sha1(sm.data.tobytes()).hexdigest()].copy())

    return perfect


def test_clean_beats_very_noisy_and_perfect_method_equals_clean() -> None:
    floor = NoiseFloor(fraction_range=(0.03, 0.03))  # a very noisy calibration
    result = evaluate_images(1, seed=6, floor=floor, snr_mode="true", thresholds=(3.0,),
                             lambdas=(0.0, 1e-2), methods={NOISY: noisy_method,
                                                           DCT: dct_method(2.0),
                                                           "perfect": _perfect(6, floor)},
                             progress=False, **SMALL)
    assert result.methods == [NOISY, DCT, "perfect", "clean"]
    rows = {(r["lambda"], r["method"]): r for r in result.summary() if r["stratum"] == "all"}
    assert rows[(0.01, "clean")]["corr"] > rows[(0.01, NOISY)]["corr"] + 0.05
    assert rows[(0.01, "clean")]["n"] == 3  # three phantoms
    for lam in (0.0, 0.01):
        for metric in ("corr", "psnr", "ssim"):
            assert rows[(lam, "perfect")][metric] == pytest.approx(rows[(lam, "clean")][metric])
    comp = {(c["lambda"], c["method"]): c for c in result.comparison() if c["stratum"] == "all"}
    drop = comp[(0.01, "perfect")]
    per_image = [r["corr"] for r in result.records
                 if r["lambda"] == 0.01 and r["method"] == "perfect"]
    noisy = [r["corr"] for r in result.records if r["lambda"] == 0.01 and r["method"] == NOISY]
    assert drop["worst_drop"] == pytest.approx(min(np.subtract(per_image, noisy)))
    assert drop["passes"] == (drop["worst_drop"] >= -0.01)
    table = markdown_tables(result)
    assert ("| SNR thr | lambda | corr noisy | corr DCT-F | corr perfect | corr clean | "
            "worst drop DCT-F | worst drop perfect | worst drop clean | perfect > DCT-F |") in table
    clean = comp[(0.01, "clean")]
    assert clean["reference"] and clean["worst_drop"] == pytest.approx(drop["worst_drop"])


def test_write_results_and_cli_refuses_overwrite(tmp_path: Path) -> None:
    model = identity_onnx(tmp_path / "ident.onnx")
    out = tmp_path / "img"
    args = ["evaluate", "--protocol", "image", "--num-sms", "1", "--spf-range", "4,5",
            "--model", str(model), "--trust-model", "--seed", "2", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "corr pympisr:ident" in result.output
    for name in ("image_per_image.csv", "image_summary.csv", "image_comparison.csv",
                 "image_table.md", "image_examples.png", "metrics.json"):
        assert (out / name).is_file(), name
    assert (out / "image_examples.png").read_bytes()[:4] == b"\x89PNG"
    with open(out / "image_comparison.csv") as handle:
        rows = list(csv.DictReader(handle))
    # thresholds x lambdas x strata (all + the SM's) x methods other than noisy
    assert len(rows) == 3 * 4 * 2 * 3
    assert {r["method"] for r in rows} == {"DCT-F", "pympisr:ident", "clean"}
    assert all(np.isfinite(float(r["worst_drop"])) for r in rows)
    assert {r["reference"] for r in rows if r["method"] == "pympisr:ident"} == {"False"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"] == "image" and metrics["settings"]["snr_mode"] == "mpifiles"
    again = CliRunner().invoke(main, args)
    assert again.exit_code != 0 and "exist" in again.output


def test_super_resolution_case_and_table(protocol_zoo: Path,  # noqa: F811 - fixture
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYMPISR_MODELS", str(protocol_zoo))
    floor = NoiseFloor(fraction_range=(3e-3, 3e-3))
    case = simulate_image_case(0, 6, (4.0, 12.0), floor, snr_mode="true", min_threshold=3.0,
                               task="upsample", **SMALL)
    rules = get_task("upsample", 2, 2)
    assert case.noisy.data.shape[3:] == rules.input_grid(case.clean.data.shape[3:])
    assert case.phantoms.shape[1:] == case.clean.data.shape[2:]  # phantoms on the fine grid
    key = hashlib.sha1(case.noisy.data.tobytes()).hexdigest()

    def perfect(sm: SystemMatrix, noise_std: np.ndarray) -> SystemMatrix:
        assert hashlib.sha1(sm.data.tobytes()).hexdigest() == key
        return case.clean.replace(data=case.clean.data.copy())

    methods = default_methods(["tiny-upsample"], task="upsample") | {"perfect": perfect}
    result = evaluate_images(1, seed=6, floor=floor, snr_mode="true", thresholds=(3.0,),
                             lambdas=(0.0, 1e-2), methods=methods, task="upsample",
                             progress=False, **SMALL)
    assert result.methods == ["bicubic", "DCT-F+bicubic", "pympisr:tiny-upsample", "perfect",
                              "clean"]
    assert result.base == "bicubic" and result.rival == "DCT-F+bicubic"
    assert result.restored == ["pympisr:tiny-upsample", "perfect"]
    rows = {(r["lambda"], r["method"]): r for r in result.summary() if r["stratum"] == "all"}
    for lam in (0.0, 0.01):
        for metric in ("corr", "psnr", "ssim"):
            assert rows[(lam, "perfect")][metric] == pytest.approx(rows[(lam, "clean")][metric])
    comp = {(c["lambda"], c["method"]): c for c in result.comparison() if c["stratum"] == "all"}
    assert {m for _, m in comp} == {"DCT-F+bicubic", "pympisr:tiny-upsample", "perfect", "clean"}
    bicubic = [r["corr"] for r in result.records if r["lambda"] == 0.01 and r["method"] == "bicubic"]
    perfect_corr = [r["corr"] for r in result.records
                    if r["lambda"] == 0.01 and r["method"] == "perfect"]
    assert comp[(0.01, "perfect")]["worst_drop"] == pytest.approx(
        min(np.subtract(perfect_corr, bicubic)))
    assert comp[(0.01, "perfect")]["beats_dct"] == (
        rows[(0.01, "perfect")]["corr"] > rows[(0.01, "DCT-F+bicubic")]["corr"])
    table = markdown_tables(result)
    assert "Image protocol (upsample x2)" in table and "corr(method) - corr(bicubic)" in table
    assert "| perfect > DCT-F+bicubic |" in table


def test_cli_image_inpainting(tmp_path: Path, protocol_zoo: Path,  # noqa: F811 - fixture
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYMPISR_MODELS", str(protocol_zoo))
    out = tmp_path / "img"
    result = CliRunner().invoke(main, [
        "evaluate", "--protocol", "image", "--task", "inpaint", "--model", "tiny-inpaint",
        "--num-sms", "1", "--spf-range", "4,5", "--seed", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert ("| corr noisy | corr biharmonic | corr biharmonic+DCT-F | corr pympisr:tiny-inpaint "
            "| corr clean |") in result.output
    with open(out / "image_comparison.csv") as handle:
        rows = [r for r in csv.DictReader(handle) if r["stratum"] == "all"]
    # drops are measured against biharmonic inpainting; the corrupted SM is a reference
    assert {r["method"] for r in rows} == {"noisy", "biharmonic+DCT-F", "pympisr:tiny-inpaint",
                                           "clean"}
    by = {(r["threshold"], r["lambda"], r["method"]): r for r in rows}
    worse = [float(r["corr_noisy"]) < float(r["corr_clean"]) for r in by.values()]
    assert sum(worse) > len(worse) / 2  # 10 % corrupted positions hurt the images
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["task"] == "inpaint"
    assert metrics["settings"]["base"] == "biharmonic"
