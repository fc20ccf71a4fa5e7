"""Mutated MDF files: only MDFError (or MDFWarning) may come out, inputs stay untouched.

The corpus is generated here from the factory's valid files: truncations, deleted
fields and groups, changed dtypes, inconsistent shapes and sizes, NaN/Inf injection,
broken links and random byte flips; mutations that do not apply to a source (deleting
a field it lacks) are skipped. For every case ``load_system_matrix`` /
``load_measurement`` and ``validate`` run (``describe`` on every other case); loads
must succeed or raise :class:`pympisr.MDFError` (warnings only :class:`MDFWarning`),
``validate`` must return a list (with at least one problem whenever the load raised
MDFError), and neither the mutated file nor its source may change.
"""

from __future__ import annotations

import hashlib
import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from mdf_factory import FUZZ_BASES

import pympisr
from pympisr.mdf import MDFWarning, describe, validate

M, A, C, RX = "/measurement/", "/acquisition/", "/calibration/", "/acquisition/receiver/"

BASES = {name: FUZZ_BASES[name]
         for name in ("fast", "time", "sparse", "selection", "meas")}
FIELDS = [M + "data", M + "isFourierTransformed", M + "isFastFrameAxis",
          M + "isBackgroundFrame", M + "isFramePermutation", M + "framePermutation",
          M + "isFrequencySelection", M + "frequencySelection", M + "isBackgroundCorrected",
          M + "isTransferFunctionCorrected", M + "subsamplingIndices",
          M + "sparsityTransformation", M + "isSparsityTransformed",
          RX + "bandwidth", RX + "numSamplingPoints", RX + "numChannels",
          RX + "transferFunction", A + "numFrames", A + "numPeriodsPerFrame",
          C + "size", C + "fieldOfView", C + "snr", C + "order", "/version",
          "/measurement", "/calibration", "/acquisition", "/acquisition/receiver"]
RETYPE_FIELDS = [M + "data", M + "isFourierTransformed", M + "isBackgroundFrame",
                 M + "framePermutation", M + "frequencySelection", M + "subsamplingIndices",
                 RX + "bandwidth", RX + "numSamplingPoints", RX + "transferFunction",
                 C + "size", C + "fieldOfView", C + "snr", A + "numFrames"]
REPLACEMENTS = {"text": "garbage", "float": np.array([0.5, 1.5]), "empty": np.zeros((0,)),
                "scalar": np.int64(-3), "complex": np.array([1 + 2j])}
TRUNCATE = [0.0, 0.05, 0.3, 0.7, 0.999]


def _cases() -> list[tuple[str, str, object]]:
    cases: list[tuple[str, str, object]] = []
    for base in BASES:
        cases += [(base, "truncate", f) for f in TRUNCATE]
        cases += [(base, "delete", field) for field in FIELDS]
        cases += [(base, "flip", seed) for seed in range(3)]
        cases += [(base, "nan", where) for where in ("data-nan", "data-inf", "tf-nan")]
    for base in ("fast", "sparse", "selection"):
        cases += [(base, "retype", (field, kind)) for field in RETYPE_FIELDS
                  for kind in REPLACEMENTS if base == "fast" or kind == "float"]
    for base in ("fast", "time", "sparse", "selection", "meas"):
        cases += [(base, "inconsistent", what) for what in (
            "numFrames", "numChannels", "numSamplingPoints", "size", "bgmask-short",
            "perm-duplicate", "selection-zero", "selection-high", "subsampling-high",
            "snr-shape", "tf-shape", "drop-frame", "periods", "order", "bandwidth-zero",
            "fov-nan", "snr-nan", "all-background", "meander", "transform-name")]
        cases += [(base, "structure", what) for what in (
            "measurement-dataset", "data-group", "dangling-link", "external-link",
            "data-5d-odd", "data-string")]
    return cases


CASES = _cases()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz_bases")
    made = {name: build(folder / f"{name}.mdf").path for name, build in BASES.items()}
    digests = {name: _digest(path) for name, path in made.items()}
    yield made
    for name, path in made.items():
        assert _digest(path) == digests[name], f"source file {name} was modified"


def _replace(h5: h5py.File, field: str, value) -> None:
    if field in h5:
        del h5[field]
    if isinstance(value, str):
        h5.create_dataset(field, data=value, dtype=h5py.string_dtype())
    else:
        h5[field] = value


def _edit(h5: h5py.File, what: str) -> bool:
    """Make one size/shape/value inconsistent; False if it does not apply to this file."""
    def bump(field, delta=1):
        if field not in h5:
            return False
        _replace(h5, field, np.int64(int(h5[field][()]) + delta))
        return True

    if what == "numFrames":
        return bump(A + "numFrames")
    if what == "numChannels":
        return bump(RX + "numChannels")
    if what == "numSamplingPoints":
        return bump(RX + "numSamplingPoints", 16)
    if what == "size":
        _replace(h5, C + "size", np.array([5, 3, 1]))
    elif what == "bgmask-short":
        _replace(h5, M + "isBackgroundFrame", h5[M + "isBackgroundFrame"][:-1])
    elif what == "perm-duplicate" and M + "framePermutation" in h5:
        perm = h5[M + "framePermutation"][()]
        perm[0] = perm[1]
        _replace(h5, M + "framePermutation", perm)
    elif what == "selection-zero" and M + "frequencySelection" in h5:
        sel = h5[M + "frequencySelection"][()]
        sel[0] = 0
        _replace(h5, M + "frequencySelection", sel)
    elif what == "selection-high":
        h5[M + "isFrequencySelection"][()] = 1
        k = h5[M + "data"].shape[-1 if not h5[M + "isFastFrameAxis"][()] else 2]
        _replace(h5, M + "frequencySelection", np.arange(k, dtype=np.int64) + 100)
    elif what == "subsampling-high" and M + "subsamplingIndices" in h5:
        idx = h5[M + "subsamplingIndices"][()]
        idx[..., 0] = 10_000
        _replace(h5, M + "subsamplingIndices", idx)
    elif what == "snr-shape" and C + "snr" in h5:
        _replace(h5, C + "snr", np.ones((1, 2, 3)))
    elif what == "tf-shape" and RX + "transferFunction" in h5:
        _replace(h5, RX + "transferFunction", np.ones((7, 3), dtype=np.complex64))
    elif what == "drop-frame":
        data = h5[M + "data"][()]
        fast = bool(h5[M + "isFastFrameAxis"][()])
        _replace(h5, M + "data", data[..., :-1] if fast else data[:-1])
    elif what == "periods":
        _replace(h5, A + "numPeriodsPerFrame", np.int64(2))
    elif what == "order":
        _replace(h5, C + "order", "zyx")
    elif what == "bandwidth-zero":
        _replace(h5, RX + "bandwidth", np.float64(0.0))
    elif what == "fov-nan" and C + "fieldOfView" in h5:
        _replace(h5, C + "fieldOfView", np.array([np.nan, 1.0, 1.0]))
    elif what == "snr-nan" and C + "snr" in h5:
        snr = h5[C + "snr"][()]
        snr[..., 0] = np.nan
        _replace(h5, C + "snr", snr)
    elif what == "all-background":
        _replace(h5, M + "isBackgroundFrame", np.ones(h5[M + "isBackgroundFrame"].shape,
                                                    dtype=np.int8))
    elif what == "meander":
        _replace(h5, C + "isMeanderingGrid", np.int8(1))
        _replace(h5, M + "isFramePermutation", np.int8(0))
    elif what == "transform-name" and M + "sparsityTransformation" in h5:
        _replace(h5, M + "sparsityTransformation", "wavelet")
    else:
        return False
    return True


def _structure(h5: h5py.File, what: str) -> bool:
    if what == "measurement-dataset":
        del h5["/measurement"]
        h5["/measurement"] = np.arange(4)
    elif what == "data-group":
        del h5[M + "data"]
        h5.create_group(M + "data")
    elif what == "dangling-link":
        del h5[M + "data"]
        h5[M + "data"] = h5py.SoftLink("/nowhere/data")
    elif what == "external-link":
        del h5[M + "data"]
        h5[M + "data"] = h5py.ExternalLink("missing_file.h5", "/data")
    elif what == "data-5d-odd":
        shape = h5[M + "data"].shape
        del h5[M + "data"]
        h5[M + "data"] = np.zeros((*shape[:4], 3), dtype=np.float32)
    elif what == "data-string":
        shape = h5[M + "data"].shape
        del h5[M + "data"]
        h5.create_dataset(M + "data", shape=shape, dtype=h5py.string_dtype())
    return True


def _mutate(source: Path, target: Path, kind: str, arg) -> bool:
    """Write the mutated copy; False if the mutation does not apply to this source."""
    if kind == "truncate":
        raw = source.read_bytes()
        target.write_bytes(raw[:int(len(raw) * arg)])
        return True
    if kind == "flip":
        raw = bytearray(source.read_bytes())
        rng = np.random.default_rng(arg)
        for pos in rng.integers(0, len(raw), 64):
            raw[pos] ^= 0xFF
        target.write_bytes(bytes(raw))
        return True
    shutil.copyfile(source, target)
    with h5py.File(target, "a") as h5:
        if kind == "delete":
            if arg not in h5:
                return False
            del h5[arg]
        elif kind == "retype":
            field, style = arg
            if field not in h5:
                return False
            _replace(h5, field, REPLACEMENTS[style])
        elif kind == "nan":
            if arg == "tf-nan":
                if RX + "transferFunction" not in h5:
                    return False
                tf = h5[RX + "transferFunction"][()]
                tf[:] = np.nan
                _replace(h5, RX + "transferFunction", tf)
            else:
                ds = h5[M + "data"]
                ds[(0,) * ds.ndim] = np.nan if arg == "data-nan" else np.inf
        elif kind == "inconsistent":
            return _edit(h5, arg)
        else:
            return _structure(h5, arg)
    return True


def _other_kind(path: Path, refused: pympisr.MDFError) -> bool:
    """The load was refused because the file is a valid MDF of another kind: no
    /measurement at all (metadata only) or no /calibration (a measurement, not an SM)."""
    with h5py.File(path, "r") as h5:
        return refused.field in ("/measurement", "/calibration") and refused.field not in h5


def _check_case(target: Path, loader, summarise: bool) -> list[str]:
    """Run the readers on one mutated file; return what went wrong (empty = fine).

    ``describe`` (pympisr info) runs only when ``summarise`` (every other case, to keep
    the test short).
    """
    wrong: list[str] = []
    before = _digest(target)
    refused = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            loader(target)
        except pympisr.MDFError as exc:
            refused = exc
            if exc.path != str(target) or not exc.field or not exc.problem:
                wrong.append(f"incomplete MDFError {exc!r}")
        except Exception as exc:  # noqa: BLE001 - this is what the test looks for
            wrong.append(f"load raised {type(exc).__name__}: {exc}")
        try:
            problems = validate(target)
            if not isinstance(problems, list):
                wrong.append("validate did not return a list")
            elif refused is not None and not problems and not _other_kind(target, refused):
                wrong.append(f"validate reports no problem, the load refused: {refused}")
        except Exception as exc:  # noqa: BLE001
            wrong.append(f"validate raised {type(exc).__name__}: {exc}")
        try:
            if summarise:
                describe(target)
        except pympisr.MDFError:
            pass
        except Exception as exc:  # noqa: BLE001
            wrong.append(f"describe raised {type(exc).__name__}: {exc}")
    wrong += [f"unexpected warning {w.category.__name__}: {w.message}" for w in caught
              if not issubclass(w.category, MDFWarning)]
    if _digest(target) != before:
        wrong.append("the file was modified")
    return wrong


def test_mutated_files_give_only_mdf_errors(bases, tmp_path):
    failures: list[str] = []
    applied = 0
    for number, (base, kind, arg) in enumerate(CASES):
        target = tmp_path / f"case{number}.mdf"
        if not _mutate(bases[base], target, kind, arg):
            target.unlink()
            continue
        applied += 1
        loader = pympisr.load_measurement if base == "meas" else pympisr.load_system_matrix
        failures += [f"{base}/{kind}/{arg}: {problem}"
                     for problem in _check_case(target, loader, applied % 2 == 0)]
        if kind in ("truncate", "nan") and arg != "tf-nan" and not validate(target):
            failures.append(f"{base}/{kind}/{arg}: damaged file validates")
        target.unlink()
    print(f"fuzz corpus: {applied} mutated files, {len(failures)} failures")
    assert applied >= 200
    assert failures == []
