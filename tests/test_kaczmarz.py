"""Kaczmarz solver: equality with a plain row loop written from DESIGN section 4."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from pympisr.reco.kaczmarz import available_engines, kaczmarz

# the module (``pympisr.reco.kaczmarz`` as an attribute is the re-exported function)
kaczmarz_module = importlib.import_module("pympisr.reco.kaczmarz")

ENGINES = available_engines()


def reference_kaczmarz(A: np.ndarray, b: np.ndarray, iterations: int, lambd: float,
                       enforce_real: bool, enforce_positive: bool, normalize_reg: bool,
                       weights: np.ndarray | None) -> np.ndarray:
    """DESIGN section 4, one row at a time in complex128, no vectorisation tricks."""
    A = A.astype(np.complex128)
    b = b.astype(np.complex128)
    m, n = A.shape
    w = np.ones(m) if weights is None else np.asarray(weights, dtype=np.float64)
    row_energy = np.array([sum(abs(a) ** 2 for a in A[i]) for i in range(m)])
    lam = lambd * row_energy.sum() / n if normalize_reg else lambd
    x = np.zeros(n, dtype=np.complex128)
    v = np.zeros(m, dtype=np.complex128)
    for _ in range(iterations):
        for i in range(m):
            s2 = row_energy[i] * w[i] ** 2
            if s2 == 0:
                continue
            denom = w[i] ** 2 / (s2 + lam)
            eps = np.sqrt(lam) / w[i]
            tau = sum(A[i, j] * x[j] for j in range(n))
            alpha = denom * (b[i] - tau - eps * v[i])
            for j in range(n):
                x[j] += alpha * np.conj(A[i, j])
            v[i] += alpha * eps
        if enforce_real:
            x = x.real.astype(np.complex128)
        if enforce_positive:
            x = np.where(x.real < 0, 1j * x.imag, x)
    return x


def _problem(m: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    A = (rng.standard_normal((m, n)) + 1j * rng.standard_normal((m, n))).astype(np.complex64)
    A *= rng.uniform(0.1, 3.0, size=(m, 1)).astype(np.float32)   # uneven row energies
    x_true = rng.uniform(-0.2, 1.0, n)                           # some negative entries
    b = (A.astype(np.complex128) @ x_true
         + 0.05 * (rng.standard_normal(m) + 1j * rng.standard_normal(m))).astype(np.complex64)
    return A, b


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


CASES = {
    "plain": dict(iterations=3, lambd=0.0, enforce_real=True, enforce_positive=True,
                  normalize_reg=True, weights=None),
    "lambda_normalised": dict(iterations=4, lambd=0.1, enforce_real=True,
                              enforce_positive=True, normalize_reg=True, weights=None),
    "lambda_raw": dict(iterations=4, lambd=2.5, enforce_real=True, enforce_positive=False,
                       normalize_reg=False, weights=None),
    "no_projections": dict(iterations=5, lambd=0.01, enforce_real=False,
                           enforce_positive=False, normalize_reg=True, weights=None),
    "positive_only": dict(iterations=3, lambd=0.0, enforce_real=False, enforce_positive=True,
                          normalize_reg=True, weights=None),
    "weights": dict(iterations=3, lambd=0.05, enforce_real=True, enforce_positive=True,
                    normalize_reg=True, weights="random"),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference_row_loop(engine: str, case: str) -> None:
    A, b = _problem(70, 45, seed=len(case))
    opts = dict(CASES[case])
    if opts["weights"] == "random":
        w = np.random.default_rng(5).uniform(0.2, 2.0, A.shape[0])
        w[3] = 0.0                                                # a dropped row
        opts["weights"] = w
    expected = reference_kaczmarz(A, b, **opts)
    got = kaczmarz(A, b, engine=engine, **opts)
    assert got.shape == (45,) and got.dtype == np.complex64
    assert _rel(got, expected) < 1e-4
    if opts["enforce_real"]:
        assert np.all(got.imag == 0)
    if opts["enforce_positive"]:
        assert np.all(got.real >= 0)


@pytest.mark.parametrize("engine", ENGINES)
def test_several_frames_equal_single_frame_solves(engine: str, monkeypatch) -> None:
    # a small column block exercises the blocked multi-frame path with a ragged tail
    monkeypatch.setattr(kaczmarz_module, "_MULTI_FRAME_BLOCK", 16)
    A, b = _problem(50, 70, seed=3)
    B = np.stack([b, 0.5 * b[::-1], 2j * b], axis=1)
    X = kaczmarz(A, B, iterations=3, lambd=0.02, engine=engine)
    assert X.shape == (70, 3)
    for f in range(3):
        expected = reference_kaczmarz(A, B[:, f], 3, 0.02, True, True, True, None)
        assert _rel(X[:, f], expected) < 1e-4


@pytest.mark.parametrize("engine", ENGINES)
def test_zero_rows_are_skipped(engine: str) -> None:
    A, b = _problem(30, 20, seed=7)
    A[[0, 11]] = 0
    got = kaczmarz(A, b, iterations=2, engine=engine)
    assert np.all(np.isfinite(got))
    assert _rel(got, reference_kaczmarz(A, b, 2, 0.0, True, True, True, None)) < 1e-4


@pytest.mark.parametrize("engine", ENGINES)
def test_converges_to_least_squares_solution(engine: str) -> None:
    rng = np.random.default_rng(11)
    m, n = 240, 40
    A = (rng.standard_normal((m, n)) + 1j * rng.standard_normal((m, n))).astype(np.complex64)
    x_true = rng.uniform(0.1, 1.0, n)
    b = (A.astype(np.complex128) @ x_true).astype(np.complex64)       # consistent system
    lstsq = np.linalg.lstsq(A.astype(np.complex128), b.astype(np.complex128), rcond=None)[0]
    x = kaczmarz(A, b, iterations=60, enforce_real=False, enforce_positive=False,
                 engine=engine)
    assert _rel(x, lstsq) < 1e-3
    assert _rel(x, x_true) < 1e-3


def test_engines_agree_on_a_wide_matrix() -> None:
    A, b = _problem(40, 3000, seed=2)
    x1 = kaczmarz(A, b, iterations=3, lambd=0.01, engine="numba")
    x2 = kaczmarz(A, b, iterations=3, lambd=0.01, engine="numpy")
    assert _rel(x1, x2) < 1e-4


@pytest.mark.parametrize("engine", ENGINES)
def test_first_sweep_statistics_with_frames_odd_rows_and_zero_weight(engine: str, monkeypatch) -> None:
    # lambd = 0: row energies are gathered during the first sweep (no pre-pass); an odd
    # row count, a zero row and a zero weight exercise the two-row kernel's edges
    monkeypatch.setattr(kaczmarz_module, "_MULTI_FRAME_BLOCK", 16)
    A, b = _problem(33, 40, seed=9)
    A[5] = 0
    weights = np.ones(33)
    weights[17] = 0.0
    B = np.stack([b, 0.3 * b[::-1], 1j * b], axis=1)
    X = kaczmarz(A, B, iterations=3, weights=weights, engine=engine)
    for f in range(3):
        expected = reference_kaczmarz(A, B[:, f], 3, 0.0, True, True, True, weights)
        assert _rel(X[:, f], expected) < 1e-4


def test_inputs_are_not_modified_and_other_dtypes_accepted() -> None:
    A, b = _problem(20, 10, seed=4)
    A_before, b_before = A.copy(), b.copy()
    x = kaczmarz(A, b)
    assert np.array_equal(A, A_before) and np.array_equal(b, b_before)
    x128 = kaczmarz(A.astype(np.complex128), b.astype(np.complex128))
    assert _rel(x128, x) < 1e-5
    assert np.all(kaczmarz(A, b, iterations=0) == 0)


def test_bad_arguments_raise() -> None:
    A, b = _problem(10, 5, seed=0)
    with pytest.raises(ValueError, match="rows"):
        kaczmarz(A, b[:-1])
    with pytest.raises(ValueError, match="lambd"):
        kaczmarz(A, b, lambd=-1.0)
    with pytest.raises(ValueError, match="weights"):
        kaczmarz(A, b, weights=np.ones(3))
    with pytest.raises(ValueError, match="weights"):
        kaczmarz(A, b, weights=-np.ones(10))
    with pytest.raises(ValueError, match="engine"):
        kaczmarz(A, b, engine="cuda")
    with pytest.raises(ValueError, match="2-D"):
        kaczmarz(A[0], b)


def test_numpy_fallback_without_numba(monkeypatch) -> None:
    A, b = _problem(25, 15, seed=9)
    expected = kaczmarz(A, b, iterations=2, lambd=0.1, engine="numpy")
    monkeypatch.setattr(kaczmarz_module, "numba", None)
    assert available_engines() == ["numpy"]
    assert _rel(kaczmarz(A, b, iterations=2, lambd=0.1), expected) < 1e-5
    with pytest.raises(ImportError, match="pip install numba"):
        kaczmarz(A, b, engine="numba")
