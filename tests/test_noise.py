"""NoiseSource: background frames along the robot path and the parametric model."""

from __future__ import annotations

import numpy as np
import pytest

from pympisr.errors import InvalidInputError
from pympisr.simulation.noise import (NoiseSource, ParametricNoise, acquisition_order,
                                      rms_snr, scale_noise, with_white_noise)
from pympisr.system_matrix import SystemMatrix


def lag1_correlation(path: np.ndarray) -> float:
    """Mean normalised lag-1 autocorrelation along the last axis."""
    a, b = path[..., :-1], path[..., 1:]
    num = np.real(np.sum(a * b.conj(), axis=-1))
    den = np.sqrt(np.sum(np.abs(a) ** 2, -1) * np.sum(np.abs(b) ** 2, -1))
    return float(np.mean(num / den))


def test_acquisition_orders():
    np.testing.assert_array_equal(acquisition_order((2, 3)), np.arange(6))
    np.testing.assert_array_equal(acquisition_order((2, 3), meander=True), [0, 1, 2, 5, 4, 3])
    assert sorted(acquisition_order((3, 4, 5), meander=True)) == list(range(60))


def test_background_frames_laid_out_along_robot_path():
    rng = np.random.default_rng(0)
    e, c, k = 400, 3, 12
    frames = (rng.normal(size=(e, c, k)) + 1j * rng.normal(size=(e, c, k))).astype(np.complex64)
    frames[:, 0, 0] = np.arange(e)  # a ramp: consecutive frames along the path
    frames[:, 0, 1] = np.arange(e) ** 2  # its differences identify the start frame
    source = NoiseSource(frames)
    noise = source.draw((3, k, 1, 5, 6), rng)
    assert noise.shape == (3, k, 1, 5, 6) and noise.dtype == np.complex64
    ramp = noise[0, 0].ravel().real  # raster order: consecutive frames
    np.testing.assert_allclose(np.diff(ramp), 1.0)
    start = int(round((np.diff(noise[0, 1].ravel().real)[0] - 1) / 2))
    run = frames[start:start + 30]
    expected = run - run.mean(axis=0)
    np.testing.assert_allclose(noise.reshape(3, k, 30), np.moveaxis(expected, 0, -1), atol=1e-4)
    meander = NoiseSource(frames, meander=True).draw((3, k, 1, 5, 6), np.random.default_rng(1))
    row0, row1 = meander[0, 0, 0, 0].real, meander[0, 0, 0, 1].real
    assert np.all(np.diff(row0) > 0) and np.all(np.diff(row1) < 0)  # x reversed on row 1


def test_frames_matched_by_frequency():
    e = 50
    src_freqs = np.array([0.0, 1e3, 2e3, 3e3, 4e3])
    frames = np.zeros((e, 1, 5), np.complex64)
    frames[:, 0, :] = np.arange(e)[:, None] * (1 + np.arange(5))[None, :]  # column slope
    source = NoiseSource(frames, frequencies=src_freqs)
    sm = SystemMatrix(data=np.zeros((1, 2, 1, 2, 3), np.complex64),
                      frequencies=[2.9e3, 0.4e3], grid=(3, 2, 1), fov=[1, 1, 1])
    noise = source.draw(sm, np.random.default_rng(2))
    slopes = np.diff(noise.reshape(1, 2, 6).real, axis=-1).mean(-1)
    np.testing.assert_allclose(slopes[0], [4.0, 1.0])  # 2.9 kHz -> 3 kHz, 0.4 kHz -> 0 Hz


def test_parametric_colour_drift_and_spikes():
    rng = np.random.default_rng(3)
    freqs = np.linspace(5e3, 1e6, 40)
    model = ParametricNoise(jitter=0.0, drift=0.0, spike_rate=0.0)
    sm = SystemMatrix(data=np.zeros((3, 40, 1, 30, 30), np.complex64), frequencies=freqs,
                      grid=(30, 30, 1), fov=[1, 1, 1])
    noise = NoiseSource(model=model).draw(sm, rng)
    std = np.sqrt(np.mean(np.abs(noise) ** 2, axis=(2, 3, 4)) / 2)  # (3, 40)
    expected = 1 + 50e3 / freqs
    np.testing.assert_allclose(std / expected, 1.0, rtol=0.08)
    white_corr = lag1_correlation(noise.reshape(3, 40, -1))
    drifting = NoiseSource(model=ParametricNoise(drift=2.0, spike_rate=0.0)).draw(sm, rng)
    drift_corr = lag1_correlation(drifting.reshape(3, 40, -1))
    assert abs(white_corr) < 0.05 and drift_corr > 0.6
    spiky = NoiseSource(model=ParametricNoise(jitter=0.0, drift=0.0, spike_rate=0.02,
                                              spike_scale=30.0)).draw(sm, rng)
    scaled = np.abs(spiky.reshape(3, 40, -1)) / expected[None, :, None]
    hit_steps = np.mean(scaled > 10, axis=(0, 1)) > 0.5  # most components of a step
    assert 5 <= hit_steps.sum() <= 40  # ~ 0.02 * 900 = 18


def test_relative_std_scaling():
    rng = np.random.default_rng(4)
    clean = (rng.normal(size=(3, 7, 1, 9, 8)) + 1j).astype(np.complex64)
    sm = SystemMatrix(data=clean, frequencies=np.arange(7) * 1e3, grid=(8, 9, 1),
                      fov=[1, 1, 1])
    noise = NoiseSource().draw(sm, rng, relative_std=0.1)
    rms = np.sqrt(np.mean(np.abs(noise) ** 2, axis=(2, 3, 4)) / 2)
    np.testing.assert_allclose(rms, 0.1 * np.abs(clean).max(axis=(2, 3, 4)), rtol=1e-5)
    unit = scale_noise(noise, 0.3)
    np.testing.assert_allclose(np.sqrt(np.mean(np.abs(unit) ** 2, axis=(2, 3, 4)) / 2), 0.3,
                               rtol=1e-5)


def test_few_frames_fall_back_to_measured_spectrum():
    rng = np.random.default_rng(5)
    e, k = 40, 6
    scale = 1.0 + np.arange(k)
    frames = ((rng.normal(size=(e, 2, k)) + 1j * rng.normal(size=(e, 2, k))) * scale)
    source = NoiseSource(frames, model=ParametricNoise(jitter=0.0, drift=0.0, spike_rate=0.0))
    noise = source.draw((2, k, 1, 25, 25), rng)  # 625 positions > 40 frames
    std = np.sqrt(np.mean(np.abs(noise) ** 2, axis=(2, 3, 4)) / 2)
    np.testing.assert_allclose(std / scale, std[0, 0] / scale[0], rtol=0.35)
    assert np.corrcoef(std.mean(0), scale)[0, 1] > 0.98


def test_sample_for_component_batches_and_degradation_operator():
    rng = np.random.default_rng(6)
    frames = rng.normal(size=(300, 3, 10)) + 1j * rng.normal(size=(300, 3, 10))
    for source in (NoiseSource(frames, dims=2), NoiseSource(dims=2)):
        out = source.sample((4, 12, 11), rng)
        assert out.shape == (4, 12, 11) and np.iscomplexobj(out)
        assert np.all(np.std(out.reshape(4, -1), axis=1) > 0)
    volume = NoiseSource(frames, dims=3).sample((2, 3, 4, 5), rng)
    assert volume.shape == (2, 3, 4, 5)
    degradations = pytest.importorskip("pympisr.degradations")
    op = degradations.AdditiveSourceNoise(NoiseSource(frames, dims=2), sigma=0.2, dims=2)
    x = np.zeros((3, 12, 11), np.complex64)
    y = op(x, rng)
    np.testing.assert_allclose(np.sqrt(np.mean(np.abs(y) ** 2, axis=(1, 2)) / 2), 0.2, rtol=1e-4)


def test_from_system_matrix_background():
    rng = np.random.default_rng(7)
    bg = (rng.normal(size=(80, 3, 5)) + 1j * rng.normal(size=(80, 3, 5))).astype(np.complex64)
    sm = SystemMatrix(data=np.zeros((3, 5, 1, 6, 7), np.complex64),
                      frequencies=np.arange(5) * 1e3, grid=(7, 6, 1), fov=[1, 1, 1],
                      background=bg)
    source = NoiseSource.from_system_matrix(sm)
    noise = source.draw(sm, rng)
    flat = noise.reshape(3, 5, 42)
    # the run is a contiguous block of the background frames minus its mean
    diffs = np.diff(flat, axis=-1)
    bg_diffs = np.diff(np.moveaxis(bg, 0, -1), axis=-1)
    starts = [s for s in range(80 - 41) if np.allclose(bg_diffs[..., s:s + 41], diffs, atol=1e-5)]
    assert len(starts) == 1


def test_bad_frames_rejected():
    with pytest.raises(ValueError, match="background frames"):
        NoiseSource(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="dims"):
        NoiseSource(dims=4)


def test_from_mdf_file_background(tmp_path):
    pytest.importorskip("pympisr.mdf.writer")
    import pympisr
    from pympisr.simulation.system_matrix import simulate_system_matrix

    rng = np.random.default_rng(8)
    sm = simulate_system_matrix(seed=1, grid=(12, 12, 1), frequencies=np.arange(30))
    bg = (rng.normal(size=(200, 3, 30)) + 1j * rng.normal(size=(200, 3, 30))).astype(np.complex64)
    path = tmp_path / "with_bg.mdf"
    pympisr.save_system_matrix(sm.replace(background=bg), path)
    source = NoiseSource.from_mdf(path)
    assert source.frames.shape == (200, 3, 30) and source.dims == 2
    np.testing.assert_allclose(source.frames, bg, atol=1e-6)
    noise = source.draw(sm, rng, relative_std=0.05)
    assert noise.shape == sm.data.shape


def test_white_noise_calibration_records_its_noise_level():
    rng = np.random.default_rng(3)
    clean = np.zeros((2, 4, 1, 16, 16), np.complex64)
    clean[0, :2] = 10.0 * rng.standard_normal((2, 1, 16, 16))  # channel 1: no signal
    sm = SystemMatrix(data=clean, frequencies=np.arange(4) * 1e3, grid=(16, 16, 1),
                      fov=(0.02, 0.02, 0.001))
    noisy = with_white_noise(sm, 0.5, background_frames=400, rng=np.random.default_rng(1))
    assert noisy.is_background_corrected and noisy.background.shape == (400, 2, 4)
    assert sm.background is None and np.all(sm.data == clean)  # the input is untouched
    part_std = np.std(np.concatenate([(noisy.data - clean).real.ravel(),
                                      (noisy.data - clean).imag.ravel()]))
    assert part_std == pytest.approx(0.5, rel=0.02)
    # SNR: signal rms over noise rms; noise-only components score about 1
    assert np.all(np.abs(noisy.snr[1] - 1.0) < 0.15)
    expected = np.sqrt(100.0 + 2 * 0.25) / np.sqrt(2 * 0.25)
    assert np.all(np.abs(noisy.snr[0, :2] / expected - 1) < 0.1)
    # the frames' mean does not count as noise
    shifted = noisy.background + 7.0
    np.testing.assert_allclose(rms_snr(noisy.data, shifted), noisy.snr, rtol=1e-5)
    with pytest.raises(InvalidInputError, match="background_frames"):
        with_white_noise(sm, 0.5, background_frames=1, rng=rng)
    with pytest.raises(InvalidInputError, match="noise std"):
        with_white_noise(sm, float("nan"), background_frames=10, rng=rng)
