"""The reconstruction backends (pympisr.reco.backends, pympisr.julia.JuliaBackend) and the
module structure: one pipeline in pympisr.reco, the Julia bridge only an adapter, no
import cycles.

The Julia-backed path is tested without Julia by handing :class:`JuliaBackend` a fake of
the Julia module ``PympisrBridge`` that records its calls.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h5py
import numpy as np
import pytest

import pympisr
from pympisr import julia
from pympisr.reco import (PythonBackend, ReconstructionBackend, SolverParameters, get_backend,
                          kaczmarz, select_frequencies)
from pympisr.reco.reconstruct import reconstruct_with_metadata

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ module structure
ISOLATED_IMPORTS = r"""
import importlib, json, pkgutil, sys
import pympisr
names = ["pympisr"] + [m.name for m in pkgutil.walk_packages(pympisr.__path__, "pympisr.")
                       if not m.name.endswith("__main__")]
failures = {}
for name in names:
    # forget every pympisr module so that `name` is the first one imported; third-party
    # modules stay cached (they are not what is checked, and reloading torch is slow)
    for loaded in [m for m in sys.modules if m == "pympisr" or m.startswith("pympisr.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failures[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"names": names, "failures": failures}))
"""


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    result = subprocess.run([sys.executable, "-c", ISOLATED_IMPORTS], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(report["names"]) > 50 and "pympisr.reco.backends" in report["names"]
    assert report["failures"] == {}


@pytest.mark.parametrize("module", ["pympisr.julia", "pympisr.mdf.reader",
                                    "pympisr.reco.reconstruct", "pympisr.reco.backends"])
def test_module_imports_alone_in_a_new_process(module: str) -> None:
    subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, check=True,
                   timeout=120)


def test_julia_adapter_depends_on_neither_reco_nor_mdf() -> None:
    code = ("import sys, pympisr.julia; "
            "bad = [m for m in sys.modules if m.startswith(('pympisr.reco', 'pympisr.mdf'))"
            " or m == 'juliacall']; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
    # not even inside functions: the adapter imports only errors and system_matrix
    tree = ast.parse((ROOT / "pympisr" / "julia.py").read_text())
    relative = {node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.level > 0}
    assert relative == {"errors", "system_matrix"}


# ------------------------------------------------------------------ fixtures
def _problem(background: bool = True) -> tuple[pympisr.SystemMatrix, pympisr.Measurement]:
    """A random 2-channel problem; rfft bins 3..10 (so bins != positions)."""
    rng = np.random.default_rng(7)
    c, k, nz, ny, nx = 2, 8, 1, 4, 5
    data = (rng.standard_normal((c, k, nz, ny, nx))
            + 1j * rng.standard_normal((c, k, nz, ny, nx))).astype(np.complex64)
    bins = np.arange(k) + 3
    sm = pympisr.SystemMatrix(
        data=data, frequencies=bins * 1e4, grid=(nx, ny, nz), fov=[0.05, 0.04, 0.001],
        snr=rng.uniform(0, 20, (c, k)).astype(np.float32), frequency_indices=bins,
        background=(0.01 * rng.standard_normal((3, c, k))).astype(np.complex64)
        if background else None)
    phantom = rng.uniform(0, 1, (4, nz * ny * nx))
    u = np.einsum("ckn,fn->fck", data.reshape(c, k, -1), phantom)
    noise = 0.05 * (rng.standard_normal((6, c, k)) + 1j * rng.standard_normal((6, c, k)))
    meas = pympisr.Measurement(data=u.astype(np.complex64), frequencies=sm.frequencies,
                               frequency_indices=bins,
                               background=noise.astype(np.complex64) if background else None)
    return sm, meas


class RecordingBridge:
    """Fake of the Julia module PympisrBridge: serves in-memory objects in Julia's index
    order, solves with MPIReco's (unweighted, normalised) Kaczmarz setup, and records
    every call."""

    def __init__(self, sm: pympisr.SystemMatrix | None = None,
                 meas: pympisr.Measurement | None = None) -> None:
        self.sm, self.meas = sm, meas
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    @staticmethod
    def _positions(obj: Any, bins: Any) -> np.ndarray:
        if bins is None:
            return np.arange(obj.frequencies.size)
        lookup = {int(b): i for i, b in enumerate(obj.frequency_indices)}
        return np.array([lookup[int(b)] for b in bins])

    def load_system_matrix(self, path, bins, bg, tf):  # noqa: ANN001, ANN201
        self.calls.append(("load_system_matrix", (path, bins, bg, tf)))
        sm = self.sm
        ks = self._positions(sm, bins)
        c, _, nz, ny, nx = sm.data.shape
        return SimpleNamespace(
            data=np.asfortranarray(sm.data[:, ks].reshape(c, ks.size, -1).transpose(1, 0, 2)),
            frequencies=sm.frequencies[ks], bins=sm.frequency_indices[ks],
            grid=np.array([nx, ny, nz]), fov=sm.fov, center=sm.center,
            snr=np.asfortranarray(sm.snr[:, ks].T), background=None,
            transfer_function=None, bg_corrected=False, tf_corrected=False)

    def load_measurement(self, path, bins, bg, tf):  # noqa: ANN001, ANN201
        self.calls.append(("load_measurement", (path, bins, bg, tf)))
        meas = self.meas
        ks = self._positions(meas, bins)
        return SimpleNamespace(
            data=np.asfortranarray(meas.data[:, :, ks].transpose(2, 1, 0)),
            frequencies=meas.frequencies[ks], bins=meas.frequency_indices[ks],
            background=None, transfer_function=None, bg_corrected=False, tf_corrected=False,
            num_averages=1)

    def reconstruct(self, S, u, iterations, lambd):  # noqa: ANN001, ANN201
        self.calls.append(("reconstruct", (S.copy(), u.copy(), iterations, lambd)))
        x = kaczmarz(S, u, iterations=iterations, lambd=lambd, engine="numpy")
        return np.asfortranarray(x.real.astype(np.float32))


# ------------------------------------------------------------------ protocol, selection
def test_both_backends_implement_the_protocol() -> None:
    assert isinstance(PythonBackend(), ReconstructionBackend)
    assert isinstance(julia.JuliaBackend(bridge=RecordingBridge()), ReconstructionBackend)
    assert not isinstance(object(), ReconstructionBackend)


def test_get_backend() -> None:
    assert isinstance(get_backend("python"), PythonBackend)
    assert get_backend("python", engine="numpy").engine == "numpy"
    custom = julia.JuliaBackend(bridge=RecordingBridge())
    assert get_backend(custom) is custom
    with pytest.raises(ValueError, match="backend must be"):
        get_backend("matlab")
    with pytest.raises(ValueError, match="engine"):
        get_backend("python", engine="fortran")
    with pytest.raises(ValueError, match="engine"):
        get_backend(custom, engine="numba")
    with pytest.raises(ValueError, match="engine"):
        get_backend("julia", engine="numba")
    with pytest.raises(TypeError, match="load_system_matrix"):
        get_backend(42)  # type: ignore[arg-type]


@pytest.mark.skipif(julia.available(), reason="Julia is available here")
def test_julia_backend_without_julia_fails_before_any_work() -> None:
    with pytest.raises(julia.JuliaUnavailableError, match="pympisr\\[julia\\]"):
        get_backend("julia")
    with pytest.raises(julia.JuliaUnavailableError):
        julia.JuliaBackend()


def test_python_backend_solves_with_kaczmarz() -> None:
    sm, meas = _problem()
    S, u = sm.matrix(), meas.data[:2].reshape(2, -1).T
    w = np.linspace(0.5, 2, S.shape[0])
    params = SolverParameters(iterations=4, lambd=1e-2, weights=w)
    x = PythonBackend(engine="numpy").solve(S, u, params)
    expected = kaczmarz(S, u, iterations=4, lambd=1e-2, weights=w, engine="numpy")
    np.testing.assert_array_equal(x, expected)


def test_adapter_gets_the_selected_weighted_rows() -> None:
    """The pipeline hands MPIReco the selected rows, weighted, with lambda rescaled so
    that it stays relative to the unweighted ||S||_F^2 / N."""
    sm, meas = _problem(background=False)
    bridge = RecordingBridge()
    options = dict(snr_thresh=5.0, max_freq=9e4, rec_channels=[1, 0], iterations=3,
                   lambd=0.1, frames=[1, 2])
    rows = select_frequencies(sm, snr_thresh=5.0, max_freq=9e4, rec_channels=[1, 0])
    assert 2 < rows.shape[0] < 2 * sm.num_frequencies          # the selection matters
    w = np.linspace(0, 3, rows.shape[0])                       # row 0 weighted out
    reco = reconstruct_with_metadata(sm, meas, backend=julia.JuliaBackend(bridge=bridge),
                                     weighting=w, **options)
    assert [name for name, _ in bridge.calls] == ["reconstruct"]
    S_given, u_given, iterations, lambd = bridge.calls[0][1]
    S = sm.matrix(rows)
    u = meas.data[[1, 2]][:, rows[:, 0], rows[:, 1]].T
    np.testing.assert_allclose(S_given, (w[:, None] * S)[1:], rtol=1e-6)
    np.testing.assert_allclose(u_given, (w[:, None] * u)[1:], rtol=1e-6)
    energy = np.sum(np.abs(S.astype(complex)) ** 2, axis=1)
    assert iterations == 3
    assert lambd == pytest.approx(0.1 * energy.sum() / np.sum(w**2 * energy), rel=1e-9)
    assert reco.rows.tolist() == rows.tolist() and reco.parameters["backend"] == "julia"


@pytest.mark.parametrize("weighting", [None, "row_norm", "background", "array"])
def test_both_backends_give_the_same_image(weighting: str | None) -> None:
    sm, meas = _problem()
    options = dict(snr_thresh=3.0, min_freq=4e4, iterations=5, lambd=1e-3, num_averages=2)
    rows = select_frequencies(sm, snr_thresh=3.0, min_freq=4e4)
    w: Any = weighting
    if weighting == "array":
        w = np.random.default_rng(1).uniform(0, 2, rows.shape[0])
        w[::4] = 0
    backend = julia.JuliaBackend(bridge=RecordingBridge())
    via_julia = pympisr.reconstruct(sm, meas, backend=backend, weighting=w, **options)
    native = pympisr.reconstruct(sm, meas, engine="numpy", weighting=w, **options)
    assert native.shape == (2, 1, 4, 5) and native.max() > 0
    np.testing.assert_allclose(via_julia, native, rtol=1e-4, atol=1e-5 * native.max())


def test_files_are_read_through_the_adapter(tmp_path: Path) -> None:
    sm, meas = _problem(background=False)
    sm_path, meas_path = tmp_path / "sm.mdf", tmp_path / "meas.mdf"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pympisr.save_system_matrix(sm, sm_path)
        pympisr.save_measurement(meas, meas_path)
    bridge = RecordingBridge(sm, meas)
    options = dict(snr_thresh=6.0, rec_channels=[0], iterations=4)
    via_julia = reconstruct_with_metadata(sm_path, meas_path,
                                          backend=julia.JuliaBackend(bridge=bridge), **options)
    native = reconstruct_with_metadata(sm_path, meas_path, engine="numpy", **options)
    # only the bins the selection keeps are requested, from both files
    wanted = sm.frequency_indices[np.unique(select_frequencies(sm, snr_thresh=6.0,
                                                               rec_channels=[0])[:, 1])]
    names = [name for name, _ in bridge.calls]
    assert names == ["load_system_matrix", "load_measurement", "reconstruct"]
    for (_, (path, bins, bg, tf)), expected in zip(bridge.calls[:2], (sm_path, meas_path)):
        assert path == str(expected) and bins.tolist() == wanted.tolist()
        assert bg is True and tf is None
    assert via_julia.rows.tolist() == native.rows.tolist()
    np.testing.assert_array_equal(via_julia.frequency_indices, native.frequency_indices)
    np.testing.assert_allclose(via_julia.image, native.image, rtol=1e-4,
                               atol=1e-5 * native.image.max())


def test_adapter_solve_edge_cases() -> None:
    bridge = RecordingBridge()
    backend = julia.JuliaBackend(bridge=bridge)
    S = np.ones((3, 4), np.complex64)
    u = np.ones((3, 2), np.complex64)
    zeros = backend.solve(S, u, SolverParameters(iterations=0))
    all_out = backend.solve(S, u, SolverParameters(weights=np.zeros(3)))
    for x in (zeros, all_out):
        assert x.shape == (4, 2) and x.dtype == np.float32 and not x.any()
    assert bridge.calls == []                              # nothing to solve: no call
    with pytest.raises(ValueError, match="one entry per row"):
        backend.solve(S, u, SolverParameters(weights=np.ones(2)))
    with pytest.raises(ValueError, match=r"\(M, N\)"):
        backend.solve(S, u[:2], SolverParameters())


# ------------------------------------------------------------------ CLI, user errors
def _save_pair(sm: pympisr.SystemMatrix, meas: pympisr.Measurement, folder: Path
               ) -> tuple[Path, Path]:
    sm_path, meas_path = folder / "sm.mdf", folder / "meas.mdf"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pympisr.save_system_matrix(sm, sm_path)
        pympisr.save_measurement(meas, meas_path)
    return sm_path, meas_path


def test_cli_julia_backend_records_the_used_rows(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`pympisr reconstruct --backend julia` runs the one pipeline, so the output file
    holds the used rows and their bins as for the Python backend."""
    from click.testing import CliRunner

    from pympisr.cli import main
    from pympisr.reco.output import read_image

    sm, meas = _problem(background=False)
    sm_path, meas_path = _save_pair(sm, meas, tmp_path)
    bridge = RecordingBridge(sm, meas)
    real = julia.JuliaBackend
    monkeypatch.setattr(julia, "JuliaBackend", lambda: real(bridge=bridge))  # no Julia here
    outputs = {}
    for backend in ("julia", "python"):
        out = tmp_path / f"{backend}.h5"
        result = CliRunner().invoke(main, ["reconstruct", "--sm", str(sm_path), "--meas",
                                           str(meas_path), "--out", str(out), "--snr-thresh",
                                           "6", "--channels", "0", "--backend", backend])
        assert result.exit_code == 0, result.output
        with h5py.File(out, "r") as h5:
            outputs[backend] = (h5["/_pympisr/reconstruction/rows"][()],
                                h5["/_pympisr/reconstruction/frequencyIndices"][()])
        outputs[backend] += (read_image(out),)
    assert [name for name, _ in bridge.calls] == ["load_system_matrix", "load_measurement",
                                                  "reconstruct"]
    rows, bins, image = outputs["julia"]
    assert rows.shape[0] > 0 and rows.tolist() == outputs["python"][0].tolist()
    assert bins.tolist() == outputs["python"][1].tolist()
    np.testing.assert_allclose(image, outputs["python"][2], rtol=1e-4,
                               atol=1e-5 * outputs["python"][2].max())


def test_user_input_problems_are_invalid_input_errors(tmp_path: Path) -> None:
    from pympisr.errors import InvalidInputError

    sm, meas = _problem()
    with pytest.raises(InvalidInputError, match="frames"):
        pympisr.reconstruct(sm, meas, frames=[99])
    with pytest.raises(InvalidInputError, match="iterations"):
        pympisr.reconstruct(sm, meas, iterations=-1)
    with pytest.raises(InvalidInputError, match="backend must be"):
        get_backend("matlab")
    # a measurement file that lacks bins the system matrix uses: named, before loading
    keep = np.arange(4)
    partial = pympisr.Measurement(data=meas.data[:, :, keep],
                                  frequencies=meas.frequencies[keep],
                                  frequency_indices=meas.frequency_indices[keep])
    sm_path, meas_path = _save_pair(sm, partial, tmp_path)
    with pytest.raises(InvalidInputError, match="meas.mdf: the measurement lacks 4 frequency"):
        pympisr.reconstruct(sm_path, meas_path)
    # ... and the command line reports it as a user error (no traceback)
    from click.testing import CliRunner

    from pympisr.cli import main

    result = CliRunner().invoke(main, ["reconstruct", "--sm", str(sm_path), "--meas",
                                       str(meas_path), "--out", str(tmp_path / "x.h5")])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "Error: " in result.output and "lacks 4 frequency bins" in result.output
    assert not (tmp_path / "x.h5").exists()
