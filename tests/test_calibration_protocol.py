"""Calibration protocol (R): one absolute noise floor per simulated SM, scores per bin."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from pympisr import SystemMatrix
from pympisr.calibration_protocol import (BIN_LABELS, DCT, NOISY, NoiseFloor, TaskBaseline,
                                          call_method, dct_method, default_methods,
                                          evaluate_calibration, markdown_tables, noisy_method,
                                          pympisr_method, relative_noise_bin,
                                          restore_accepts_noise, simulate_case,
                                          write_calibration_results)
from pympisr.cli import main
from pympisr.export import export_model
from pympisr.model_zoo import manifest_entry, register_model
from pympisr.tasks import get_task

from test_sr_geometry import LinearUpscaler

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


# ---------------------------------------------------------------- the other tasks
class MaskedMeanFill(nn.Module):
    """Fills missing positions with the mean of their measured 3 x 3 neighbours, a few
    times over (a stand-in for a trained inpainting network)."""

    size_multiple = 1
    noise_channel = False
    takes_mask = True

    def __init__(self, steps: int = 4) -> None:
        super().__init__()
        self.dims, self.steps = 2, steps
        self.register_buffer("kernel", torch.ones(2, 1, 3, 3))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        known = mask
        for _ in range(self.steps):
            num = nn.functional.conv2d(x * known, self.kernel, padding=1, groups=2)
            den = nn.functional.conv2d(known, self.kernel[:1], padding=1)
            x = known * x + (1 - known) * num / den.clamp_min(1e-6)
            known = torch.maximum(known, (den > 0).to(x.dtype))
        return x


@pytest.fixture(scope="module")
def protocol_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny exported x2 upsample / accelerate models (bilinear) and an inpainting model
    (neighbour mean), registered in a temporary manifest as ``tiny-<task>``."""
    folder = tmp_path_factory.mktemp("protocol_zoo")
    nets = {"upsample": LinearUpscaler(2, "scale"), "accelerate": LinearUpscaler(2, "stride"),
            "inpaint": MaskedMeanFill()}
    for task, net in nets.items():
        result = export_model(net.eval(), folder / f"tiny-{task}.onnx",
                              metadata={"architecture": "test"},
                              task=get_task(task, 2, 2 if task != "inpaint" else None))
        register_model(manifest_entry(f"tiny-{task}", result), folder)
    return folder


@pytest.mark.parametrize("task", ["upsample", "accelerate", "inpaint"])
def test_task_cases_measure_the_fine_sm(task: str) -> None:
    floor = NoiseFloor(fraction_range=(1e-3, 1e-3))
    case = simulate_case(1, 4, (4.0, 12.0), floor, task=task, **SMALL)
    rules = get_task(task, 2, 2 if task != "inpaint" else None)
    fine = case.clean.data.shape[3:]
    assert fine == rules.training_crop(fine)  # the clean reference is the covered region
    assert case.noisy.data.shape[3:] == rules.input_grid(fine)
    assert case.noisy.grid[:2] == tuple(reversed(rules.input_grid(fine)))
    # a restoration to the output geometry lands exactly on the clean reference's grid
    out_grid, out_fov, out_center = rules.output_geometry(case.noisy.grid, case.noisy.fov,
                                                          case.noisy.center)
    assert out_grid == case.clean.grid
    np.testing.assert_allclose(out_fov, case.clean.fov)
    np.testing.assert_allclose(out_center, case.clean.center, atol=1e-12)
    noise = case.noisy.data - rules.degrade_system_matrix(case.clean, case.mask).data
    peak = np.abs(simulate_case(1, 4, (4.0, 12.0), floor, **SMALL).clean.data).max()
    if task == "inpaint":
        missing = ~case.mask
        assert missing.sum() == round(0.1 * missing.size)  # the paper's 10 % block
        assert np.all(case.noisy.data[:, :, missing] == 0)
        noise = noise[:, :, case.mask]
        again = simulate_case(1, 4, (4.0, 12.0), floor, task=task, **SMALL)
        np.testing.assert_array_equal(again.mask, case.mask)  # deterministic per case
        other = simulate_case(0, 4, (4.0, 12.0), floor, task=task, **SMALL)
        assert not np.array_equal(other.mask[:, :12, :12], case.mask[:, :12, :12])
    assert np.std(noise.real) == pytest.approx(1e-3 * peak, rel=0.05)  # the same floor
    rel = case.noise_std[case.pairs[:, 0], case.pairs[:, 1]] / np.abs(
        case.clean.data[case.pairs[:, 0], case.pairs[:, 1]]).reshape(len(case.pairs), -1).max(1)
    np.testing.assert_allclose(case.relative_noise, rel)


def test_denoising_case_is_clean_plus_floor() -> None:
    from pympisr.calibration_protocol import case_rng, complex_noise

    case = simulate_case(0, 5, (4.0, 12.0), **SMALL)
    noise = complex_noise(case.noise_std, case.clean.spatial_shape, case_rng(5, 0, 1))
    np.testing.assert_array_equal(case.noisy.data, case.clean.data + noise)
    assert case.mask is None and case.noisy.grid == case.clean.grid


def _fine_lookup(seed: int, task: str, floor: NoiseFloor) -> object:
    """A method returning the clean fine SM of the case whose measurement it is given."""
    case = simulate_case(0, seed, (4.0, 12.0), floor, task=task, **SMALL)
    key = hashlib.sha1(case.noisy.data.tobytes()).hexdigest()

    def perfect(sm: SystemMatrix, noise_std: np.ndarray, mask: object = None) -> SystemMatrix:
        assert hashlib.sha1(sm.data.tobytes()).hexdigest() == key
        return case.clean.replace(data=case.clean.data.copy())

    return perfect


@pytest.mark.parametrize("task", ["upsample", "inpaint"])
def test_calibration_protocol_other_tasks(task: str, protocol_zoo: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYMPISR_MODELS", str(protocol_zoo))
    floor = NoiseFloor(fraction_range=(2e-3, 2e-3))
    methods = default_methods([f"tiny-{task}"], task=task)
    methods["perfect"] = _fine_lookup(2, task, floor)
    result = evaluate_calibration(1, seed=2, methods=methods, floor=floor, task=task,
                                  dct_factors=(1.5, 3.0), progress=False, **SMALL)
    baseline = "bicubic" if task == "upsample" else "biharmonic"
    with_dct = "DCT-F+bicubic" if task == "upsample" else "biharmonic+DCT-F"
    classical = ([] if task == "upsample" else [NOISY]) + [baseline, with_dct]
    assert result.methods == classical + [f"pympisr:tiny-{task}", "perfect"]
    assert result.references == classical and result.task == task
    rows = {(r["bin"], r["method"]): r for r in result.summary() if r["stratum"] == "all"}
    high = [b for b in ("0.1-0.3", "0.3-1", ">1") if (b, baseline) in rows]
    assert high, "no high-noise bin populated"
    for label in high:  # denoising the measurement helps the spline / biharmonic
        assert rows[(label, with_dct)]["psnr"] > rows[(label, baseline)]["psnr"] + 2
    for label in {b for b, _ in rows}:
        assert rows[(label, "perfect")]["ssim"] == pytest.approx(1.0)
        assert result.factors[with_dct][label] in (1.5, 3.0)
    acc = {(a["bin"], a["method"]): a for a in result.acceptance() if a["stratum"] == "all"}
    assert {m for _, m in acc} == {f"pympisr:tiny-{task}", "perfect"}
    assert all(a["passes"] for (_, m), a in acc.items() if m == "perfect")
    for (label, method), a in acc.items():
        best = max(rows[(label, m)]["psnr"] for m in classical)
        assert a["margin_db"] == pytest.approx(rows[(label, method)]["psnr"] - best)
    table = markdown_tables(result)
    assert "| rel. noise | n | " + " | ".join(result.methods) + " |" in table
    if task == "inpaint":  # scores over the corrupted positions, judged there too
        assert "corrupted positions only" in table
        for label in {b for b, _ in rows}:  # filling beats zeros, by far at low noise
            gain = 10 if label in BIN_LABELS[:3] else 0
            assert (rows[(label, baseline)]["psnr_masked"]
                    > rows[(label, NOISY)]["psnr_masked"] + gain)
        assert all("margin_masked_db" in a for a in acc.values())


def test_inpainting_baseline_fills_once_per_measurement(monkeypatch: pytest.MonkeyPatch) -> None:
    task = get_task("inpaint", 2, mask_ratio=0.1, num_masks=1)
    case = simulate_case(0, 1, (4.0, 12.0), task=task, **SMALL)
    calls = []
    original = task.baseline
    monkeypatch.setattr(task, "baseline", lambda *a, **k: calls.append(1) or original(*a, **k))
    plain = TaskBaseline(task)
    outputs = [call_method(m, case.noisy, case.noise_std, case.mask)
               for m in (plain, plain.with_factor(1.0), plain.with_factor(3.0))]
    assert len(calls) == 1
    np.testing.assert_array_equal(outputs[0].data[:, :, case.mask],
                                  case.noisy.data[:, :, case.mask])  # measured samples kept
    assert not np.array_equal(outputs[1].data, outputs[2].data)
    with pytest.raises(ValueError, match="mask"):
        plain(case.noisy, case.noise_std)


def test_cli_calibration_super_resolution_and_wrong_models(tmp_path: Path, protocol_zoo: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setenv("PYMPISR_MODELS", str(protocol_zoo))
    out = tmp_path / "acc"
    args = ["evaluate", "--protocol", "calibration", "--task", "accelerate", "--scale", "2",
            "--num-sms", "1", "--spf-range", "4,5", "--seed", "3", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--model", "tiny-accelerate"])
    assert result.exit_code == 0, result.output
    assert "| rel. noise | n | bicubic | DCT-F+bicubic | pympisr:tiny-accelerate |" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["task"] == "accelerate"
    assert metrics["settings"]["references"] == ["bicubic", "DCT-F+bicubic"]
    assert set(metrics["dct_factors"]) == {"DCT-F+bicubic"}
    wrong = CliRunner().invoke(main, [*args, "--model", "tiny-upsample", "--out",
                                      str(tmp_path / "w")])
    assert wrong.exit_code != 0 and "accelerate" in wrong.output
    scaled = CliRunner().invoke(main, ["evaluate", "--protocol", "image", "--task", "denoise",
                                       "--scale", "2", "--out", str(tmp_path / "s")])
    assert scaled.exit_code != 0 and "--scale" in scaled.output


# ---------------------------------------------------------------- 3D
TINY_3D = dict(dims=3, grid_range=(6, 6), max_components=12)  # 6^3 grids, 12 components
FLOOR_3D = NoiseFloor(fraction_range=(3e-3, 3e-3))


@pytest.fixture(scope="module")
def case3d() -> object:
    """SM 0 of seed 6, 3D, 6^3, the 12 strongest components, floor 3e-3 x max|S|."""
    return simulate_case(0, 6, (4.0, 12.0), FLOOR_3D, **TINY_3D)


def test_protocol_task_and_dims() -> None:
    from pympisr.calibration_protocol import protocol_dims, protocol_task

    assert protocol_task("denoise", dims=3).dims == 3
    assert protocol_task("accelerate", 2, 3).scale_factor == 2
    assert protocol_dims("inpaint") == 2 and protocol_dims(get_task("denoise", 3)) == 3
    assert protocol_dims("denoise", 3) == 3
    with pytest.raises(ValueError, match="2D SMs"):  # the image protocol's call stays 2D
        protocol_task(get_task("denoise", 3))
    with pytest.raises(ValueError, match="dims must be 2 or 3"):
        protocol_dims("denoise", 4)


def test_3d_case_is_clean_plus_one_absolute_floor(case3d: object) -> None:
    from pympisr.calibration_protocol import case_rng, complex_noise
    from pympisr.simulation.system_matrix import component_energies

    case = case3d
    assert case.clean.dims == 3 and case.clean.grid == (6, 6, 6)
    assert case.clean.data.shape == (3, case.clean.num_frequencies, 6, 6, 6)
    assert case.params.dims == 3 and len(case.pairs) == 12
    # the 12 kept components are the strongest (k >= 1) of the whole band
    energy = component_energies(case.params)
    energy[:, 0] = 0
    strongest = np.sort(energy.ravel())[::-1][:12]
    kept = energy[case.pairs[:, 0], case.clean.frequency_indices[case.pairs[:, 1]]]
    np.testing.assert_allclose(np.sort(kept)[::-1], strongest)
    # one absolute std, 3e-3 x the largest magnitude; the strongest component sits at 3e-3
    peak = np.abs(case.clean.data).max()
    np.testing.assert_allclose(case.noise_std, 3e-3 * peak, rtol=1e-6)
    assert case.relative_noise.min() == pytest.approx(3e-3, rel=1e-5)
    assert case.relative_noise.max() / case.relative_noise.min() > 3
    noise = complex_noise(case.noise_std, case.clean.spatial_shape, case_rng(6, 0, 1))
    np.testing.assert_array_equal(case.noisy.data, case.clean.data + noise)
    assert case.stratum == ("inside" if case.spf <= 12 else "beyond")
    assert case.spf == pytest.approx(
        np.mean(6 * 4.16 / (case.params.beta * np.abs(case.params.gradient))
                / case.params.fov))


def test_3d_inpainting_and_coarse_measurements(case3d: object) -> None:
    from pympisr.calibration_protocol import (case_mask, case_rng, fine_reference, measure,
                                              protocol_task)

    inpaint = protocol_task("inpaint", dims=3)
    mask = case_mask(inpaint, case3d.clean, 6, 0)
    assert mask.shape == (6, 6, 6) and (~mask).sum() == round(0.1 * 6 ** 3)
    noisy = measure(inpaint, case3d.clean, case3d.noise_std, mask, case_rng(6, 0, 1))
    assert np.all(noisy.data[:, :, ~mask] == 0) and np.all(noisy.data[:, :, mask] != 0)
    accelerate = protocol_task("accelerate", 2, dims=3)
    fine = fine_reference(accelerate, case3d.clean)
    assert fine.data.shape[2:] == (5, 5, 5)  # the points a stride-2 calibration covers
    coarse = measure(accelerate, fine, case3d.noise_std, None, case_rng(6, 0, 1))
    assert coarse.data.shape[2:] == (3, 3, 3) and coarse.grid == (3, 3, 3)
    spline = TaskBaseline(accelerate)
    assert spline.name == "tricubic"
    out = spline(coarse, case3d.noise_std)
    assert out.data.shape == fine.data.shape and out.grid == fine.grid
    np.testing.assert_allclose(out.data[:, :, ::2, ::2, ::2], coarse.data, atol=1e-4 * np.abs(
        coarse.data).max())  # the spline interpolates the measured points


def replay(case: object, calls: list[dict[str, object]]) -> object:
    """A stand-in for ``simulate_case`` that records its arguments and returns ``case``
    (the 3D simulation is the slow part; it is tested above)."""
    def simulate(index: int, seed: int, spf_range: tuple[float, float], floor: object,
                 **kwargs: object) -> object:
        calls.append({"index": index, "seed": seed, "spf_range": spf_range, **kwargs})
        return case

    return simulate


def test_evaluate_calibration_3d(case3d: object, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from pympisr import calibration_protocol

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(calibration_protocol, "simulate_case", replay(case3d, calls))
    lookup = {hashlib.sha1(case3d.noisy.data.tobytes()).hexdigest(): case3d.clean.data}

    def perfect(sm: SystemMatrix, noise_std: np.ndarray) -> SystemMatrix:
        return sm.replace(data=lookup[hashlib.sha1(sm.data.tobytes()).hexdigest()].copy())

    result = evaluate_calibration(1, seed=6, spf_ranges=((4.0, 12.0),), floor=FLOOR_3D,
                                  methods={DCT: dct_method(2.0), "perfect": perfect},
                                  dct_factors=(1.5, 3.0), progress=False, **TINY_3D)
    assert calls == [{"index": 0, "seed": 6, "spf_range": (4.0, 12.0), "grid_range": (6, 6),
                      "task": calls[0]["task"], "max_components": 12}]
    assert calls[0]["task"].dims == 3 and calls[0]["task"].name == "denoise"
    assert result.methods == [NOISY, DCT, "perfect"]
    assert result.settings["dims"] == 3 and result.settings["max_components"] == 12
    assert result.cases[0]["grid"] == [6, 6, 6] and result.cases[0]["kept_components"] == 12
    assert {r["grid"] for r in result.records} == {"6x6x6"}
    rows = {(r["bin"], r["method"]): r for r in result.summary() if r["stratum"] == "all"}
    assert sum(rows[(b, NOISY)]["n"] for b, m in rows if m == NOISY) == 12
    for (label, method), row in rows.items():
        assert rows[(label, "perfect")]["ssim"] == pytest.approx(1.0)
        assert row["psnr"] <= rows[(label, "perfect")]["psnr"]
        if method == DCT:  # denoising a 3D component beats the noisy one
            assert row["psnr"] > rows[(label, NOISY)]["psnr"]
    acc = [a for a in result.acceptance() if a["stratum"] == "all"]
    assert {a["method"] for a in acc} == {"perfect"} and all(a["passes"] for a in acc)
    table = markdown_tables(result)
    assert "Calibration protocol (denoise, 3D): All SMs" in table
    paths = write_calibration_results(result, tmp_path)
    assert json.loads(paths["metrics"].read_text())["settings"]["dims"] == 3
    assert paths["figure"].read_bytes()[:4] == b"\x89PNG"


def test_cli_calibration_3d_with_the_shipped_model(case3d: object, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from pympisr import calibration_protocol

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(calibration_protocol, "simulate_case", replay(case3d, calls))
    out = tmp_path / "cal3d"
    result = CliRunner().invoke(main, [
        "evaluate", "--protocol", "calibration", "--dims", "3", "--task", "denoise",
        "--num-sms", "1", "--spf-range", "4,12", "--max-components", "12", "--seed", "6",
        "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert calls[0]["grid_range"] == (10, 19) and calls[0]["max_components"] == 12
    assert calls[0]["spf_range"] == (4.0, 12.0) and calls[0]["task"].dims == 3
    model = "pympisr:denoise_dncnn_small_nl_3d"
    assert f"| rel. noise | n | noisy | DCT-F | {model} |" in result.output
    assert "**Acceptance** (mean PSNR minus max(noisy, DCT-F)" in result.output
    table = (out / "calibration_table.md").read_text()
    bins = [line.split(" | ")[0][2:] for line in table.splitlines()
            if line.startswith("| ") and line.split(" | ")[0][2:] in BIN_LABELS]
    assert bins, "no relative-noise bin in the table"
    acceptance = [line for line in table.splitlines() if line.startswith(f"| {model} |")]
    assert len(acceptance) == 1 and ("ok" in acceptance[0] or "FAIL" in acceptance[0])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["dims"] == 3 and metrics["cases"][0]["grid"] == [6, 6, 6]
    assert metrics["settings"]["max_components"] == 12


def test_cli_dims_is_for_the_calibration_protocol(tmp_path: Path) -> None:
    image = CliRunner().invoke(main, ["evaluate", "--protocol", "image", "--dims", "3",
                                      "--out", str(tmp_path / "i")])
    assert image.exit_code == 2 and "--protocol image simulates 2D SMs only" in image.output
    papers = CliRunner().invoke(main, ["evaluate", "--dims", "3", "--out", str(tmp_path / "p")])
    assert papers.exit_code == 2 and "--dims is for --protocol calibration" in papers.output
    wrong = CliRunner().invoke(main, ["evaluate", "--protocol", "calibration", "--dims", "3",
                                      "--model", "denoise_dncnn_small_nl_2d", "--out",
                                      str(tmp_path / "w")])
    assert wrong.exit_code != 0 and "needs a 3D 'denoise' model" in wrong.output
