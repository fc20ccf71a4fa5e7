"""Check an MDF file against the MDF v2 specification.

:func:`validate` lists every departure it finds as ``"<field>: <problem>"`` strings:
missing mandatory groups and fields (v2.1.0 lists, as in MPIFiles.jl's
``MDFv2InMemory``), wrong types (strings, Int64, Float64, int8 booleans), legacy field
names, inconsistent sizes (frames, channels, periods, K against V, calibration size
against foreground frames, SNR and transfer-function shapes), bad flags, frame
permutations and frequency selections, and NaN/Inf in the data. An empty list means
the file is valid. The file is only read.

So that a file ``validate`` accepts always loads, it also runs the real loader
(:func:`~pympisr.mdf.load_system_matrix` when the file has ``/calibration``, else
:func:`~pympisr.mdf.load_measurement`, with background correction) over every period
and, in blocks of about 64 MiB, over every stored frequency, and reports the loader's
:class:`~pympisr.errors.MDFError` if there is one: both share one set of checks and
cannot drift apart (this reads the data about twice). Objects whose names are not
UTF-8 (which the loaders skip) and soft or external links (which pympisr never follows)
are reported too. A path that is not a regular file raises MDFError (as a missing file
raises FileNotFoundError) instead of giving a list.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable

import h5py
import numpy as np

from ..errors import MDFError
from .layout import DATA, Layout, parse_layout
from .quirks import LEGACY_NAMES, FieldReader
from .reader import load_measurement, load_system_matrix, open_mdf
from .safety import count_product, require_regular_file, storage_problem

__all__ = ["validate"]

STR, INT, FLOAT, BOOL, NUMBER = "string", "Int64", "Float64", "Int8 boolean", "number"

MANDATORY: dict[str, str] = {
    "/version": STR, "/uuid": STR, "/time": STR,
    "/study/name": STR, "/study/number": INT, "/study/uuid": STR, "/study/description": STR,
    "/experiment/name": STR, "/experiment/number": INT, "/experiment/uuid": STR,
    "/experiment/description": STR, "/experiment/subject": STR,
    "/experiment/isSimulation": BOOL,
    "/scanner/facility": STR, "/scanner/operator": STR, "/scanner/manufacturer": STR,
    "/scanner/name": STR, "/scanner/topology": STR,
    "/acquisition/startTime": STR, "/acquisition/numAverages": INT,
    "/acquisition/numFrames": INT, "/acquisition/numPeriodsPerFrame": INT,
    "/acquisition/drivefield/numChannels": INT, "/acquisition/drivefield/strength": FLOAT,
    "/acquisition/drivefield/phase": FLOAT, "/acquisition/drivefield/baseFrequency": FLOAT,
    "/acquisition/drivefield/divider": INT, "/acquisition/drivefield/waveform": STR,
    "/acquisition/drivefield/cycle": FLOAT,
    "/acquisition/receiver/numChannels": INT, "/acquisition/receiver/bandwidth": FLOAT,
    "/acquisition/receiver/numSamplingPoints": INT, "/acquisition/receiver/unit": STR,
}
TRACER: dict[str, str] = {
    "/tracer/name": STR, "/tracer/batch": STR, "/tracer/vendor": STR,
    "/tracer/volume": FLOAT, "/tracer/concentration": FLOAT, "/tracer/solute": STR,
}
MEASUREMENT: dict[str, str] = {
    "/measurement/data": NUMBER,
    **{f"/measurement/{flag}": BOOL for flag in (
        "isBackgroundCorrected", "isFastFrameAxis", "isFourierTransformed",
        "isFramePermutation", "isFrequencySelection", "isSparsityTransformed",
        "isSpectralLeakageCorrected", "isTransferFunctionCorrected", "isBackgroundFrame")},
}
CALIBRATION: dict[str, str] = {"/calibration/method": STR}
OPTIONAL: dict[str, str] = {
    "/tracer/injectionTime": STR, "/scanner/boreSize": FLOAT, "/study/time": STR,
    "/acquisition/gradient": FLOAT, "/acquisition/offsetField": FLOAT,
    "/acquisition/receiver/dataConversionFactor": NUMBER,
    "/acquisition/receiver/inductionFactor": FLOAT,
    "/measurement/framePermutation": INT, "/measurement/frequencySelection": INT,
    "/measurement/subsamplingIndices": INT, "/measurement/sparsityTransformation": STR,
    "/calibration/size": INT, "/calibration/fieldOfView": FLOAT,
    "/calibration/fieldOfViewCenter": FLOAT, "/calibration/snr": FLOAT,
    "/calibration/order": STR, "/calibration/positions": FLOAT,
    "/calibration/deltaSampleSize": FLOAT, "/calibration/offsetFields": FLOAT,
    "/calibration/isMeanderingGrid": BOOL,
}
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}$")
_FINITE_BLOCK_BYTES = 64 << 20
_LOAD_BLOCK_BYTES = 64 << 20
_READ_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError,
                AttributeError)


def _type_problem(ds: h5py.Dataset, kind: str) -> str | None:
    dtype = ds.dtype
    is_string = h5py.check_string_dtype(dtype) is not None or dtype.kind == "S"
    if kind == STR:
        if is_string:
            return None
        if dtype.kind == "O":
            return None  # object arrays of strings (read and checked by value elsewhere)
        return f"expected a string, found {dtype}"
    if kind == BOOL:
        if h5py.check_enum_dtype(dtype) is not None:
            return "boolean stored as an HDF5 enum; the spec requires int8"
        if dtype == np.int8:
            return None
        return f"boolean stored as {dtype}; the spec requires int8"
    if kind == INT:
        return None if dtype.kind in "iu" else f"expected an integer, found {dtype}"
    if kind == FLOAT:
        return None if dtype.kind == "f" else f"expected Float64, found {dtype}"
    if dtype.kind in "iufc" or (dtype.kind == "V" and dtype.names == ("r", "i")):
        return None
    return f"expected numbers, found {dtype}"


class _Checker:
    def __init__(self, reader: FieldReader) -> None:
        self.reader = reader
        self.problems: list[str] = []

    def add(self, field: str, problem: str) -> None:
        self.problems.append(f"{field}: {problem}")

    def attempt(self, check: Callable[[], None]) -> None:
        """Run a check; MDFErrors become problems, other read failures too."""
        try:
            check()
        except MDFError as exc:
            self.add(exc.field, exc.problem)
        except _READ_ERRORS as exc:
            self.add("/", f"unreadable ({type(exc).__name__}: {exc})")

    def fields(self, table: dict[str, str], *, mandatory: bool) -> None:
        for field, kind in table.items():
            name = self.reader.resolve(field)
            if name is None:
                if mandatory:
                    self.add(field, "missing mandatory field")
                continue
            if name != field:
                self.add(name, f"legacy field name; MDF 2.1 calls it {field}")
            try:
                ds = self.reader.dataset(field)
            except MDFError as exc:
                self.add(exc.field, exc.problem)
                continue
            problem = _type_problem(ds, kind) or storage_problem(ds)
            if problem:
                self.add(name, problem)
            elif kind == BOOL:
                values = np.asarray(ds[()])
                if not np.all((values == 0) | (values == 1)):
                    self.add(name, "boolean values must be 0 or 1")

    def groups(self, names: list[str]) -> None:
        for name in names:
            if not self.reader.is_group(name):
                self.add(name, "missing mandatory group")


def _check_identity(chk: _Checker) -> None:
    reader = chk.reader
    if reader.has("/version"):
        version = reader.string("/version")
        if not re.match(r"^2(\.\d+){0,2}$", version.strip()):
            chk.add("/version", f"unsupported version {version!r} (expected 2.x)")
    for field in ("/uuid", "/study/uuid", "/experiment/uuid"):
        if reader.has(field) and not _UUID.match(reader.string(field).strip()):
            chk.add(field, "not a UUID in canonical 8-4-4-4-12 form")


def _check_finite(chk: _Checker, ds: h5py.Dataset) -> None:
    if ds.shape is None or ds.size == 0:
        return
    row_bytes = max(1, ds.dtype.itemsize * int(np.prod(ds.shape[1:], dtype=np.int64)))
    step = max(1, _FINITE_BLOCK_BYTES // row_bytes)
    bad = 0
    for start in range(0, ds.shape[0], step):
        block = ds[start:start + step]
        if block.dtype.kind in "fc":
            bad += int(np.count_nonzero(~np.isfinite(block)))
    if bad:
        chk.add(DATA, f"{bad} NaN/Inf values")


def _check_measurement(chk: _Checker) -> None:
    reader = chk.reader
    layout = parse_layout(reader)
    if layout.has_permutation is False and reader.has("/measurement/framePermutation"):
        chk.add("/measurement/framePermutation", "present although isFramePermutation = 0")
    if reader.flag("/measurement/isFrequencySelection", False) and layout.time_domain:
        chk.add("/measurement/isFrequencySelection", "set for time-domain data")
    if layout.sparse:
        chk.attempt(lambda: _check_sparse(reader))
    if reader.has("/acquisition/receiver/transferFunction"):
        tf = reader.dataset("/acquisition/receiver/transferFunction")
        ok_k = {layout.num_bins, layout.num_stored_frequencies}
        shape = tf.shape or ()
        complex_ok = tf.dtype.kind == "c" and len(shape) == 2
        pair_ok = tf.dtype.kind == "f" and len(shape) == 3 and shape[-1] == 2
        if not (complex_ok or pair_ok) or shape[0] != layout.num_channels or shape[1] not in ok_k:
            chk.add("/acquisition/receiver/transferFunction",
                    f"shape {shape} {tf.dtype}; expected complex (C, L) with C = "
                    f"{layout.num_channels}, L = {layout.num_bins}")
    num_fg = int((~layout.background_mask).sum())
    if reader.is_group("/calibration"):
        if reader.has("/calibration/size"):
            size = reader.integers("/calibration/size", size=3)
            if layout.sparse:
                num_fg = int(np.prod(size))  # O voxels; B <= O coefficients are stored
            elif int(np.prod(size)) != num_fg:
                chk.add("/calibration/size", f"product {int(np.prod(size))} != {num_fg} "
                                             "foreground frames")
        for field in ("/calibration/fieldOfView", "/calibration/fieldOfViewCenter"):
            if reader.has(field):
                reader.numbers(field, size=3)
        if reader.has("/calibration/snr"):
            shape = reader.dataset("/calibration/snr").shape
            expected = (layout.num_periods, layout.num_channels,
                        layout.num_stored_frequencies)
            if shape != expected and shape != expected[:2] + (layout.num_bins,):
                chk.add("/calibration/snr", f"shape {shape}, expected (J, C, K) = {expected}")
        if reader.has("/calibration/positions"):
            shape = reader.dataset("/calibration/positions").shape
            if shape not in ((num_fg, 3),):
                chk.add("/calibration/positions", f"shape {shape}, expected (O, 3) = "
                                                  f"({num_fg}, 3)")
    _check_finite(chk, reader.dataset(DATA))


def _links(reader: FieldReader) -> list[str]:
    """Problems for every soft or external link: pympisr never follows links, so the
    field they stand for counts as missing (external ones could point anywhere)."""
    found = []
    for name, obj in reader.objects.items():
        if not isinstance(obj, h5py.Group):
            continue
        for key in obj.keys():
            if not isinstance(key, str):
                continue          # names that are not UTF-8: reported separately
            link = obj.get(key, getlink=True)
            field = f"{name.rstrip('/')}/{key}"
            if isinstance(link, h5py.SoftLink):
                found.append(f"{field}: soft link to {link.path}; pympisr does not follow "
                             "links (the field counts as missing)")
            elif isinstance(link, h5py.ExternalLink):
                found.append(f"{field}: external link to {link.filename}:{link.path}; "
                             "pympisr does not follow links (the field counts as missing)")
    return found


def _check_sparse(reader: FieldReader) -> None:
    ds = reader.dataset("/measurement/subsamplingIndices")
    if ds.dtype.kind not in "iu":
        raise reader.error("/measurement/subsamplingIndices", f"expected integers, found "
                                                               f"{ds.dtype}")


def _load_plan(layout: Layout | None, reader: FieldReader) -> list[tuple[int, object]]:
    """(period, frequencies) of the loads that together cover the file in ~64 MiB blocks.

    ``frequencies`` None = all; a single load when the layout could not be parsed (the
    loader then reports why) or the data is in the time domain (read whole anyway).
    """
    if layout is None or layout.time_domain:
        return [(0, None)] if layout is None else [(j, None) for j in
                                                   range(layout.num_periods)]
    frames = layout.num_frames
    if layout.sparse and reader.has("/calibration/size"):
        try:
            frames += count_product(reader.integers("/calibration/size"))
        except MDFError:
            pass
    per_frequency = max(1, 16 * layout.num_channels * frames)
    step = max(1, _LOAD_BLOCK_BYTES // per_frequency)
    bins = layout.stored_bins()
    blocks = [bins[start:start + step] for start in range(0, bins.size, step)]
    return [(j, block) for j in range(layout.num_periods) for block in blocks]


def _load_problems(path: str, calibration: bool, plan: list[tuple[int, object]]
                   ) -> list[str]:
    """The loader's refusal of ``path`` as ``["<field>: <problem>"]`` (empty = loads)."""
    if calibration:
        runs = [(load_system_matrix, {})]
    else:   # the default (no background correction) and the background-corrected load
        runs = [(load_measurement, {}), (load_measurement, {"bg_correction": True})]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for loader, kwargs in runs:
                for period, frequencies in plan:
                    loader(path, frequencies=frequencies, period=period, **kwargs)
    except MDFError as exc:
        return [f"{exc.field}: {exc.problem}"]
    except (*_READ_ERRORS, MemoryError) as exc:
        return [f"/: cannot be loaded ({type(exc).__name__}: {exc})"]
    return []


def _present(reader: FieldReader, name: str) -> bool:
    """Whether ``name`` exists at all: object or (even dangling) link."""
    try:
        return reader.h5.get(name, getlink=True) is not None
    except _READ_ERRORS:
        return False


def _safe_layout(reader: FieldReader) -> Layout | None:
    try:
        return parse_layout(reader)
    except (MDFError, *_READ_ERRORS):
        return None


def validate(path: str | os.PathLike[str]) -> list[str]:
    """Every way ``path`` departs from MDF v2 or would stop a load; empty list = valid.

    Each entry reads ``"<hdf5 field>: <problem>"``. A file that cannot be opened as
    HDF5 gives a single entry for ``/``. Raises FileNotFoundError if ``path`` does not
    exist and MDFError if it is not a regular file (FIFO, device, directory).
    """
    path = os.fspath(path)
    require_regular_file(path)
    found, load = _spec_problems(path)
    if load is not None:
        found += [p for p in _load_problems(path, *load) if p not in found]
    return found


def _spec_problems(path: str) -> tuple[list[str], tuple[bool, list] | None]:
    """(problems, (calibration?, load plan) or None when there is no /measurement)."""
    try:
        with open_mdf(path) as reader:
            chk = _Checker(reader)
            chk.attempt(lambda: chk.groups(["/study", "/experiment", "/scanner",
                                            "/acquisition", "/acquisition/drivefield",
                                            "/acquisition/receiver"]))
            chk.attempt(lambda: chk.fields(MANDATORY, mandatory=True))
            chk.attempt(lambda: chk.fields(OPTIONAL, mandatory=False))
            chk.attempt(lambda: _check_identity(chk))
            if reader.is_group("/tracer"):
                chk.attempt(lambda: chk.fields(TRACER, mandatory=True))
            if reader.is_group("/calibration"):
                chk.attempt(lambda: chk.fields(CALIBRATION, mandatory=True))
            if reader.is_group("/measurement"):
                chk.attempt(lambda: chk.fields(MEASUREMENT, mandatory=True))
                chk.attempt(lambda: _check_measurement(chk))
            for legacy in {name for names in LEGACY_NAMES.values() for name in names}:
                if reader.has(legacy) and not any(
                        p.startswith(legacy + ":") for p in chk.problems):
                    chk.add(legacy, "legacy field name (not part of MDF 2.1)")
            for name in reader.undecodable:
                chk.add(name, "object name is not valid UTF-8; the loaders skip it")
            chk.attempt(lambda: chk.problems.extend(_links(reader)))
            load = None
            if _present(reader, "/measurement"):
                load = (_present(reader, "/calibration"),
                        _load_plan(_safe_layout(reader), reader))
            return list(dict.fromkeys(chk.problems)), load
    except MDFError as exc:
        return [f"{exc.field}: {exc.problem}"], None
    except _READ_ERRORS as exc:
        return [f"/: unreadable ({type(exc).__name__}: {exc})"], None
