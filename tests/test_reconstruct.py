"""Reconstruction pipeline, simulated measurements, image output and the CLI."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import pympisr
from pympisr import Measurement, SystemMatrix
from pympisr.errors import JuliaUnavailableError, ReconstructionError
from pympisr.phantoms import make_phantom
from pympisr.reco import PythonBackend, reconstruct, write_image
from pympisr.reco.output import read_image
from pympisr.reco.reconstruct import reconstruct_with_metadata
from pympisr.simulation.measurement import simulate_measurement


def chebyshev_system_matrix(nx: int = 16, ny: int = 14, orders: int = 16, seed: int = 0,
                            channels: int = 2) -> SystemMatrix:
    """A synthetic 2D system matrix: products of Chebyshev polynomials of the second kind.

    For a 2D Lissajous FFP trajectory, frequency components are close to
    ``U_mx(x) U_my(y)`` (Rahmer et al. 2009), so this is a well-posed stand-in for a
    simulated matrix. Each (channel, component) gets a random phase; SNR values are
    random; frequency k sits at rfft bin k + 1 of a 1 kHz grid.
    """
    rng = np.random.default_rng(seed)
    x = np.linspace(-1, 1, nx + 2)[1:-1]
    y = np.linspace(-1, 1, ny + 2)[1:-1]

    def cheb_u(n: int, t: np.ndarray) -> np.ndarray:
        theta = np.arccos(t)
        return np.sin((n + 1) * theta) / np.sin(theta)

    comps = np.array([np.outer(cheb_u(my, y), cheb_u(mx, x))
                      for mx in range(orders) for my in range(orders)])
    k = comps.shape[0]
    data = np.empty((channels, k, 1, ny, nx), dtype=np.complex64)
    for c in range(channels):
        phase = np.exp(1j * rng.uniform(0, 2 * np.pi, k))
        data[c, :, 0] = comps * phase[:, None, None] * (1.0 + 0.3 * c)
    bins = np.arange(k) + 1
    return SystemMatrix(data=data, frequencies=bins * 1e3, grid=(nx, ny, 1),
                        fov=(0.03, 0.026, 0.001), snr=rng.uniform(0, 20, (channels, k)),
                        frequency_indices=bins)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# ---------------------------------------------------------------------- simulation
def test_simulated_measurement_is_s_times_c() -> None:
    sm = chebyshev_system_matrix()
    phantom = make_phantom("dots", sm)
    meas = simulate_measurement(sm, phantom, frames=2)
    assert meas.data.shape == (2, sm.num_channels, sm.num_frequencies)
    expected = np.einsum("ckv,v->ck", sm.data.reshape(2, sm.num_frequencies, -1).astype(complex),
                         phantom.ravel())
    assert np.allclose(meas.data[0], expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert np.array_equal(meas.frequency_indices, sm.frequency_indices)
    assert meas.background is None
    assert np.array_equal(meas.metadata["/_pympisr/phantom"], phantom)


def test_simulated_noise_and_background_levels() -> None:
    sm = chebyshev_system_matrix()
    offset = (np.full((2, sm.num_frequencies), 3.0 + 1.0j)).astype(np.complex64)
    sm = sm.replace(background=np.stack([offset, offset]), is_background_corrected=True)
    clean = simulate_measurement(sm, "snake", frames=1)
    noisy = simulate_measurement(sm, "snake", noise=0.05, background_frames=400, frames=3,
                                 seed=1)
    peak = np.abs(clean.data[0] - offset).max()
    assert noisy.background.shape == (400, 2, sm.num_frequencies)
    # background frames: offset + noise of std 0.05 * peak per real/imag part
    assert np.allclose(noisy.background.mean(axis=0), offset, atol=0.05 * peak * 0.3)
    assert noisy.background.real.std() == pytest.approx(0.05 * peak, rel=0.05)
    assert np.std(noisy.data - clean.data, axis=0).mean() > 0
    again = simulate_measurement(sm, "snake", noise=0.05, background_frames=400, frames=3,
                                 seed=1)
    assert np.array_equal(again.data, noisy.data)


def test_simulation_rejects_wrong_phantom_shape() -> None:
    sm = chebyshev_system_matrix()
    with pytest.raises(ValueError, match="grid"):
        simulate_measurement(sm, np.ones((3, 4)))
    with pytest.raises(ValueError, match="noise"):
        simulate_measurement(sm, "dots", noise=-1)


# ---------------------------------------------------------------------- reconstruction
@pytest.mark.parametrize("name", ["snake", "dots", "spiral"])
def test_noiseless_reconstruction_recovers_phantom(name: str) -> None:
    sm = chebyshev_system_matrix()
    phantom = make_phantom(name, sm)
    meas = simulate_measurement(sm, phantom)
    image = reconstruct(sm, meas, iterations=20)
    assert image.shape == (1, 1, 14, 16) and image.dtype == np.float32
    assert correlation(image, phantom) >= 0.9


@pytest.mark.parametrize("seed", [0, 4])       # the two largest default 2D grids
def test_reconstruction_with_simulated_system_matrix(seed: int) -> None:
    sm = pympisr.simulate_system_matrix(seed=seed, dims=2)
    for name in ("snake", "spiral", "dots"):
        phantom = make_phantom(name, sm)
        meas = simulate_measurement(sm, phantom)
        image = reconstruct(sm, meas, min_freq=80e3, iterations=20)
        assert correlation(image, phantom) >= 0.9, name


@pytest.mark.slow
def test_reconstruction_with_simulated_3d_system_matrix() -> None:
    sm = pympisr.simulate_system_matrix(seed=0, dims=3, grid=(10, 10, 10),
                                        max_frequency=200e3)
    phantom = make_phantom("resolution", sm)
    image = reconstruct(sm, simulate_measurement(sm, phantom), min_freq=80e3, iterations=10)
    assert correlation(image, phantom) >= 0.9


def test_frequency_selection_is_applied() -> None:
    sm = chebyshev_system_matrix()
    meas = simulate_measurement(sm, "snake")
    reco = reconstruct_with_metadata(sm, meas, snr_thresh=10, max_freq=100e3,
                                     rec_channels=[1])
    expected = [(1, k) for k in range(sm.num_frequencies)
                if sm.snr[1, k] >= 10 and sm.frequencies[k] <= 100e3]
    assert [tuple(r) for r in reco.rows.tolist()] == expected
    assert np.array_equal(reco.frequency_indices, sm.frequency_indices[reco.rows[:, 1]])


def test_background_and_transfer_function_are_handled_alike() -> None:
    base = chebyshev_system_matrix(seed=4)
    rng = np.random.default_rng(0)
    tf = (rng.uniform(0.5, 2, base.data.shape[:2])
          * np.exp(1j * rng.uniform(-3, 3, base.data.shape[:2]))).astype(np.complex64)
    offset = (5 * (rng.standard_normal(base.data.shape[:2])
                   + 1j * rng.standard_normal(base.data.shape[:2]))).astype(np.complex64)
    phantom = make_phantom("snake", base)
    reference = reconstruct(base, simulate_measurement(base, phantom), iterations=10)
    # a raw SM: every voxel carries the background, everything multiplied by the TF
    per_voxel = (..., None, None, None)
    raw_sm = base.replace(data=(base.data + offset[per_voxel]) * tf[per_voxel],
                          background=np.stack([offset * tf] * 3), transfer_function=tf)
    corrected_sm = base.replace(background=np.stack([offset] * 3), transfer_function=tf,
                                is_background_corrected=True,
                                is_transfer_function_corrected=True)
    meas = simulate_measurement(corrected_sm, phantom, background_frames=4)
    assert not meas.is_transfer_function_corrected            # recorded through the TF
    image = reconstruct(raw_sm, meas, iterations=10)
    assert np.allclose(image, reference, atol=1e-3 * reference.max())
    # without background correction the offset spoils the image
    no_bg = reconstruct(raw_sm, meas, iterations=10, bg_correction=False)
    assert correlation(no_bg, phantom) < correlation(image, phantom) - 0.05


def test_missing_transfer_function_on_one_side_is_borrowed() -> None:
    sm = chebyshev_system_matrix()
    tf = np.full(sm.data.shape[:2], 2.0 - 1.0j, dtype=np.complex64)
    corrected = sm.replace(transfer_function=tf, is_transfer_function_corrected=True)
    meas = simulate_measurement(corrected, "dots")
    stripped = meas.replace(transfer_function=None)
    with pytest.warns(UserWarning, match="transfer function"):
        image = reconstruct(corrected, stripped, iterations=10)
    assert np.allclose(image, reconstruct(corrected, meas, iterations=10), atol=1e-4)


def test_frames_averaging_and_weighting() -> None:
    sm = chebyshev_system_matrix()
    meas = simulate_measurement(sm, "dots", noise=0.01, frames=4, background_frames=6,
                                seed=2)
    assert reconstruct(sm, meas).shape == (4, 1, 14, 16)
    averaged = reconstruct(sm, meas, num_averages=2)
    assert averaged.shape == (2, 1, 14, 16)
    by_hand = meas.replace(data=meas.data[:2].mean(axis=0, keepdims=True))
    assert np.allclose(averaged[0], reconstruct(sm, by_hand)[0], atol=1e-5)
    assert reconstruct(sm, meas, frames=[3]).shape == (1, 1, 14, 16)
    with pytest.raises(ValueError, match="num_averages"):
        reconstruct(sm, meas, num_averages=3)
    with pytest.raises(ValueError, match="frames"):
        reconstruct(sm, meas, frames=[7])
    for weighting in ("row_norm", "background", np.ones(2 * sm.num_frequencies)):
        image = reconstruct(sm, meas, frames=[0], weighting=weighting, iterations=10)
        assert correlation(image, make_phantom("dots", sm)) > 0.8
    with pytest.raises(ValueError, match="background frames"):
        reconstruct(sm, meas.replace(background=None), weighting="background")


def test_mismatched_inputs_are_refused() -> None:
    sm = chebyshev_system_matrix()
    meas = simulate_measurement(sm, "dots")
    shifted = meas.replace(frequency_indices=meas.frequency_indices + 1000)
    with pytest.raises(ValueError, match="lacks"):
        reconstruct(sm, shifted)
    one_channel = Measurement(data=meas.data[:, :1], frequencies=meas.frequencies,
                              frequency_indices=meas.frequency_indices)
    with pytest.raises(ValueError, match="receive channels"):
        reconstruct(sm, one_channel)
    with pytest.raises(ValueError, match="no rows"):
        reconstruct(sm, meas, snr_thresh=1e9)
    with pytest.raises(ValueError, match="backend"):
        reconstruct(sm, meas, backend="matlab")


@pytest.mark.skipif(pympisr.julia.available(), reason="Julia is available here")
def test_julia_backend_gives_a_clear_error_without_julia() -> None:
    sm = chebyshev_system_matrix()
    meas = simulate_measurement(sm, "dots")
    with pytest.raises(JuliaUnavailableError, match="pympisr\\[julia\\]"):
        reconstruct(sm, meas, backend="julia")


# ---------------------------------------------------------------------- NaN/Inf checks
def test_nan_in_selected_system_matrix_rows_is_reported() -> None:
    sm = chebyshev_system_matrix()
    meas = simulate_measurement(sm, "dots")
    data = sm.data.copy()
    data[0, 7, 0, 3, 3] = np.nan
    broken = sm.replace(data=data)
    with pytest.raises(ReconstructionError, match="frequency selection") as info:
        reconstruct(broken, meas)
    assert info.value.step == "frequency selection"
    assert "(channel 0, bin 8)" in str(info.value)
    # only the selected rows matter
    image = reconstruct(broken, meas, rec_channels=[1], iterations=5)
    assert np.isfinite(image).all()


@pytest.mark.parametrize("side", ["system matrix", "measurement"])
def test_transfer_function_near_zero_is_reported(side: str) -> None:
    sm = chebyshev_system_matrix()
    meas = simulate_measurement(sm, "dots")
    tf = np.ones(sm.data.shape[:2], dtype=np.complex64)
    tiny = tf.copy()
    tiny[1, 5] = 1e-44                       # a float32 denormal: division overflows
    if side == "system matrix":
        sm, meas = sm.replace(transfer_function=tiny), meas.replace(transfer_function=tf)
    else:
        sm, meas = sm.replace(transfer_function=tf), meas.replace(transfer_function=tiny)
    with pytest.raises(ReconstructionError, match="transfer function near 0") as info:
        reconstruct(sm, meas, iterations=5)
    assert info.value.step == "transfer-function correction"
    assert "(channel 1, bin 6)" in str(info.value)


def test_values_overflowing_the_solver_are_reported() -> None:
    sm = chebyshev_system_matrix()
    meas = simulate_measurement(sm, "dots")
    huge = sm.replace(data=sm.data * np.float32(1e19))   # finite, |a_i|^2 is not
    assert np.isfinite(huge.data).all()
    with pytest.raises(ReconstructionError, match="float32 range") as info:
        reconstruct(huge, meas)
    assert info.value.step == "frequency selection"
    m = 2 * sm.num_frequencies
    with pytest.raises(ReconstructionError, match="weighted squared norms") as info:
        reconstruct(sm, meas, weighting=np.full(m, 1e20))
    assert info.value.step == "row weighting"
    bad_weights = np.ones(m)
    bad_weights[3] = np.inf
    with pytest.raises(ReconstructionError, match="row weights") as info:
        reconstruct(sm, meas, weighting=bad_weights)
    assert info.value.step == "row weighting"


def test_nan_in_measurement_frames_and_background_is_reported() -> None:
    sm = chebyshev_system_matrix()
    meas = simulate_measurement(sm, "dots", frames=2, background_frames=3, noise=0.01)
    frames = meas.data.copy()
    frames[1, 0, 4] = np.inf
    with pytest.raises(ReconstructionError) as info:
        reconstruct(sm, meas.replace(data=frames))
    assert info.value.step == "frame selection/averaging"
    assert reconstruct(sm, meas.replace(data=frames), frames=[0]).shape == (1, 1, 14, 16)
    background = meas.background.copy()
    background[0, 1, 2] = np.nan
    with pytest.raises(ReconstructionError) as info:
        reconstruct(sm, meas.replace(background=background))
    assert info.value.step == "background correction"
    image = reconstruct(sm, meas.replace(background=background), bg_correction=False)
    assert np.isfinite(image).all()


class NaNSolverBackend(PythonBackend):
    """The Python backend with a solver that diverges."""

    def solve(self, S, u, params):  # noqa: ANN001, ANN201
        x = super().solve(S, u, params)
        x[3, -1] = np.nan
        return x


def test_non_finite_solver_output_is_reported() -> None:
    sm = chebyshev_system_matrix()
    meas = simulate_measurement(sm, "dots", frames=2)
    with pytest.raises(ReconstructionError, match="frames \\[1\\]") as info:
        reconstruct(sm, meas, backend=NaNSolverBackend(), iterations=2)
    assert info.value.step == "solver"
    assert isinstance(info.value, pympisr.errors.PympisrError)


# ---------------------------------------------------------------------- files, CLI
@pytest.fixture()
def mdf_pair(tmp_path):
    sm = chebyshev_system_matrix()
    sm_path = tmp_path / "sm.mdf"
    meas_path = tmp_path / "meas.mdf"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pympisr.save_system_matrix(sm, sm_path)
        meas = simulate_measurement(sm, "snake", background_frames=2, path=meas_path)
    return sm, meas, sm_path, meas_path


def test_paths_give_the_same_image_as_objects(mdf_pair) -> None:
    sm, meas, sm_path, meas_path = mdf_pair
    opts = dict(snr_thresh=5, min_freq=20e3, iterations=5)
    from_files = reconstruct_with_metadata(sm_path, meas_path, **opts)
    in_memory = reconstruct_with_metadata(sm, meas, **opts)
    assert np.array_equal(from_files.rows[:, 0], in_memory.rows[:, 0])
    assert np.array_equal(from_files.frequency_indices, in_memory.frequency_indices)
    assert np.allclose(from_files.image, in_memory.image, atol=1e-4 * in_memory.image.max())


def test_write_image_layout_and_png(tmp_path) -> None:
    sm = chebyshev_system_matrix()
    reco = reconstruct_with_metadata(sm, simulate_measurement(sm, "dots", frames=2))
    out = tmp_path / "reco.h5"
    written = write_image(reco, out)
    assert written == [out, tmp_path / "reco.h5.png"]
    assert (tmp_path / "reco.h5.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with h5py.File(out, "r") as h5:
        assert h5["/reconstruction/data"].shape == (2, 16 * 14, 1)
        assert h5["/reconstruction/size"][()].tolist() == [16, 14, 1]
        assert h5["/reconstruction/positions"].shape == (16 * 14, 3)
        # voxel order: x fastest
        data = h5["/reconstruction/data"][1, :, 0]
        assert np.array_equal(data[:16], reco.image[1, 0, 0, :])
    assert np.array_equal(read_image(out), reco.image)
    with pytest.raises(FileExistsError):
        write_image(reco, out)
    write_image(reco, out, overwrite=True)


def test_cli_reconstruct(mdf_pair, tmp_path) -> None:
    from pympisr.cli import main

    sm, meas, sm_path, meas_path = mdf_pair
    out = tmp_path / "img.h5"
    args = ["reconstruct", "--sm", str(sm_path), "--meas", str(meas_path), "--out", str(out),
            "--snr-thresh", "5", "--min-freq", "20000", "--iterations", "5",
            "--channels", "0,1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert out.exists() and (tmp_path / "img.h5.png").exists()
    expected = reconstruct(sm, meas, snr_thresh=5, min_freq=20e3, iterations=5)
    assert np.allclose(read_image(out), expected, atol=1e-4 * expected.max())
    again = CliRunner().invoke(main, args)
    assert again.exit_code != 0 and "exists" in again.output
    bad = CliRunner().invoke(main, args[:-2] + ["--channels", "x"] + ["--overwrite"])
    assert bad.exit_code != 0


def test_cli_reconstruct_refuses_a_non_finite_result(mdf_pair, tmp_path) -> None:
    from pympisr.cli import main

    sm, _, _, meas_path = mdf_pair
    huge_path = tmp_path / "huge.mdf"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pympisr.save_system_matrix(sm.replace(data=sm.data * np.float32(1e19)), huge_path)
    out = tmp_path / "nan.h5"
    result = CliRunner().invoke(main, ["reconstruct", "--sm", str(huge_path), "--meas",
                                       str(meas_path), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "reconstruction step 'frequency selection'" in result.output
    assert "Traceback" not in result.output
    assert not out.exists() and not (tmp_path / "nan.h5.png").exists()


def test_3d_reconstruction_and_figure(tmp_path) -> None:
    n = 8
    t = np.linspace(-1, 1, n + 2)[1:-1]
    theta = np.arccos(t)
    cheb = np.array([np.sin((m + 1) * theta) / np.sin(theta) for m in range(n)])   # (m, n)
    comps = np.einsum("az,by,cx->abczyx", cheb, cheb, cheb).reshape(n**3, n, n, n)
    phase = np.exp(1j * np.random.default_rng(1).uniform(0, 2 * np.pi, n**3))
    data = (comps * phase[:, None, None, None])[None].astype(np.complex64)
    sm = SystemMatrix(data=data, frequencies=np.arange(1, n**3 + 1) * 1e3, grid=(n, n, n),
                      fov=(0.02, 0.02, 0.02), frequency_indices=np.arange(1, n**3 + 1))
    phantom = make_phantom("resolution", sm)
    reco = reconstruct_with_metadata(sm, simulate_measurement(sm, phantom), iterations=10)
    assert reco.image.shape == (1, n, n, n)
    assert correlation(reco.image, phantom) >= 0.9
    paths = write_image(reco, tmp_path / "vol.h5")
    assert paths[1].stat().st_size > 1000
    assert np.array_equal(read_image(paths[0]), reco.image)
