"""Automatic detection of corrupted calibration positions of a system matrix.

A calibration measures the grid positions one after the other (acquisition order:
raster, x fastest, the MDF voxel order; or meander). A corrupted measurement (a spike
of interference, a lost frame written as zeros, a frame stored for the wrong position,
a drift of the background over a run of frames) changes *all* frequency components of
that position at once, while a clean position agrees with its spatial neighbours up to
noise in every component. The detector tests that agreement component by component
and combines the evidence over many components; the result is the mask the inpainting
task needs (True = trustworthy, False = corrupted).

Notation: ``y_j(p)``, complex, component ``j = (c, k)`` at position ``p``; ``N(p)`` a
set of neighbours of ``p``; ``med`` the median, taken separately of the real and of the
imaginary parts; positions outside the grid are left out of every median.

1. **Components.** Per component a blind noise level ``sigma_j`` (MAD of the finest DCT
   coefficients, :func:`pympisr.baselines.dct.estimate_sigma_mad`) and its
   signal-to-noise ratio ``snr_j = max_p |y_j(p)| / sigma_j``. Components with
   ``snr_j >= min_snr`` are ranked by ``snr_j``; at most ``components`` of them are
   used, taken evenly along the ranking (strong components show zeroed and shifted
   frames best, weaker ones show offsets best, and all of them show spikes).
2. **Predictions** of ``y_j(p)`` from neighbours only (``p`` itself never enters):

   * local: for each grid direction ``v`` (one of every ``+-v`` pair of the ``3^d - 1``
     neighbour offsets; ``d`` = 2 or 3 spatial axes) the cubic-exact line predictor
     ``(4 (y(p - v) + y(p + v)) - (y(p - 2v) + y(p + 2v))) / 6`` (at the border
     ``(y(p - v) + y(p + v)) / 2``), and ``hat y_j(p)`` = the median over directions:
     a corrupted neighbour spoils one direction only, so a spike does not spread;
   * far, one prediction per side ``s = -1, +1`` along the slowest acquisition axis
     ``a`` (z for 3D grids, y for 2D): the median of the ``3^(d-1)`` positions at slow
     offset ``s * g`` and in-plane offsets in ``{-1, 0, 1}``, where
     ``g = ceil((block_fraction * P + R) / T)``, ``T`` the acquisition steps per slice
     and ``R`` those of the largest in-plane offset (1 in 2D, ``N_x + 1`` in 3D).
     Those positions were measured at least ``g T - R >= block_fraction * P``
     acquisition steps before (after) ``p``, so a contiguous corrupted run of up to
     ``block_fraction * P`` positions
     never predicts its own interior; a drifting block is seen in full, not only at
     its edges.
3. **z-scores.** Residual ``r_j(p) = y_j(p) - hat y_j(p)``; robust scale per component
   and predictor ``s_j = 1.4826 med_p(|Re r_j|, |Im r_j|)`` (MAD about 0, robust to
   the corrupted minority); ``z_j(p) = r_j(p) / s_j``. For noise, ``|z|^2 / 2`` has
   mean 1.
4. **Evidence per position**, a clipped weighted mean over the ``J`` components (a
   single component with a large model error cannot decide alone)::

       e(p) = sum_j w_j min(|z_j(p)|^2 / 2, clip) / sum_j w_j,   clip = 12.5 (|z| = 5)
       w_j  = min(1, (sigma_j / s_j)^2)

   The weight is the share of noise in the residual: a component whose prediction
   error is dominated by its own structure (a strong component predicted across ``g``
   slices) cannot show an offset of a few ``sigma_j`` and counts little. Here
   ``sigma_j`` is estimated along the fastest axis x (consecutive acquisition steps):
   the robust scale of the residual of the cubic line predictor along x, divided by
   its noise gain ``sqrt(1 + 0.94)``; unlike the blind DCT estimate of step 1 it does
   not count the sharp edges of a drifting block (which run across x lines) as noise.
   For the far predictor ``e_far(p) = min(e_-(p), e_+(p))``: a clean position next to a
   corrupted run has one clean side; inside a run both sides differ. At the grid
   border the one existing side is used.
5. **Robust z-scores over positions**, ``(e - med e) / max(1.4826 MAD e, 0.1 med e)``,
   computed separately for positions with the same number of predictions (border
   positions have fewer and a different null distribution). The floor ``0.1 med e``
   is the sampling spread of an average over about 100 noise-dominated components.
6. **Aggregation along acquisition order.** The far z-score is also taken as a running
   median over ``window`` consecutive acquisition steps (``run``): where most steps
   around a position show a drift, the position is flagged even if its own score
   dips below the threshold, while an isolated spike does not smear onto its
   neighbours in time.
7. **Score, threshold, second pass.** The position score is the largest *absolute*
   value of the local, far and running z-scores: too little disagreement is
   suspicious as well (a frame written as zeros has no noise). Positions with
   ``score > threshold`` are flagged; then everything is computed once more with the
   flagged positions left out of all predictions and of the scales ``s_j``, so that
   corrupted positions neither make their clean neighbours look bad nor inflate the
   scales. The default threshold 6 flagged none of the positions of the clean
   simulated system matrices of ``benchmarks/bench_detect.py`` (2D and 3D, noise floors
   1e-4 to 1e-2 of the peak; the target is at most 1 %).

The acquisition-order aggregation assumes raster (or meander) order with x fastest;
positions of a 2D grid have ``Nz = 1``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..system_matrix import SystemMatrix

__all__ = ["DEFAULT_THRESHOLD", "DetectionResult", "detect_corrupted", "plot_detection"]

DEFAULT_THRESHOLD = 6.0
_CLIP = 12.5
_MAD_SCALE = 1.4826
# smallest spread of an evidence map relative to its median: the sampling spread of a
# mean over ~100 noise-dominated components (1/sqrt(100)); a tighter MAD would turn
# the small structural excess of clean positions into large z-scores
_SPREAD_FLOOR = 0.1
_MIN_GROUP = 20  # positions needed for a group's own robust statistics
_CHUNK_VALUES = 2**22  # float32 values per stencil stack (bounds temporaries)


@dataclass(frozen=True)
class DetectionResult:
    """Outcome of :func:`detect_corrupted`.

    Attributes
    ----------
    valid:
        bool ``(Nz, Ny, Nx)``: True = trustworthy, False = flagged as corrupted.
    score:
        float64 ``(Nz, Ny, Nx)``: robust z-score of the position (largest of the three
        evidence maps, module docstring step 7).
    evidence:
        Name (``"local"``, ``"far"``, ``"run"``) -> float64 ``(Nz, Ny, Nx)`` robust
        z-score of that evidence map.
    threshold:
        Positions with ``score > threshold`` are flagged.
    components:
        int64 ``(J, 2)``: the ``(channel, frequency row)`` pairs used.
    order:
        int64 ``(P,)``: flat position index (C order of ``(Nz, Ny, Nx)``) of every
        acquisition step.
    far_offset:
        ``g``, the slow-axis distance of the far prediction (grid steps).
    """

    valid: np.ndarray
    score: np.ndarray
    evidence: dict[str, np.ndarray]
    threshold: float
    components: np.ndarray
    order: np.ndarray
    far_offset: int

    @property
    def flagged(self) -> np.ndarray:
        """bool ``(Nz, Ny, Nx)``: True at corrupted positions (``~valid``)."""
        return ~self.valid

    @property
    def num_flagged(self) -> int:
        return int(np.count_nonzero(~self.valid))

    @property
    def fraction_flagged(self) -> float:
        return self.num_flagged / self.valid.size

    def strongest(self, count: int = 10) -> list[tuple[tuple[int, int, int], float]]:
        """The ``count`` highest-scoring flagged positions as ``((z, y, x), score)``,
        highest first."""
        flat = np.flatnonzero(~self.valid.ravel())
        flat = flat[np.argsort(self.score.ravel()[flat], kind="stable")[::-1][:count]]
        return [(tuple(int(i) for i in np.unravel_index(f, self.valid.shape)),
                 float(self.score.ravel()[f])) for f in flat]

    def plot(self, path: str | os.PathLike[str], *, title: str | None = None,
             overwrite: bool = False) -> None:
        """Write the score maps and the score along acquisition order to a PNG
        (:func:`plot_detection`)."""
        plot_detection(self, path, title=title, overwrite=overwrite)


# ---------------------------------------------------------------------------- helpers
def _slow_axis_layout(shape: tuple[int, int, int]) -> tuple[int, tuple[int, ...]]:
    """Spatial dims (2 or 3) and the in-array axes of the grid within ``(Nz, Ny, Nx)``
    arrays: 3D -> axes (0, 1, 2), slow axis 0 (z); 2D (Nz = 1) -> axes (1, 2), slow
    axis 1 (y)."""
    return (2, (1, 2)) if shape[0] == 1 else (3, (0, 1, 2))


def _shifted(padded: np.ndarray, pad: int, offset: tuple[int, ...],
             grid: tuple[int, ...]) -> np.ndarray:
    """``values[:, p + offset]`` for every position ``p`` of ``grid``, from the array
    padded by ``pad`` NaNs on every grid axis (NaN outside the grid)."""
    return padded[(slice(None), *(slice(pad + o, pad + o + n) for o, n in zip(offset, grid)))]


def _nan_median(candidates: list[np.ndarray]) -> np.ndarray:
    """Elementwise median of the ``candidates`` (arrays of one shape ``(J, *grid)``),
    leaving NaNs out; NaN where all are NaN. The NaN pattern must depend on the
    position only (it is taken from the first row).

    Sorts with an odd-even transposition network of elementwise min/max operations,
    which is much faster than ``np.sort`` along a short last axis.
    """
    count = sum((~np.isnan(c[0])).astype(np.int64) for c in candidates)
    cols = [np.where(np.isnan(c), np.inf, c) for c in candidates]
    m = len(cols)
    for rnd in range(m):
        for i in range(rnd % 2, m - 1, 2):
            cols[i], cols[i + 1] = np.minimum(cols[i], cols[i + 1]), np.maximum(cols[i],
                                                                                 cols[i + 1])
    median = np.full(cols[0].shape, np.nan, dtype=cols[0].dtype)
    for c in np.unique(count[count > 0]):
        at = count == c
        median[:, at] = 0.5 * (cols[(c - 1) // 2][:, at] + cols[c // 2][:, at])
    return median


def _line_predictions(values: np.ndarray,
                      directions: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """Local predictions of every position, one per grid direction ``v``.

    Along the line ``p + t v``: ``(4 (u_-1 + u_+1) - (u_-2 + u_+2)) / 6``, exact for
    cubic polynomials (noise gain 0.94 sigma^2), or ``(u_-1 + u_+1) / 2`` where the grid
    ends after one step, NaN where a direct neighbour is missing. ``values`` float32
    ``(J, *grid)`` -> one ``(J, *grid)`` array per direction.
    """
    grid = values.shape[1:]
    padded = np.pad(values, [(0, 0)] + [(2, 2)] * len(grid), constant_values=np.nan)
    out = []
    for v in directions:
        near = (_shifted(padded, 2, v, grid)
                + _shifted(padded, 2, tuple(-a for a in v), grid))
        far = (_shifted(padded, 2, tuple(2 * a for a in v), grid)
               + _shifted(padded, 2, tuple(-2 * a for a in v), grid))
        cubic = (4 * near - far) / 6
        out.append(np.where(np.isnan(cubic), near / 2, cubic))
    return out


def _neighbour_values(values: np.ndarray,
                      offsets: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """``values[:, p + o]`` for every ``o`` in ``offsets``, one ``(J, *grid)`` array
    each (NaN outside the grid)."""
    grid = values.shape[1:]
    pad = max(abs(a) for o in offsets for a in o)
    padded = np.pad(values, [(0, 0)] + [(pad, pad)] * len(grid), constant_values=np.nan)
    return [_shifted(padded, pad, o, grid) for o in offsets]


def _evidence(parts: np.ndarray, candidates: Callable[[np.ndarray], list[np.ndarray]],
              width: int, excluded: np.ndarray,
              noise: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Clipped (weighted) mean of ``|z|^2 / 2`` (module docstring steps 2-4) for one
    predictor.

    ``parts`` float32 ``(2J, *grid)``: real parts of the J components, then imaginary
    parts; ``candidates(rows)`` gives ``width`` candidate predictions per position,
    whose median is the prediction; positions where ``excluded`` (bool ``grid``) is
    True do not enter any prediction nor the residual scales ``s_j``. ``noise`` ``(J,)``: blind noise level per
    component; given, component ``j`` has weight ``min(1, (noise_j / s_j)^2)``.
    Returns the evidence, float64 ``grid`` (NaN where no candidate exists), and the
    residual scales ``s_j`` ``(J,)``.
    """
    j = parts.shape[0] // 2
    rows = max(2, _CHUNK_VALUES // (parts[0].size * width))
    total = np.zeros(parts.shape[1:], np.float64)
    scales = np.empty(j)
    weight_sum = 0.0
    for start in range(0, j, max(1, rows // 2)):
        stop = min(j, start + max(1, rows // 2))
        chunk = np.concatenate([parts[start:stop], parts[j + start:j + stop]])
        known = chunk.copy()
        known[:, excluded] = np.nan
        resid = chunk - _nan_median(candidates(known))
        n = stop - start
        predicted = ~np.isnan(resid[0])
        trusted = predicted & ~excluded if np.any(predicted & ~excluded) else predicted
        both = np.concatenate([resid[:n, trusted], resid[n:, trusted]], axis=1)
        scale = _MAD_SCALE * np.median(np.abs(both), axis=1)
        scales[start:stop] = scale
        weight = (np.ones(n) if noise is None else
                  np.minimum(1.0, (noise[start:stop] / np.maximum(scale, 1e-30)) ** 2))
        weight = np.where(scale > 0, weight, 0.0)
        scale = np.where(scale > 0, scale, np.inf).reshape(n, *([1] * (parts.ndim - 1)))
        z2 = (resid[:n] / scale) ** 2 + (resid[n:] / scale) ** 2
        total += np.tensordot(weight, np.minimum(z2 / 2, _CLIP), axes=1)
        weight_sum += float(weight.sum())
    total[~predicted] = np.nan
    if weight_sum <= 0:
        return np.full_like(total, np.nan), scales
    return total / weight_sum, scales


def _robust_z(evidence: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
    """``(e - med e) / max(1.4826 MAD e, 0.1 med e)`` over the finite entries; NaN -> 0.

    With ``groups`` (integer labels of the same shape, e.g. the number of predictions
    a position has), every group of at least ``_MIN_GROUP`` finite entries gets its own
    median and spread: border positions with fewer neighbours have a different null
    distribution than interior ones."""
    out = np.zeros(evidence.shape)
    finite = np.isfinite(evidence)
    if not finite.any():
        return out
    labels = np.zeros(evidence.shape, np.int64) if groups is None else groups
    remaining = finite.copy()
    for label in np.unique(labels[finite]):
        members = finite & (labels == label)
        if np.count_nonzero(members) >= _MIN_GROUP:
            out[members] = _standardise(evidence[members], evidence[members])
            remaining &= ~members
    if remaining.any():  # small groups: statistics of all positions
        out[remaining] = _standardise(evidence[remaining], evidence[finite])
    return out


def _standardise(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    med = float(np.median(reference))
    spread = max(_MAD_SCALE * float(np.median(np.abs(reference - med))), _SPREAD_FLOOR * abs(med),
                 1e-12)
    return (values - med) / spread


def _candidate_count(candidates: Callable[[np.ndarray], list[np.ndarray]],
                     excluded: np.ndarray) -> np.ndarray:
    """Number of predictions each position has (int ``grid``)."""
    ones = np.where(excluded, np.nan, 1.0)[None].astype(np.float32)
    return sum((~np.isnan(c[0])).astype(np.int64) for c in candidates(ones))


def _running_median(values: np.ndarray, window: int) -> np.ndarray:
    """Running median of a 1D series over ``window`` samples (centred; shorter at the
    ends; NaN entries are left out)."""
    half = window // 2
    padded = np.pad(values, half, constant_values=np.nan)
    shifted = [padded[i:i + values.size][None] for i in range(window)]
    return _nan_median(shifted)[0]


def blind_noise(sm: SystemMatrix) -> tuple[np.ndarray, np.ndarray]:
    """Blind per-part noise level and peak magnitude of every component, float64
    ``(C, K)`` each (:func:`pympisr.baselines.dct.estimate_sigma_mad`, in chunks)."""
    from ..baselines.dct import estimate_sigma_mad

    c, k = sm.data.shape[:2]
    dims, _ = _slow_axis_layout(sm.spatial_shape)
    images = sm.data.reshape(c * k, *sm.spatial_shape)
    if dims == 2:
        images = images[:, 0]
    sigma = np.empty(c * k)
    peak = np.empty(c * k)
    step = max(1, _CHUNK_VALUES // max(1, images[0].size))
    for start in range(0, c * k, step):
        chunk = images[start:start + step]
        sigma[start:start + step] = estimate_sigma_mad(chunk, dims)
        peak[start:start + step] = np.abs(chunk).reshape(chunk.shape[0], -1).max(axis=1)
    return sigma.reshape(c, k), peak.reshape(c, k)


def select_components(sigma: np.ndarray, peak: np.ndarray, count: int,
                      min_snr: float) -> np.ndarray:
    """``(J, 2)`` (channel, frequency row) pairs (module docstring step 1) from the
    blind noise level and peak magnitude ``(C, K)`` of every component."""
    k = sigma.shape[1]
    sigma, peak = sigma.ravel(), peak.ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(sigma > 0, peak / sigma, np.where(peak > 0, np.inf, 0.0))
    ranked = np.argsort(-snr, kind="stable")
    ranked = ranked[snr[ranked] >= min_snr]
    if ranked.size > count:
        ranked = ranked[np.round(np.linspace(0, ranked.size - 1, count)).astype(int)]
    chosen = np.sort(ranked)
    return np.stack([chosen // k, chosen % k], axis=1).astype(np.int64)


def _check_components(sm: SystemMatrix, components: Any) -> np.ndarray:
    pairs = np.asarray(components)
    c, k = sm.data.shape[:2]
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.shape[0] == 0 \
            or not np.issubdtype(pairs.dtype, np.integer):
        raise InvalidInputError(f"components must be a positive count or (J, 2) integer "
                                f"(channel, frequency row) pairs, got shape {pairs.shape}")
    if np.any(pairs < 0) or np.any(pairs[:, 0] >= c) or np.any(pairs[:, 1] >= k):
        raise InvalidInputError(f"components: (channel, frequency row) pairs must lie in "
                                f"[0, {c}) x [0, {k}]")
    return pairs.astype(np.int64)


def _noise_along_x(parts: np.ndarray) -> np.ndarray:
    """Per-part noise level ``(J,)`` of each component from the residual of the cubic
    line predictor along x (module docstring step 4)."""
    j = parts.shape[0] // 2
    x = parts
    pred = (4 * (x[..., 1:-3] + x[..., 3:-1]) - (x[..., :-4] + x[..., 4:])) / 6
    resid = (x[..., 2:-2] - pred).reshape(2, j, -1)
    both = np.concatenate([resid[0], resid[1]], axis=1)
    return _MAD_SCALE * np.median(np.abs(both), axis=1) / math.sqrt(1.94)


def _evidence_maps(parts: np.ndarray, noise: np.ndarray, dims: int, g: int, excluded: np.ndarray,
                   order: np.ndarray, window: int,
                   shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Robust z-scores of the local, far and running evidence, ``(Nz, Ny, Nx)`` each
    (module docstring steps 2-6)."""
    cube = [tuple(v - 1 for v in o) for o in np.ndindex(*(3,) * dims)]
    directions = cube[len(cube) // 2 + 1:]  # one of each +-v pair
    predict_local = lambda rows: _line_predictions(rows, directions)  # noqa: E731
    local = _evidence(parts, predict_local, len(directions), excluded, noise)[0]
    local_z = _robust_z(local, _candidate_count(predict_local, excluded))
    in_plane = [tuple(v - 1 for v in o) for o in np.ndindex(*(3,) * (dims - 1))]
    sides = []
    for side in (-1, 1):
        offsets = [(side * g, *o) for o in in_plane]
        sides.append(_evidence(parts, lambda rows, o=offsets: _neighbour_values(rows, o),
                               len(offsets), excluded, noise)[0])
    far = np.fmin(sides[0], sides[1])
    far_z = _robust_z(far, np.isfinite(sides[0]).astype(int) + np.isfinite(sides[1]))
    flat = far_z.reshape(-1)
    run = np.empty_like(flat)
    run[order] = _running_median(flat[order], window)
    return {"local": local_z.reshape(shape), "far": far_z.reshape(shape),
            "run": run.reshape(shape)}


# ---------------------------------------------------------------------------- detection
def detect_corrupted(sm: SystemMatrix, *, threshold: float = DEFAULT_THRESHOLD,
                     components: int | np.ndarray = 256, min_snr: float = 1.0,
                     block_fraction: float = 0.1, window: int = 5,
                     meander: bool = False) -> DetectionResult:
    """Flag calibration positions whose data disagree with their neighbours in many
    frequency components (module docstring).

    Parameters
    ----------
    sm:
        System matrix, data ``(C, K, Nz, Ny, Nx)`` (``Nz = 1`` for 2D grids), with the
        noise of the measurement (a noise-free simulation has no scale to test
        against).
    threshold:
        Flag positions whose robust z-score exceeds it.
    components:
        How many components to use (step 1), or explicit ``(J, 2)`` integer
        ``(channel, frequency row)`` pairs.
    min_snr:
        Components below this blind signal-to-noise ratio are not used (step 1).
    block_fraction:
        Longest corrupted run, as a fraction of the positions, whose interior the far
        prediction still sees from outside (step 2).
    window:
        Acquisition steps of the running median of the far evidence (step 6), odd.
    meander:
        Acquisition order is a meander (x reversed on every other row) instead of
        raster.

    Raises
    ------
    InvalidInputError
        Bad parameters, a grid with fewer than 3 positions along some used axis, or no
        component with enough signal.
    """
    from ..simulation.noise import acquisition_order

    if not (math.isfinite(threshold) and threshold > 0):
        raise InvalidInputError(f"threshold must be a positive number, got {threshold!r}")
    if not 0.0 < block_fraction < 1.0:
        raise InvalidInputError(f"block_fraction must lie in (0, 1), got {block_fraction!r}")
    if window < 1 or window % 2 == 0:
        raise InvalidInputError(f"window must be an odd number >= 1, got {window!r}")
    shape = sm.spatial_shape
    dims, axes = _slow_axis_layout(shape)
    grid = tuple(shape[a] for a in axes)
    if min(grid) < 3:
        raise InvalidInputError(f"grid {sm.grid} (x, y, z) is too small to compare "
                                "positions with their neighbours: each used axis needs "
                                ">= 3 positions")
    sigma, peak = blind_noise(sm)
    if isinstance(components, (int, np.integer)):
        if components < 1:
            raise InvalidInputError(f"components must be >= 1, got {components}")
        pairs = select_components(sigma, peak, int(components), min_snr)
        if pairs.shape[0] == 0:
            raise InvalidInputError(f"no component reaches the signal-to-noise ratio "
                                    f"{min_snr:g}; nothing to detect corruptions with")
    else:
        pairs = _check_components(sm, components)
    data = sm.data[pairs[:, 0], pairs[:, 1]]
    if dims == 2:
        data = data[:, 0]
    parts = np.concatenate([data.real, data.imag]).astype(np.float32)
    noise = _noise_along_x(parts)

    order = acquisition_order(shape, meander)
    stride = int(np.prod(grid[1:]))  # acquisition steps per slice of the slow axis
    reach = grid[-1] + 1 if dims == 3 else 1  # steps of the largest in-plane offset
    g = max(1, math.ceil((block_fraction * stride * grid[0] + reach) / stride))
    excluded = np.zeros(grid, dtype=bool)
    for _ in range(2):  # pass 2: flagged positions no longer predict others (step 7)
        evidence = _evidence_maps(parts, noise, dims, g, excluded, order, window, shape)
        score = np.maximum.reduce([np.abs(e) for e in evidence.values()])
        excluded = (score > threshold).reshape(grid)
    return DetectionResult(valid=~(score > threshold), score=score, evidence=evidence,
                           threshold=float(threshold), components=pairs, order=order,
                           far_offset=g)


# ---------------------------------------------------------------------------- plotting
def plot_detection(result: DetectionResult, path: str | os.PathLike[str], *,
                   title: str | None = None, overwrite: bool = False) -> None:
    """PNG: the score map of every z-slice (flagged positions marked) and the score
    along acquisition order with the threshold (matplotlib object API, atomic write)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..atomic import atomic_output

    nz = result.score.shape[0]
    cols = min(nz, 6)
    rows = math.ceil(nz / cols)
    fig = Figure(figsize=(max(2.6 * cols, 7.0), 2.6 * rows + 2.6), layout="constrained")
    FigureCanvasAgg(fig)
    spec = fig.add_gridspec(rows + 1, cols)
    vmax = max(float(result.score.max()), result.threshold * 1.5)
    image = None
    for z in range(nz):
        ax = fig.add_subplot(spec[z // cols, z % cols])
        image = ax.imshow(result.score[z], cmap="magma", vmin=0, vmax=vmax, origin="lower")
        ys, xs = np.nonzero(~result.valid[z])
        ax.scatter(xs, ys, marker="x", s=14, color="cyan", linewidths=0.8)
        ax.set_title(f"z = {z}" if nz > 1 else "score", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if image is not None:
        fig.colorbar(image, ax=fig.axes, shrink=0.8, label="robust z-score")
    timeline = fig.add_subplot(spec[rows, :])
    steps = np.arange(result.order.size)
    along = result.score.reshape(-1)[result.order]
    timeline.plot(steps, along, lw=0.7, color="0.2")
    bad = ~result.valid.reshape(-1)[result.order]
    timeline.scatter(steps[bad], along[bad], s=10, color="crimson",
                     label=f"flagged ({result.num_flagged})")
    timeline.axhline(result.threshold, color="crimson", ls="--", lw=0.8, label="threshold")
    timeline.set_xlabel("acquisition step")
    timeline.set_ylabel("score")
    timeline.legend(loc="upper right", fontsize=8)
    fig.suptitle(title or f"corrupted positions: {result.num_flagged} of "
                 f"{result.valid.size} flagged")
    with atomic_output(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
