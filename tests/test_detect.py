"""Detection of corrupted calibration positions and the corruption simulator."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from pympisr.calibration_protocol import complex_noise
from pympisr.cli import main
from pympisr.errors import InvalidInputError
from pympisr.restoration import detect_corrupted
from pympisr.simulation import simulate_system_matrix
from pympisr.simulation.corruptions import corrupt_system_matrix
from pympisr.simulation.noise import acquisition_order


def _noisy(sm, fraction: float, seed: int):
    """``sm`` plus white complex noise at ``fraction`` of its largest magnitude (one
    absolute floor for all components, as in a calibration), and that noise level."""
    rng = np.random.default_rng(seed)
    sigma = np.full(sm.data.shape[:2], fraction * float(np.abs(sm.data).max()))
    return sm.replace(data=sm.data + complex_noise(sigma, sm.spatial_shape, rng)), sigma


@pytest.fixture(scope="module")
def sm2d():
    return _noisy(simulate_system_matrix(seed=3, dims=2, grid=(16, 14, 1)), 1e-3, 0)


@pytest.fixture(scope="module")
def sm3d():
    clean = simulate_system_matrix(seed=4, dims=3, grid=(9, 8, 10), max_frequency=40e3)
    return _noisy(clean, 1e-3, 1)


def _precision_recall(truth: np.ndarray, flagged: np.ndarray) -> tuple[float, float]:
    hits = np.count_nonzero(truth & flagged)
    return hits / max(np.count_nonzero(flagged), 1), hits / np.count_nonzero(truth)


def test_clean_sm_flags_at_most_one_percent(sm2d, sm3d) -> None:
    for sm, _ in (sm2d, sm3d):
        result = detect_corrupted(sm)
        assert result.valid.shape == sm.spatial_shape and result.valid.dtype == bool
        assert result.fraction_flagged <= 0.01
        assert np.all(np.isfinite(result.score))


@pytest.mark.parametrize("which", ["sm2d", "sm3d"])
def test_finds_spikes_and_drifting_block(which: str, request) -> None:
    sm, sigma = request.getfixturevalue(which)
    rng = np.random.default_rng(7)
    for kind, count in (("spike", 4), ("drift", 1)):
        corrupted = corrupt_system_matrix(sm, sigma, rng, counts={kind: count})
        result = detect_corrupted(corrupted.sm)
        precision, recall = _precision_recall(~corrupted.valid, ~result.valid)
        assert precision >= 0.9 and recall >= 0.9, (kind, precision, recall)


def test_spike_neighbours_are_not_flagged(sm2d) -> None:
    """The median predictions keep one corrupted position from flagging its neighbours."""
    sm, sigma = sm2d
    corrupted = corrupt_system_matrix(sm, sigma, np.random.default_rng(1), counts={"spike": 6},
                                      spike_strength=50.0)
    result = detect_corrupted(corrupted.sm)
    np.testing.assert_array_equal(result.valid, corrupted.valid)
    strongest = result.strongest(3)
    assert len(strongest) == 3 and all(not corrupted.valid[p] for p, _ in strongest)
    assert strongest[0][1] >= strongest[1][1] >= strongest[2][1]


def test_detection_result_fields(sm2d) -> None:
    sm, _ = sm2d
    result = detect_corrupted(sm, components=40)
    assert result.components.shape == (40, 2)
    assert set(result.evidence) == {"local", "far", "run"}
    np.testing.assert_array_equal(np.sort(result.order), np.arange(sm.num_voxels))
    assert result.far_offset == 2  # ceil(0.1 * 14 rows)
    pairs = np.array([[0, 5], [1, 7], [2, 9]])
    np.testing.assert_array_equal(detect_corrupted(sm, components=pairs).components, pairs)


def test_bad_parameters(sm2d) -> None:
    sm, _ = sm2d
    with pytest.raises(InvalidInputError, match="threshold"):
        detect_corrupted(sm, threshold=-1.0)
    with pytest.raises(InvalidInputError, match="components"):
        detect_corrupted(sm, components=np.array([[0, 10_000]]))
    with pytest.raises(InvalidInputError, match="window"):
        detect_corrupted(sm, window=4)
    tiny = sm.replace(data=sm.data[:, :, :, :2], grid=(16, 2, 1))
    with pytest.raises(InvalidInputError, match="too small"):
        detect_corrupted(tiny)


def test_corruptions_ground_truth(sm2d) -> None:
    sm, sigma = sm2d
    out = corrupt_system_matrix(sm, sigma, np.random.default_rng(3))
    assert set(out.kinds) == {"spike", "drift", "shift", "zero"}
    total = sum(np.count_nonzero(m) for m in out.kinds.values())
    assert total == np.count_nonzero(~out.valid)  # kinds are disjoint
    changed = np.any(out.sm.data != sm.data, axis=(0, 1))
    np.testing.assert_array_equal(changed, ~out.valid)
    assert not np.any(out.sm.data[:, :, out.kinds["zero"]])
    # the drift block is one contiguous run of 10 % of the positions in acquisition order
    steps = np.flatnonzero(out.kinds["drift"].reshape(-1)[acquisition_order(sm.spatial_shape)])
    assert steps.size == round(0.1 * sm.num_voxels) and np.all(np.diff(steps) == 1)
    # a shifted position holds the data of the previous acquisition step
    order = out.order
    for flat in np.flatnonzero(out.kinds["shift"].reshape(-1)):
        step = int(np.flatnonzero(order == flat)[0])
        before = sm.data.reshape(*sm.data.shape[:2], -1)[:, :, order[step - 1]]
        np.testing.assert_array_equal(out.sm.data.reshape(*sm.data.shape[:2], -1)[:, :, flat],
                                      before)
    # spikes have the requested amplitude relative to the noise
    spike = np.flatnonzero(out.kinds["spike"].reshape(-1))[0]
    delta = (out.sm.data - sm.data).reshape(*sm.data.shape[:2], -1)[:, :, spike]
    np.testing.assert_allclose(np.abs(delta), 20 * sigma, rtol=1e-3)
    assert not np.shares_memory(out.sm.data, sm.data)


def test_corruptions_reject_bad_counts(sm2d) -> None:
    sm, sigma = sm2d
    with pytest.raises(ValueError, match="unknown"):
        corrupt_system_matrix(sm, sigma, np.random.default_rng(0), counts={"glitch": 1})
    with pytest.raises(ValueError, match="room"):
        corrupt_system_matrix(sm, sigma, np.random.default_rng(0), counts={"spike": 200})


def _write_corrupted_mdf(path, sm2d):
    from pympisr import save_system_matrix

    sm, sigma = sm2d
    corrupted = corrupt_system_matrix(sm, sigma, np.random.default_rng(5),
                                      counts={"spike": 3})
    save_system_matrix(corrupted.sm, path)
    return corrupted


def test_cli_detect_summary_mask_and_plot(tmp_path, sm2d) -> None:
    corrupted = _write_corrupted_mdf(tmp_path / "sm.mdf", sm2d)
    mask, png = tmp_path / "mask.npy", tmp_path / "score.png"
    result = CliRunner().invoke(main, ["detect", str(tmp_path / "sm.mdf"), "--out", str(mask),
                                       "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert "flagged 3 positions" in result.output
    valid = np.load(mask)
    np.testing.assert_array_equal(valid, corrupted.valid)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = CliRunner().invoke(main, ["detect", str(tmp_path / "sm.mdf"), "--out", str(mask)])
    assert again.exit_code == 1 and "exists" in again.output


def test_cli_detect_on_factory_file_and_bad_files(tmp_path) -> None:
    from mdf_factory import make_system_matrix_file

    make_system_matrix_file(tmp_path / "noise.mdf", grid=(9, 8, 1), V=64)
    ok = CliRunner().invoke(main, ["detect", str(tmp_path / "noise.mdf"), "--threshold", "8"])
    assert ok.exit_code == 0, ok.output
    assert "72 positions" in ok.output
    bad = tmp_path / "bad.mdf"
    bad.write_bytes(b"not an hdf5 file")
    res = CliRunner().invoke(main, ["detect", str(bad)])
    assert res.exit_code == 1 and res.output.startswith("Error:") and "bad.mdf" in res.output
    wrong = CliRunner().invoke(main, ["detect", str(tmp_path / "noise.mdf"), "--out",
                                      str(tmp_path / "mask.txt")])
    assert wrong.exit_code == 1 and ".npy" in wrong.output
