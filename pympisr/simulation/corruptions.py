"""Corrupted calibration positions, simulated on a system matrix (tests, benchmarks).

A calibration scan measures one grid position after the other along the robot path
(acquisition order, :func:`pympisr.simulation.noise.acquisition_order`: raster with x
fastest, or meander). Measurements at some positions can be corrupted by external
interference or instabilities of the scanner (seed paper 3.2, "Inpainting"). This
module injects four kinds of corruption into a (noisy) system matrix ``Y`` of shape
``(C, K, Nz, Ny, Nx)`` and returns the ground truth of which positions it changed.
``sigma[c, k]`` is the per-part noise standard deviation of component ``(c, k)``; every
amplitude is relative to it, so a corruption is equally visible in strong and weak
components only through its size relative to the noise.

``"spike"``
    isolated positions ``p`` (no two spikes adjacent in the grid or in acquisition
    order): ``Y[c, k, p] += strength * sigma[c, k] * exp(i phi_ck)``, ``phi`` uniform per
    component and position (default ``strength = 20``), e.g. a discharge or a burst of
    interference during one frame.
``"drift"``
    one contiguous block of ``round(fraction * P)`` positions in acquisition order
    (default 10 %), starting at a uniformly random step: a slowly varying offset
    ``Y[c, k, p_t] += strength * sigma[c, k] * a(t) * exp(i phi_ck)`` for block step
    ``t = 0 .. L-1``, with one random phase per component (the drift of the background
    signal is the same physical process for all frames) and the envelope
    ``a(t) = 1 + 0.3 sin(2 pi t / L + psi)`` (``psi`` uniform), so the offset varies
    slowly between 0.7 and 1.3 times ``strength * sigma`` (default ``strength = 5``).
``"shift"``
    runs of ``run_length`` consecutive acquisition steps whose frames are each replaced
    by the frame of the step before (a timing slip: the data of the previous robot
    position are stored for the current one; with raster order the previous step is
    the x neighbour, or the far end of the previous row at a row start).
``"zero"``
    positions whose data are all zero (a lost frame written as zeros).

The positions of the kinds are disjoint and never adjacent to one another, so a
detector's result can be scored per kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..system_matrix import SystemMatrix
from .noise import acquisition_order

__all__ = ["CORRUPTION_KINDS", "CorruptedSystemMatrix", "corrupt_system_matrix"]

CORRUPTION_KINDS = ("spike", "drift", "shift", "zero")


@dataclass(frozen=True)
class CorruptedSystemMatrix:
    """A corrupted system matrix and the ground truth of its corrupted positions.

    Attributes
    ----------
    sm:
        The corrupted system matrix (a copy; the input is unchanged).
    valid:
        bool ``(Nz, Ny, Nx)``: True where the data were not changed.
    kinds:
        For each injected kind, bool ``(Nz, Ny, Nx)``: True at the positions it changed.
    order:
        int64 ``(P,)``: flat position index (C order of ``(Nz, Ny, Nx)``) of each robot
        step, the acquisition order the corruptions followed.
    """

    sm: SystemMatrix
    valid: np.ndarray
    kinds: dict[str, np.ndarray]
    order: np.ndarray


def _neighbourhood(flat: int, spatial: tuple[int, ...], order: np.ndarray,
                   step_of: np.ndarray) -> list[int]:
    """Flat indices of ``flat``'s grid neighbours (3^d cube) and of the positions
    acquired directly before and after it."""
    coords = np.unravel_index(flat, spatial)
    ranges = [range(max(c - 1, 0), min(c + 2, n)) for c, n in zip(coords, spatial)]
    grid = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, len(spatial))
    near = list(np.ravel_multi_index(tuple(grid.T), spatial))
    t = int(step_of[flat])
    near += [int(order[s]) for s in (t - 1, t + 1) if 0 <= s < order.size]
    return near


class _Sites:
    """Draws positions that are not adjacent (grid or acquisition order) to used ones."""

    def __init__(self, spatial: tuple[int, ...], order: np.ndarray) -> None:
        self.spatial = spatial
        self.order = order
        self.step_of = np.argsort(order)
        self.blocked = np.zeros(int(np.prod(spatial)), dtype=bool)

    def block(self, flats: np.ndarray) -> None:
        for flat in np.asarray(flats).ravel():
            self.blocked[_neighbourhood(int(flat), self.spatial, self.order,
                                        self.step_of)] = True

    def draw(self, count: int, rng: np.random.Generator, what: str) -> list[int]:
        """``count`` positions, pairwise not adjacent (each one blocks its surroundings)."""
        chosen: list[int] = []
        for flat in rng.permutation(self.blocked.size):
            if len(chosen) == count:
                break
            if not self.blocked[flat]:
                chosen.append(int(flat))
                self.block(np.array([flat]))
        if len(chosen) < count:
            raise ValueError(f"the grid {self.spatial} has room for only {len(chosen)} "
                             f"isolated {what} positions, {count} were asked for")
        return chosen


def _unit_phases(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return np.exp(2j * np.pi * rng.random(shape))


def corrupt_system_matrix(sm: SystemMatrix, sigma: float | np.ndarray,
                          rng: np.random.Generator, *,
                          counts: Mapping[str, int] | None = None,
                          drift_fraction: float = 0.1, drift_strength: float = 5.0,
                          spike_strength: float = 20.0, shift_run_length: int = 1,
                          meander: bool = False) -> CorruptedSystemMatrix:
    """Inject corruptions (module docstring) into a copy of ``sm``.

    Parameters
    ----------
    sm:
        System matrix with data ``(C, K, Nz, Ny, Nx)``, normally already noisy.
    sigma:
        Per-part noise standard deviation, scalar or ``(C, K)``, in the units of
        ``sm.data``.
    rng:
        Random generator (all positions, phases and envelopes come from it).
    counts:
        Kind -> number of events: spikes, drift blocks (0 or 1), shift runs and zeroed
        positions; default ``{"spike": 5, "drift": 1, "shift": 3, "zero": 3}``. Kinds
        left out are not injected.
    drift_fraction, drift_strength:
        Block length as a fraction of the positions, and offset amplitude in units of
        ``sigma``.
    spike_strength:
        Spike amplitude in units of ``sigma``.
    shift_run_length:
        Consecutive acquisition steps per shift event.
    meander:
        Acquisition order (raster or meander, :func:`acquisition_order`).
    """
    counts = dict({"spike": 5, "drift": 1, "shift": 3, "zero": 3} if counts is None
                  else counts)
    unknown = sorted(set(counts) - set(CORRUPTION_KINDS))
    if unknown:
        raise ValueError(f"unknown corruption kind(s) {unknown}; use {CORRUPTION_KINDS}")
    if any(int(n) != n or n < 0 for n in counts.values()) or counts.get("drift", 0) > 1:
        raise ValueError(f"counts must be non-negative integers (drift 0 or 1), got {counts}")
    if not 0.0 < drift_fraction < 1.0:
        raise ValueError(f"drift_fraction must lie in (0, 1), got {drift_fraction}")
    if shift_run_length < 1:
        raise ValueError(f"shift_run_length must be >= 1, got {shift_run_length}")
    c, k = sm.data.shape[:2]
    spatial = tuple(sm.data.shape[2:])
    sig = np.broadcast_to(np.asarray(sigma, np.float64), (c, k))[..., None]
    data = sm.data.reshape(c, k, -1).astype(np.complex128)
    original = data.copy()
    order = acquisition_order(spatial, meander)
    steps = order.size
    sites = _Sites(spatial, order)
    changed: dict[str, list[int]] = {}

    if counts.get("drift"):
        length = max(1, int(round(drift_fraction * steps)))
        start = int(rng.integers(0, steps - length + 1))
        block = order[start:start + length]
        envelope = 1.0 + 0.3 * np.sin(2 * np.pi * np.arange(length) / length
                                      + rng.uniform(0, 2 * np.pi))
        offset = drift_strength * sig * _unit_phases(rng, (c, k, 1)) * envelope
        data[:, :, block] += offset
        sites.block(block)
        changed["drift"] = [int(p) for p in block]
    if counts.get("shift"):
        runs: list[int] = []
        for head in sites.draw(int(counts["shift"]), rng, "shift"):
            first = max(int(sites.step_of[head]), 1)  # step 0 has no previous frame
            run_steps = list(range(first, min(first + shift_run_length, steps)))
            for s in run_steps:
                data[:, :, order[s]] = original[:, :, order[s - 1]]
            run = order[run_steps]
            sites.block(run)
            runs += [int(p) for p in run]
        changed["shift"] = runs
    if counts.get("spike"):
        spikes = sites.draw(int(counts["spike"]), rng, "spike")
        data[:, :, spikes] += spike_strength * sig * _unit_phases(rng, (c, k, len(spikes)))
        changed["spike"] = spikes
    if counts.get("zero"):
        zeros = sites.draw(int(counts["zero"]), rng, "zero")
        data[:, :, zeros] = 0
        changed["zero"] = zeros

    kinds = {}
    for name, flats in changed.items():
        mask = np.zeros(steps, dtype=bool)
        mask[flats] = True
        kinds[name] = mask.reshape(spatial)
    valid = ~np.any(list(kinds.values()), axis=0) if kinds else np.ones(spatial, bool)
    corrupted = sm.replace(data=data.reshape(sm.data.shape).astype(np.complex64))
    return CorruptedSystemMatrix(corrupted, valid, kinds, order)

