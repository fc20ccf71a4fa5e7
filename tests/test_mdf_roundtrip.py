"""Reading every MDF layout, the MPIFiles processing rules, and load -> save -> load."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from mdf_factory import (LAYOUTS, make_measurement_file, make_system_matrix_file,
                         metadata_equal)

import pympisr
from pympisr.mdf import validate

CASES = [(layout, permute) for layout in LAYOUTS for permute in (True, False)
         if not (layout == "sparse" and not permute)]


def _expected(truth, bins=None):
    """Ground-truth SM (C, K, Nz, Ny, Nx) at ``bins`` (default: stored bins)."""
    bins = truth.stored_bins if bins is None else np.asarray(bins)
    nx, ny, nz = truth.grid
    fg = truth.foreground[:, :, bins]                       # (O, C, K)
    return np.moveaxis(fg, 0, -1).reshape(fg.shape[1], bins.size, nz, ny, nx)


def _tolerance(layout):
    return 1e-4 if layout in ("time", "time_fast", "sparse") else 1e-6


@pytest.mark.parametrize("layout,permute", CASES)
def test_every_layout_reads_the_ground_truth(tmp_path, layout, permute):
    truth = make_system_matrix_file(tmp_path / "sm.mdf", layout=layout, permute=permute)
    sm = pympisr.load_system_matrix(truth.path, bg_correction=False, tf_correction=False)
    assert sm.data.dtype == np.complex64
    assert sm.grid == truth.grid
    np.testing.assert_allclose(sm.data, _expected(truth), atol=_tolerance(layout))
    np.testing.assert_allclose(sm.background, truth.background, atol=_tolerance(layout))
    np.testing.assert_array_equal(sm.frequency_indices, truth.stored_bins)
    np.testing.assert_allclose(sm.frequencies, truth.frequencies[truth.stored_bins])
    np.testing.assert_allclose(sm.snr, truth.snr[0], rtol=1e-6)
    assert not sm.is_background_corrected


@pytest.mark.parametrize("layout,permute", CASES)
def test_round_trip_is_identical(tmp_path, layout, permute):
    truth = make_system_matrix_file(tmp_path / "sm.mdf", layout=layout, permute=permute,
                                    transfer_function=True)
    first = pympisr.load_system_matrix(truth.path)
    out = pympisr.save_system_matrix(first, tmp_path / "copy.mdf")
    assert validate(out) == []
    second = pympisr.load_system_matrix(out)
    np.testing.assert_array_equal(second.data, first.data)
    np.testing.assert_array_equal(second.background, first.background)
    np.testing.assert_array_equal(second.snr, first.snr)
    np.testing.assert_array_equal(second.transfer_function, first.transfer_function)
    np.testing.assert_array_equal(second.frequency_indices, first.frequency_indices)
    np.testing.assert_allclose(second.frequencies, first.frequencies, rtol=1e-12)
    np.testing.assert_array_equal(second.fov, first.fov)
    np.testing.assert_array_equal(second.center, first.center)
    assert second.grid == first.grid
    assert second.is_background_corrected and second.is_transfer_function_corrected
    assert metadata_equal(first.metadata, second.metadata) == []
    assert "/scanner/name" in second.metadata and "/_custom/note" in second.metadata


def test_uncorrected_round_trip_keeps_acquisition_order(tmp_path):
    truth = make_system_matrix_file(tmp_path / "sm.mdf", background_frames=6,
                                    background_blocks=3)
    raw = pympisr.load_system_matrix(truth.path, bg_correction=False)
    out = pympisr.save_system_matrix(raw, tmp_path / "raw.mdf")
    corrected_direct = pympisr.load_system_matrix(truth.path)
    corrected_later = pympisr.load_system_matrix(out)
    np.testing.assert_allclose(corrected_later.data, corrected_direct.data, atol=1e-6)


@pytest.mark.parametrize("layout", ["fast", "frequency", "time", "sparse"])
def test_frequency_subset_matches_full_load(tmp_path, layout):
    truth = make_system_matrix_file(tmp_path / "sm.mdf", layout=layout)
    full = pympisr.load_system_matrix(truth.path)
    wanted = [9, 2, 3, 16, 0]
    part = pympisr.load_system_matrix(truth.path, frequencies=wanted)
    np.testing.assert_allclose(part.data, full.data[:, wanted], atol=1e-6)
    np.testing.assert_allclose(part.snr, full.snr[:, wanted])
    np.testing.assert_array_equal(part.frequency_indices, wanted)
    np.testing.assert_allclose(part.background, full.background[:, :, wanted], atol=1e-6)


def test_frequency_selection_files(tmp_path):
    bins = [1, 2, 5, 8, 13]
    truth = make_system_matrix_file(tmp_path / "sel.mdf", frequency_selection=bins,
                                    transfer_function=True)
    sm = pympisr.load_system_matrix(truth.path, bg_correction=False, tf_correction=False)
    np.testing.assert_array_equal(sm.frequency_indices, bins)
    np.testing.assert_allclose(sm.data, _expected(truth), atol=1e-6)
    part = pympisr.load_system_matrix(truth.path, frequencies=[8, 2], bg_correction=False,
                                      tf_correction=False)
    np.testing.assert_allclose(part.data, _expected(truth, [8, 2]), atol=1e-6)
    with pytest.raises(ValueError, match="not stored"):
        pympisr.load_system_matrix(truth.path, frequencies=[3])
    corrected = pympisr.load_system_matrix(truth.path, bg_correction=False)
    np.testing.assert_allclose(corrected.data,
                               sm.data / truth.transfer_function[:, bins][:, :, None, None, None],
                               rtol=1e-5)
    out = pympisr.save_system_matrix(corrected, tmp_path / "copy.mdf")
    assert validate(out) == []
    again = pympisr.load_system_matrix(out, bg_correction=False)
    np.testing.assert_array_equal(again.data, corrected.data)
    np.testing.assert_array_equal(again.frequency_indices, bins)


def _mpifiles_background(truth):
    """MPIFiles' SM background rule written out literally (1-based indices as in Julia)."""
    bg = truth.background                                   # acquisition order
    times = truth.background_time
    rows = bg.copy()
    start = 0
    while start < len(times):
        stop = start + 1
        while stop < len(times) and times[stop] == times[stop - 1] + 1:
            stop += 1
        rows[start:stop] = bg[start:stop].mean(axis=0)
        start = stop
    n_total = len(truth.foreground_time) + len(times)
    n_bg = len(times)
    out = np.empty_like(truth.foreground)
    for m, t in enumerate(truth.foreground_time):
        alpha = (t + 1 - 1) / (n_total - 1) * (n_bg - 1) + 1
        lo = int(np.floor(alpha))
        hi = min(lo + 1, n_bg)
        w = alpha - lo
        out[m] = truth.foreground[m] - ((1 - w) * rows[lo - 1] + w * rows[hi - 1])
    return out


@pytest.mark.parametrize("blocks,frames", [(1, 3), (2, 4), (3, 6), (5, 5)])
def test_background_correction_follows_mpifiles(tmp_path, blocks, frames):
    truth = make_system_matrix_file(tmp_path / "sm.mdf", background_frames=frames,
                                    background_blocks=blocks, permute=blocks != 3)
    sm = pympisr.load_system_matrix(truth.path)
    assert sm.is_background_corrected
    expected = _mpifiles_background(truth)
    np.testing.assert_allclose(
        sm.data, np.moveaxis(expected, 0, -1).reshape(sm.data.shape), atol=1e-5)


def test_background_already_corrected_is_left_alone(tmp_path):
    truth = make_system_matrix_file(tmp_path / "sm.mdf", bg_corrected=True)
    sm = pympisr.load_system_matrix(truth.path)
    np.testing.assert_allclose(sm.data, _expected(truth), atol=1e-6)
    assert sm.is_background_corrected


def test_transfer_function_rules(tmp_path):
    truth = make_system_matrix_file(tmp_path / "tf.mdf", transfer_function=True)
    raw = pympisr.load_system_matrix(truth.path, bg_correction=False, tf_correction=False)
    auto = pympisr.load_system_matrix(truth.path, bg_correction=False)
    assert auto.is_transfer_function_corrected and not raw.is_transfer_function_corrected
    tf = truth.transfer_function[:, truth.stored_bins]
    np.testing.assert_allclose(auto.data, raw.data / tf[:, :, None, None, None], rtol=1e-5)
    np.testing.assert_allclose(auto.background, raw.background / tf[None], rtol=1e-5)
    np.testing.assert_allclose(auto.transfer_function, tf, rtol=1e-6)
    plain = make_system_matrix_file(tmp_path / "plain.mdf")
    assert not pympisr.load_system_matrix(plain.path).is_transfer_function_corrected
    with pytest.raises(pympisr.MDFError, match="transferFunction"):
        pympisr.load_system_matrix(plain.path, tf_correction=True)
    done = make_system_matrix_file(tmp_path / "done.mdf", transfer_function=True,
                                   tf_corrected=True)
    sm = pympisr.load_system_matrix(done.path, bg_correction=False, tf_correction=True)
    np.testing.assert_allclose(sm.data, _expected(done), atol=1e-6)


@pytest.mark.parametrize("quirk", [{"bools": "uint8"}, {"bools": "bool"}, {"bools": "enum"},
                                   {"strings": "fixed"}, {"strings": "array"},
                                   {"legacy": True}])
def test_quirks_read_like_the_standard(tmp_path, quirk):
    reference = make_system_matrix_file(tmp_path / "ref.mdf")
    odd = make_system_matrix_file(tmp_path / "odd.mdf", **quirk)
    a = pympisr.load_system_matrix(reference.path)
    b = pympisr.load_system_matrix(odd.path)
    np.testing.assert_array_equal(a.data, b.data)
    assert b.metadata["/scanner/name"] == "unit scanner"
    assert b.metadata["/experiment/isSimulation"] == 0
    assert b.metadata["/experiment/isSimulation"].dtype == np.int8
    if quirk.get("legacy") or quirk.get("bools", "int8") != "int8":
        assert validate(odd.path) != []


def test_second_period(tmp_path):
    truth = make_system_matrix_file(tmp_path / "j2.mdf", periods=2)
    sm = pympisr.load_system_matrix(truth.path, bg_correction=False, period=1)
    fg = truth.extra["periods_fg"][:, 1]
    np.testing.assert_allclose(sm.data, np.moveaxis(fg, 0, -1).reshape(sm.data.shape),
                               atol=1e-6)
    np.testing.assert_allclose(sm.snr, truth.snr[1], rtol=1e-6)
    with pytest.raises(ValueError, match="period"):
        pympisr.load_system_matrix(truth.path, period=2)


@pytest.mark.parametrize("layout", ["frequency", "fast", "pairs", "time", "time_fast"])
def test_measurement_layouts_and_round_trip(tmp_path, layout):
    truth = make_measurement_file(tmp_path / "meas.mdf", layout=layout,
                                  transfer_function=True)
    meas = pympisr.load_measurement(truth.path, tf_correction=False)
    tol = _tolerance(layout)
    np.testing.assert_allclose(meas.data, truth.foreground, atol=tol)
    np.testing.assert_allclose(meas.background, truth.background, atol=tol)
    assert meas.num_averages == 10
    corrected = pympisr.load_measurement(truth.path, bg_correction=True, tf_correction=False)
    np.testing.assert_allclose(corrected.data,
                               truth.foreground - truth.background.mean(axis=0), atol=tol)
    full = pympisr.load_measurement(truth.path)
    out = pympisr.save_measurement(full, tmp_path / "copy.mdf")
    assert validate(out) == []
    again = pympisr.load_measurement(out)
    np.testing.assert_array_equal(again.data, full.data)
    np.testing.assert_array_equal(again.background, full.background)
    assert again.num_averages == full.num_averages
    assert metadata_equal(full.metadata, again.metadata) == []


def test_measurement_without_background_warns_on_request(tmp_path):
    truth = make_measurement_file(tmp_path / "m.mdf", background_frames=0)
    with pytest.warns(pympisr.mdf.MDFWarning, match="no background"):
        meas = pympisr.load_measurement(truth.path, bg_correction=True)
    assert meas.background is None and not meas.is_background_corrected


def test_simulated_system_matrix_saves_valid_mdf(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.standard_normal((3, 9, 1, 5, 6)) + 1j * rng.standard_normal((3, 9, 1, 5, 6))
    bins = np.arange(2, 11)
    sm = pympisr.SystemMatrix(data=data, frequencies=bins * 2.5e6 / 100, grid=(6, 5, 1),
                              fov=[0.03, 0.025, 0.001], snr=np.ones((3, 9)),
                              frequency_indices=bins,
                              metadata={"/_pympisr/params": "seed=3"})
    out = pympisr.save_system_matrix(sm, tmp_path / "sim.mdf")
    assert validate(out) == []
    back = pympisr.load_system_matrix(out)
    np.testing.assert_array_equal(back.data, sm.data)
    np.testing.assert_allclose(back.frequencies, sm.frequencies, rtol=1e-12)
    assert back.metadata["/_pympisr/params"] == "seed=3"
    assert back.metadata["/experiment/isSimulation"] == 1
    assert back.metadata["/calibration/method"] == "simulation"


def test_template_supplies_metadata(tmp_path):
    source = make_system_matrix_file(tmp_path / "measured.mdf")
    measured = pympisr.load_system_matrix(source.path)
    bare = pympisr.SystemMatrix(data=measured.data * 2, frequencies=measured.frequencies,
                                grid=measured.grid, fov=measured.fov,
                                frequency_indices=measured.frequency_indices)
    out = pympisr.save_system_matrix(bare, tmp_path / "restored.mdf", template=source.path)
    assert validate(out) == []
    back = pympisr.load_system_matrix(out)
    for key in ("/scanner/name", "/study/uuid", "/acquisition/drivefield/divider",
                "/tracer/name", "/calibration/positions"):
        assert metadata_equal({key: back.metadata[key]}, {key: measured.metadata[key]}) == []
    np.testing.assert_array_equal(back.data, bare.data)


def test_unknown_backend_and_bad_frequencies(tmp_path):
    truth = make_system_matrix_file(tmp_path / "sm.mdf")
    with pytest.raises(ValueError, match="backend"):
        pympisr.load_system_matrix(truth.path, backend="fortran")
    with pytest.raises(ValueError, match="outside"):
        pympisr.load_system_matrix(truth.path, frequencies=[17])
    with pytest.raises(ValueError, match="repeated"):
        pympisr.load_system_matrix(truth.path, frequencies=[1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pympisr.load_system_matrix(truth.path, frequencies=np.array([1, 2], dtype=np.uint8))


def test_julia_backend_dispatches_lazily(tmp_path, monkeypatch):
    import sys
    import types

    calls = []
    fake = types.ModuleType("pympisr.julia")
    fake.load_system_matrix = lambda path, **kw: calls.append(("sm", path, kw)) or "SM"
    fake.load_measurement = lambda path, **kw: calls.append(("meas", path, kw)) or "MEAS"
    monkeypatch.setitem(sys.modules, "pympisr.julia", fake)
    monkeypatch.setattr(pympisr, "julia", fake, raising=False)
    assert pympisr.load_system_matrix("a.mdf", frequencies=[1, 2], backend="julia") == "SM"
    assert pympisr.load_measurement("b.mdf", bg_correction=True, backend="julia") == "MEAS"
    assert calls == [
        ("sm", "a.mdf", {"frequencies": [1, 2], "bg_correction": True, "tf_correction": None}),
        ("meas", "b.mdf", {"frequencies": None, "bg_correction": True, "tf_correction": None}),
    ]
    with pytest.raises(ValueError, match="period"):
        pympisr.load_system_matrix("a.mdf", backend="julia", period=1)
