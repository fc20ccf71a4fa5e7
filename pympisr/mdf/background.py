"""Background correction rules of MPIFiles.jl.

System matrices (MPIFiles ``systemMatrix`` for MDF v2): the background frames are
grouped into blocks that are contiguous in acquisition order; every frame of a block
is replaced by the block mean. With E background frames and N = O + E frames in
total, foreground frame m acquired at 0-based acquisition index t_m is corrected by
the background interpolated linearly at the (0-based) background-frame coordinate

    alpha_m = t_m / (N - 1) * (E - 1),

i.e. MPIFiles maps acquisition time linearly onto the background frame index
("this assumes equidistant bg frames"). For evenly spread single background frames
this is linear interpolation in acquisition time; for a block at the start and one at
the end it is (almost) a step between the two block means, exactly as MPIFiles does.

Measurements (MPIFiles ``getMeasurements(...; bgCorrection=true)`` without
``interpolateBG``): the mean of all background frames is subtracted.
"""

from __future__ import annotations

import numpy as np

__all__ = ["block_means", "interpolated_background", "subtract_mean_background",
           "subtract_system_matrix_background"]


def block_means(background: np.ndarray, acquisition_index: np.ndarray) -> np.ndarray:
    """Background frames sorted by acquisition time, each replaced by its block mean.

    Parameters
    ----------
    background:
        ``(E, ...)`` background frames.
    acquisition_index:
        int ``(E,)`` 0-based acquisition index of each frame; frames with consecutive
        indices form one block.

    Returns
    -------
    ``(E, ...)`` in acquisition order, constant within each block.
    """
    order = np.argsort(acquisition_index, kind="stable")
    frames = background[order]
    times = np.asarray(acquisition_index)[order]
    out = np.empty_like(frames)
    starts = np.flatnonzero(np.diff(times) != 1) + 1
    bounds = np.concatenate([[0], starts, [times.size]])
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        out[lo:hi] = frames[lo:hi].mean(axis=0)
    return out


def interpolated_background(blocks: np.ndarray, foreground_index: np.ndarray,
                            num_frames: int) -> np.ndarray:
    """Background for each foreground frame by MPIFiles' index interpolation.

    Parameters
    ----------
    blocks:
        ``(E, ...)`` output of :func:`block_means`.
    foreground_index:
        int ``(M,)`` 0-based acquisition index of each foreground frame.
    num_frames:
        N = M + E, all frames of the acquisition.

    Returns
    -------
    ``(M, ...)`` background to subtract (dtype of ``blocks``).
    """
    num_bg = blocks.shape[0]
    count = len(foreground_index)
    if num_bg == 1 or num_frames < 2:
        return np.broadcast_to(blocks[0], (count, *blocks.shape[1:]))
    alpha = np.asarray(foreground_index, dtype=np.float64) / (num_frames - 1) * (num_bg - 1)
    alpha = np.clip(alpha, 0.0, num_bg - 1)
    lo = np.floor(alpha).astype(np.int64)
    hi = np.minimum(lo + 1, num_bg - 1)
    weight = (alpha - lo).astype(blocks.real.dtype).reshape(-1, *([1] * (blocks.ndim - 1)))
    return (1 - weight) * blocks[lo] + weight * blocks[hi]


def subtract_system_matrix_background(foreground: np.ndarray, background: np.ndarray,
                                      foreground_index: np.ndarray,
                                      background_index: np.ndarray,
                                      chunk: int = 2048) -> np.ndarray:
    """Subtract the MPIFiles system-matrix background from ``foreground`` in place.

    Parameters
    ----------
    foreground:
        ``(M, ...)`` complex foreground frames (modified in place and returned).
    background:
        ``(E, ...)`` complex background frames, E >= 1.
    foreground_index, background_index:
        0-based acquisition indices of the frames (``(M,)`` and ``(E,)``).
    chunk:
        Frames processed at a time (bounds the temporary memory).
    """
    blocks = block_means(background, background_index).astype(foreground.dtype)
    num_frames = len(foreground_index) + len(background_index)
    for start in range(0, foreground.shape[0], chunk):
        stop = start + chunk
        foreground[start:stop] -= interpolated_background(
            blocks, foreground_index[start:stop], num_frames)
    return foreground


def subtract_mean_background(foreground: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``foreground -= mean(background, axis=0)`` in place (MPIFiles' measurement rule)."""
    foreground -= background.mean(axis=0).astype(foreground.dtype)
    return foreground
