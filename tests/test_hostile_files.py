"""Hostile and damaged inputs (issue 9): every one gives a clear MDFError, never a hang,
a huge allocation, a silent NaN or an unloadable file that validates.

Hostile files are built here with h5py; huge declared sizes use chunked datasets whose
chunks are never written, so every file stays a few KiB on disk.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from mdf_factory import make_measurement_file, make_system_matrix_file

import pympisr
from pympisr.cli import main
from pympisr.errors import MDFError, MDFWarning
from pympisr.mdf import (StoredDataset, describe, load_measurement, load_system_matrix,
                         require_regular_file, save_system_matrix, validate)

M, C, RX = "/measurement/", "/calibration/", "/acquisition/receiver/"
MiB = 1 << 20


# ---------------------------------------------------------------------- helpers
@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the block runs longer than ``seconds``."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(signum, frame):  # noqa: ARG001
        raise TimeoutError(f"still running after {seconds} s (hang)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def peak_bytes(action: Callable[[], object]) -> int:
    """Peak of the memory traced by tracemalloc (numpy arrays included) while running
    ``action``; an MDFError is the expected outcome and swallowed."""
    tracemalloc.start()
    try:
        with contextlib.suppress(MDFError):
            action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def assert_memory_bounded(path: Path, action: Callable[[], object]) -> None:
    limit = 10 * path.stat().st_size + 200 * MiB
    peak = peak_bytes(action)
    assert peak <= limit, f"peak {peak / MiB:.0f} MiB > {limit / MiB:.0f} MiB"


def replace(h5: h5py.File, field: str, value) -> None:
    if field in h5:
        del h5[field]
    h5[field] = value


def unwritten(h5: h5py.File, field: str, shape: tuple[int, ...], dtype="f8") -> None:
    """A dataset that declares ``shape`` but stores nothing (no chunk written)."""
    if field in h5:
        del h5[field]
    chunks = tuple(min(n, 1024) for n in shape)
    h5.create_dataset(field, shape=shape, dtype=dtype, chunks=chunks)


def huge_frames_file(path: Path, num_frames: int, *, measurement: bool = False) -> Path:
    """A file whose /measurement/data declares ``num_frames`` frames, with numFrames and
    /calibration/size made consistent, no background mask and no permutation."""
    if measurement:
        make_measurement_file(path, layout="fast")
    else:
        make_system_matrix_file(path, layout="fast")
    with h5py.File(path, "a") as h5:
        shape = h5[M + "data"].shape
        unwritten(h5, M + "data", (*shape[:3], num_frames), dtype="c8")
        replace(h5, "/acquisition/numFrames", np.int64(num_frames))
        for name in ("isBackgroundFrame", "framePermutation"):
            if M + name in h5:
                del h5[M + name]
        replace(h5, M + "isFramePermutation", np.int8(0))
        if not measurement:
            replace(h5, C + "size", np.array([num_frames, 1, 1], dtype=np.int64))
            del h5[C + "positions"]
    return path


# ---------------------------------------------------------------------- huge sizes
@pytest.mark.parametrize("exponent", [31, 35, 40])
@pytest.mark.parametrize("measurement", [False, True], ids=["sm", "meas"])
def test_huge_declared_frame_count_is_refused(tmp_path, exponent, measurement):
    path = huge_frames_file(tmp_path / "huge.mdf", 2 ** exponent, measurement=measurement)
    assert path.stat().st_size < 200_000
    loader = load_measurement if measurement else load_system_matrix
    with pytest.raises(MDFError) as info:
        loader(path)
    assert info.value.field == M + "data"
    assert "declares shape" in info.value.problem and "stores only" in info.value.problem
    assert any(p.startswith(M + "data: declares") for p in validate(path))
    assert "declares shape" in describe(path)["problem"]
    assert_memory_bounded(path, lambda: loader(path))


def test_huge_background_mask_is_refused(tmp_path):
    path = make_system_matrix_file(tmp_path / "mask.mdf").path
    with h5py.File(path, "a") as h5:
        unwritten(h5, M + "isBackgroundFrame", (2 ** 40,), dtype="i1")
    with pytest.raises(MDFError) as info:
        load_system_matrix(path)
    assert info.value.field == M + "isBackgroundFrame"
    assert any(p.startswith(M + "isBackgroundFrame") for p in validate(path))
    assert_memory_bounded(path, lambda: load_system_matrix(path))


@pytest.mark.parametrize("exponent", [28, 40])
def test_huge_metadata_dataset_is_referenced_not_loaded(tmp_path, exponent):
    path = make_system_matrix_file(tmp_path / "meta.mdf").path
    with h5py.File(path, "a") as h5:
        unwritten(h5, "/_custom/huge", (2 ** exponent,))
    assert path.stat().st_size < 200_000
    assert_memory_bounded(path, lambda: load_system_matrix(path))
    sm = load_system_matrix(path)
    ref = sm.metadata["/_custom/huge"]
    assert isinstance(ref, StoredDataset)
    assert ref.shape == (2 ** exponent,) and ref.name == "/_custom/huge"
    out = tmp_path / "out.mdf"
    assert_memory_bounded(path, lambda: save_system_matrix(sm, tmp_path / "out2.mdf"))
    save_system_matrix(sm, out)
    assert out.stat().st_size < 1_000_000          # copied as unwritten, not as 2+ GB
    with h5py.File(out, "r") as h5:
        assert h5["/_custom/huge"].shape == (2 ** exponent,)
    again = load_system_matrix(out)
    assert isinstance(again.metadata["/_custom/huge"], StoredDataset)
    assert validate(out) == []


def test_reference_to_vanished_source_is_dropped_with_warning(tmp_path):
    path = make_system_matrix_file(tmp_path / "meta.mdf").path
    with h5py.File(path, "a") as h5:
        unwritten(h5, "/_custom/huge", (2 ** 30,))
    sm = load_system_matrix(path)
    path.unlink()
    with pytest.warns(MDFWarning, match="not copied"):
        save_system_matrix(sm, tmp_path / "out.mdf")
    with h5py.File(tmp_path / "out.mdf", "r") as h5:
        assert "/_custom/huge" not in h5


def test_sparse_with_huge_calibration_size_is_refused(tmp_path):
    path = make_system_matrix_file(tmp_path / "sparse.mdf", layout="sparse").path
    with h5py.File(path, "a") as h5:
        replace(h5, C + "size", np.array([2 ** 20, 2 ** 20, 2 ** 10], dtype=np.int64))
    with pytest.raises(MDFError) as info:
        load_system_matrix(path)
    assert info.value.field == C + "size" and "refused" in info.value.problem
    assert validate(path)
    assert_memory_bounded(path, lambda: load_system_matrix(path))


def test_huge_sampling_points_is_refused_and_never_breaks_the_writer(tmp_path):
    path = make_system_matrix_file(tmp_path / "v.mdf", layout="frequency",
                                   frequency_selection=[1, 4, 6]).path
    with h5py.File(path, "a") as h5:
        replace(h5, RX + "numSamplingPoints", np.int64(2 ** 40))
    with pytest.raises(MDFError) as info:
        load_system_matrix(path)
    assert info.value.field == RX + "numSamplingPoints"
    assert any(p.startswith(RX + "numSamplingPoints") for p in validate(path))
    # a model whose metadata carries the absurd value still saves and reloads
    sm = pympisr.SystemMatrix(data=np.ones((1, 3, 1, 2, 2), np.complex64),
                              frequencies=np.array([1e3, 4e3, 6e3]), grid=(2, 2, 1),
                              fov=np.ones(3), frequency_indices=[1, 4, 6],
                              metadata={RX + "numSamplingPoints": np.int64(2 ** 40),
                                        RX + "bandwidth": np.float64(5e3)})
    out = save_system_matrix(sm, tmp_path / "out.mdf")
    assert_memory_bounded(path, lambda: save_system_matrix(sm, tmp_path / "o2.mdf"))
    back = load_system_matrix(out)
    np.testing.assert_allclose(back.frequencies, [1e3, 4e3, 6e3])


# ---------------------------------------------------------------------- not regular
def special_files(tmp_path: Path) -> list[Path]:
    found = [Path(p) for p in ("/dev/zero", "/dev/null") if Path(p).exists()]
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "pipe.mdf"
        os.mkfifo(fifo)
        found.append(fifo)
    found.append(tmp_path)          # a directory
    return found


def test_require_regular_file(tmp_path):
    good = make_system_matrix_file(tmp_path / "sm.mdf").path
    assert require_regular_file(str(good)) == good
    with pytest.raises(FileNotFoundError):
        require_regular_file(tmp_path / "missing.mdf")
    for special in special_files(tmp_path):
        with pytest.raises(MDFError, match="not a regular file") as info:
            require_regular_file(special)
        assert info.value.field == "/"


@pytest.mark.parametrize("action", ["load_system_matrix", "load_measurement", "validate",
                                    "describe"])
def test_special_files_are_refused_without_hanging(tmp_path, action):
    function = getattr(pympisr.mdf, action)
    for special in special_files(tmp_path):
        with deadline(20), pytest.raises(MDFError, match="not a regular file"):
            function(special)


@pytest.mark.parametrize("command", ["info", "validate"])
def test_cli_refuses_special_files(tmp_path, command):
    for special in special_files(tmp_path)[:-1]:   # click itself refuses directories
        with deadline(20):
            result = CliRunner().invoke(main, [command, str(special)])
        assert result.exit_code == 1, result.output
        assert "Error:" in result.output and "not a regular file" in result.output
        assert "Traceback" not in result.output


def test_cli_reports_mdf_errors_cleanly(tmp_path):
    path = huge_frames_file(tmp_path / "huge.mdf", 2 ** 40)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1 and "declares shape" in result.output
    result = CliRunner().invoke(main, ["info", str(path)])
    assert result.exit_code == 0 and "problem:" in result.output


# ---------------------------------------------------------------------- non-finite
def _load_strict(loader, path, **kwargs):
    """Load with numpy RuntimeWarnings turned into errors (the loaders must not emit)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        return loader(path, **kwargs)


@pytest.mark.parametrize("measurement", [False, True], ids=["sm", "meas"])
def test_background_overflow_is_refused(tmp_path, measurement):
    if measurement:
        path = make_measurement_file(tmp_path / "m.mdf", layout="frequency").path
    else:
        path = make_system_matrix_file(tmp_path / "s.mdf", layout="fast").path
    with h5py.File(path, "a") as h5:
        mask = h5[M + "isBackgroundFrame"][()].astype(bool)
        data = h5[M + "data"][()]
        frames = np.moveaxis(data, -1, 0) if not measurement else data
        frames[~mask] = 3e38
        frames[mask] = -3e38
        h5[M + "data"][...] = np.moveaxis(frames, 0, -1) if not measurement else frames
    loader = load_measurement if measurement else load_system_matrix
    with pytest.raises(MDFError) as info:
        _load_strict(loader, path, bg_correction=True)
    assert info.value.field == M + "data"
    assert "background correction produced" in info.value.problem
    assert validate(path)


def test_tiny_transfer_function_is_refused(tmp_path):
    path = make_system_matrix_file(tmp_path / "tf.mdf", transfer_function=True).path
    with h5py.File(path, "a") as h5:
        h5[RX + "transferFunction"][...] = np.complex64(1e-45)
    with pytest.raises(MDFError) as info:
        _load_strict(load_system_matrix, path)
    assert info.value.field == RX + "transferFunction"
    assert "transfer-function correction produced" in info.value.problem
    assert "division by ~0" in info.value.problem
    assert any(p.startswith(RX + "transferFunction") for p in validate(path))
    _load_strict(load_system_matrix, path, tf_correction=False)   # loads uncorrected


def test_huge_conversion_factor_is_refused(tmp_path):
    path = make_measurement_file(tmp_path / "cf.mdf", layout="frequency").path
    with h5py.File(path, "a") as h5:
        h5[RX + "dataConversionFactor"] = np.tile([1e300, 0.0], (3, 1))
    with pytest.raises(MDFError) as info:
        _load_strict(load_measurement, path)
    assert info.value.field == RX + "dataConversionFactor"
    assert "conversion factor produced" in info.value.problem
    assert validate(path)


# ---------------------------------------------------------------------- names
def add_undecodable_names(path: Path) -> None:
    with h5py.File(path, "a") as h5:
        group = h5.create_group(b"\xff\xfe")
        group["x"] = np.arange(3)
        h5.create_dataset(b"/_custom/bad\xc3(", data=np.arange(2))


def test_non_utf8_names_are_skipped_and_reported(tmp_path):
    path = make_system_matrix_file(tmp_path / "names.mdf").path
    add_undecodable_names(path)
    with pytest.warns(MDFWarning, match="not UTF-8"):
        sm = load_system_matrix(path)
    assert "/_custom/note" in sm.metadata
    assert not any("bad" in key or "\\x" in key for key in sm.metadata)
    problems = validate(path)
    assert sum("not valid UTF-8" in p for p in problems) == 3, problems
    out = save_system_matrix(sm, tmp_path / "out.mdf")
    assert validate(out) == []


def test_writer_accepts_any_str(tmp_path):
    truth = make_system_matrix_file(tmp_path / "sm.mdf")
    sm = load_system_matrix(truth.path)
    source = os.fsdecode(b"/data/caf\xe9.mdf")          # contains a lone surrogate
    sm.metadata["/_pympisr/restore/source"] = source
    sm.metadata["/_custom/" + os.fsdecode(b"k\xff")] = np.array([source], dtype=object)
    out = save_system_matrix(sm, tmp_path / "out.mdf")
    back = load_system_matrix(out)
    assert back.metadata["/_pympisr/restore/source"] == "/data/caf\\udce9.mdf"
    assert "/_custom/k\\udcff" in back.metadata


# ---------------------------------------------------------------------- validate == load
def _negative_size(h5):
    replace(h5, C + "size", np.array([-4, -3, 1], dtype=np.int64))


def _group_to_dataset(name):
    def edit(h5):
        del h5[name]
        h5[name] = np.arange(3)
    return edit


def _only_background(h5):
    h5[M + "isBackgroundFrame"][...] = 1


def _inf_factor(h5):
    h5[RX + "dataConversionFactor"] = np.tile([np.inf, 0.0], (3, 1))


def _tf_nan(h5):
    h5[RX + "transferFunction"][0, 1] = np.nan


def _bad_indices(h5):
    idx = h5[M + "subsamplingIndices"][()]
    idx[..., 0] = 0
    replace(h5, M + "subsamplingIndices", idx)


def _dangling_calibration(h5):
    del h5["/calibration"]
    h5["/calibration"] = h5py.SoftLink("/nowhere")


REFUSED = {
    "tf-nan": ("sm", _tf_nan), "negative-size": ("sm", _negative_size),
    "measurement-dataset": ("sm", _group_to_dataset("/measurement")),
    "calibration-dataset": ("sm", _group_to_dataset("/calibration")),
    "only-background": ("meas", _only_background), "inf-factor": ("meas", _inf_factor),
    "bad-sparse-indices": ("sparse", _bad_indices),
    "calibration-dangling-link": ("sm", _dangling_calibration),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_validate_reports_what_the_loader_refuses(tmp_path, case):
    base, edit = REFUSED[case]
    path = tmp_path / f"{case}.mdf"
    if base == "meas":
        make_measurement_file(path)
        loader = load_measurement
    else:
        make_system_matrix_file(path, layout="sparse" if base == "sparse" else "fast",
                                transfer_function=base == "sm")
        loader = load_system_matrix
    assert validate(path) == []
    with h5py.File(path, "a") as h5:
        edit(h5)
    with pytest.raises(MDFError) as info:
        loader(path)
    problems = validate(path)
    assert f"{info.value.field}: {info.value.problem}" in problems, problems


# ---------------------------------------------------------------------- plain arrays
def test_plain_array_system_matrix_saves_with_inferred_receiver_grid(tmp_path):
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((2, 5, 1, 3, 4)) + 1j).astype(np.complex64)
    sm = pympisr.SystemMatrix(data=data, frequencies=np.arange(5) * 1e3, grid=(4, 3, 1),
                              fov=[0.04, 0.03, 0.001], center=np.zeros(3))
    out = save_system_matrix(sm, tmp_path / "plain.mdf")
    back = load_system_matrix(out)
    np.testing.assert_allclose(back.frequencies, np.arange(5) * 1e3)
    np.testing.assert_array_equal(back.frequency_indices, np.arange(5))
    np.testing.assert_array_equal(back.data, data)
    with h5py.File(out, "r") as h5:
        assert h5[RX + "numSamplingPoints"][()] == 8
        assert h5[RX + "bandwidth"][()] == pytest.approx(4e3)


def test_plain_array_subset_and_unplaceable_frequencies(tmp_path):
    data = np.ones((1, 3, 1, 2, 2), np.complex64)
    sm = pympisr.SystemMatrix(data=data, frequencies=[3e3, 5e3, 9e3], grid=(2, 2, 1),
                              fov=np.ones(3))
    back = load_system_matrix(save_system_matrix(sm, tmp_path / "sub.mdf"))
    np.testing.assert_array_equal(back.frequency_indices, [3, 5, 9])
    np.testing.assert_allclose(back.frequencies, [3e3, 5e3, 9e3])
    odd = sm.replace(frequencies=[1e3, np.pi * 1e3, 2e3])
    with pytest.raises(ValueError, match="frequency_indices"):
        save_system_matrix(odd, tmp_path / "odd.mdf")
