"""Realistic system-matrix noise: measured background frames or a parametric model.

A measured SM is ``S_meas = S + N`` (seed paper 3.2): background signal, thermal noise
and abrupt distortions that drift over the hours-long calibration, so ``N`` is
spatially structured along the robot path. :class:`NoiseSource` draws ``N``:

(a) From background frames ``(E, C, K)`` of a user's MDF file (e.g.
    ``SystemMatrix.background``): a random contiguous run of ``P`` frames (``P`` =
    number of calibration positions) is laid out along the acquisition order, so
    position ``p`` of the robot path gets frame ``start + p`` for every channel and
    frequency (one frame holds all frequencies of one position, as in a calibration).
    The run's mean is removed (a background-corrected calibration keeps only the
    fluctuations). If the file holds fewer frames than positions, the parametric model
    (b) is used with the per-(channel, frequency) standard deviation measured from the
    frames.
(b) The parametric model :class:`ParametricNoise` (documented there): coloured complex
    Gaussian noise per frequency, a slow drift along the robot path and occasional
    spikes that hit all frequencies of one position.

Acquisition order: raster ("xyz", x fastest, the MDF voxel order) or meander (x
reversed on every other row, as for a robot moving back and forth).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidInputError

if TYPE_CHECKING:
    from ..system_matrix import SystemMatrix

__all__ = ["NoiseSource", "ParametricNoise", "acquisition_order", "rms_snr", "scale_noise",
           "with_white_noise"]


def acquisition_order(spatial_shape: tuple[int, ...], meander: bool = False) -> np.ndarray:
    """Flat voxel index (C order of ``spatial_shape``, x fastest) of each robot step."""
    shape = tuple(int(s) for s in spatial_shape)
    order = np.arange(int(np.prod(shape))).reshape(shape)
    if meander and len(shape) >= 2:
        rows = order.reshape(-1, shape[-1]).copy()
        rows[1::2] = rows[1::2, ::-1]
        order = rows.reshape(shape)
    return order.ravel()


@dataclass(frozen=True)
class ParametricNoise:
    """Parametric calibration noise along the robot path (all parameters dimensionless).

    For channel c, frequency f (Hz) and robot step p::

        N[c, f, p] = s(c, f) * (w[p] + drift * d[p]) + spike[p]

    * ``s(c, f) = (1 + (knee / f)^colour) * exp(jitter * z_cf)``, ``z_cf ~ N(0, 1)``:
      coloured spectrum (1/f^colour rise below ``knee`` Hz; frequency-specific
      interference via the log-normal jitter);
    * ``w`` white complex Gaussian (real and imaginary std 1);
    * ``d`` complex Gaussian process along the path, correlation length
      ``drift_length`` times the number of steps (Gaussian kernel, unit std);
    * ``spike``: each step is hit with probability ``spike_rate``; a hit adds
      ``spike_scale * s(c, f)`` times a complex Gaussian to all components of that step.
    """

    knee: float = 50e3
    colour: float = 1.0
    jitter: float = 0.3
    drift: float = 1.0
    drift_length: float = 0.2
    spike_rate: float = 0.002
    spike_scale: float = 10.0

    def spectrum(self, frequencies: np.ndarray, channels: int,
                 rng: np.random.Generator) -> np.ndarray:
        """Standard deviation ``s(c, f)``, float64 ``(channels, K)``."""
        f = np.maximum(np.asarray(frequencies, np.float64), 1.0)
        base = 1.0 + (self.knee / f) ** self.colour
        return base[None, :] * np.exp(self.jitter * rng.standard_normal((channels, f.size)))

    def spike_steps(self, steps: int, rng: np.random.Generator) -> np.ndarray:
        """Boolean ``(steps,)``: robot steps hit by a spike."""
        return rng.random(steps) < self.spike_rate

    def path_noise(self, std: np.ndarray, steps: int, rng: np.random.Generator,
                   hits: np.ndarray | None = None) -> np.ndarray:
        """Noise ``(C, K, steps)`` complex64 for per-component std ``std`` (C, K).

        ``hits`` (steps,) marks spiked steps (default: drawn by :meth:`spike_steps`); pass
        the same mask to all frequency blocks of one calibration.
        """
        std = np.asarray(std, np.float64)
        shape = (*std.shape, steps)
        white = _complex_normal(rng, shape)
        drift = self.drift * _smooth_process(rng, shape, self.drift_length * steps)
        hits = self.spike_steps(steps, rng) if hits is None else np.asarray(hits, bool)
        spikes = np.zeros(shape, np.complex64)
        if np.any(hits):
            spikes[..., hits] = self.spike_scale * _complex_normal(rng, (*std.shape,
                                                                         int(hits.sum())))
        return (std[..., None] * (white + drift + spikes)).astype(np.complex64)


def _complex_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return (rng.standard_normal(shape, np.float32)
            + 1j * rng.standard_normal(shape, np.float32)).astype(np.complex64)


def _smooth_process(rng: np.random.Generator, shape: tuple[int, ...],
                    length: float) -> np.ndarray:
    """Complex Gaussian process along the last axis, unit std, Gaussian correlation."""
    steps = shape[-1]
    white = _complex_normal(rng, shape)
    if length <= 0.5 or steps < 2:
        return white
    freq = np.fft.fftfreq(steps)
    kernel = np.exp(-0.5 * (2 * np.pi * freq * length) ** 2).astype(np.float32)
    smooth = np.fft.ifft(np.fft.fft(white, axis=-1) * kernel, axis=-1)
    rms = np.sqrt(np.mean(np.abs(smooth) ** 2, axis=-1, keepdims=True) / 2)
    return (smooth / np.where(rms > 0, rms, 1)).astype(np.complex64)


def scale_noise(noise: np.ndarray, relative_std: float, reference: np.ndarray | None = None,
                spatial_dims: int = 3) -> np.ndarray:
    """Rescale each noise image (trailing ``spatial_dims`` axes) to a given level.

    After scaling, ``sqrt((mean(re^2) + mean(im^2)) / 2)`` of every image equals
    ``relative_std * max|reference image|`` (or ``relative_std`` without reference): the
    DESIGN convention "clean component at unit maximum, noise std sigma".
    """
    axes = tuple(range(-spatial_dims, 0))
    rms = np.sqrt(np.mean(np.abs(noise) ** 2, axis=axes, keepdims=True) / 2)
    target = np.float32(relative_std)
    if reference is not None:
        target = target * np.max(np.abs(reference), axis=axes, keepdims=True)
    return (noise * (target / np.where(rms > 0, rms, 1))).astype(np.complex64)


def rms_snr(signal: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Per-component SNR ``rms_r |signal_r| / rms_e |B_e - mean_e B_e|``, float32 ``(C, K)``.

    ``signal`` ``(C, K, *spatial)``: background-corrected components (subtract the
    frames' mean first if they are not); ``background`` ``(E, C, K)``: empty-scanner
    frames. This is the SNR the stand-in and simulated calibrations store in
    ``/calibration/snr``; components without signal score about 1.
    """
    c, k = np.shape(background)[1:]
    flat = np.asarray(signal).reshape(c, k, -1)
    signal_rms = np.sqrt(np.mean(np.abs(flat) ** 2, axis=-1))
    bg = np.asarray(background)
    noise_rms = np.sqrt(np.mean(np.abs(bg - bg.mean(axis=0)) ** 2, axis=0))
    return (signal_rms / np.maximum(noise_rms, 1e-30)).astype(np.float32)


def with_white_noise(sm: SystemMatrix, sigma: float, background_frames: int,
                     rng: np.random.Generator) -> SystemMatrix:
    """A background-corrected noisy calibration from the clean :class:`SystemMatrix` ``sm``.

    Adds complex white Gaussian noise of per-part std ``sigma`` (the SM's units) to every
    entry and records ``background_frames`` empty-scanner frames of the same noise and
    the per-component :func:`rms_snr`, so the copy carries its own noise level as a
    measured calibration does. The data noise is drawn before the frames.
    """
    if not np.isfinite(sigma) or sigma < 0:
        raise InvalidInputError(f"noise std must be a finite number >= 0, got {sigma!r}")
    if background_frames < 2:
        raise InvalidInputError(f"background_frames must be >= 2, got {background_frames!r}")

    def draw(shape: tuple[int, ...]) -> np.ndarray:
        return (sigma * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
                ).astype(np.complex64)

    data = sm.data + draw(sm.data.shape)
    background = draw((background_frames, sm.num_channels, sm.num_frequencies))
    return sm.replace(data=data, background=background, snr=rms_snr(data, background),
                      is_background_corrected=True)


class NoiseSource:
    """Draws complex noise shaped like a system matrix or a batch of components.

    Parameters
    ----------
    frames:
        Background frames ``(E, C, K)`` (complex) in acquisition order, or None for the
        parametric model only.
    frequencies:
        Frequencies (Hz) of the frames' K columns; used to match a target's frequencies
        (nearest frequency). Without it, columns are matched by rfft index.
    model:
        Parametric model (default :class:`ParametricNoise()`); used when there are no
        frames or fewer frames than calibration positions.
    dims:
        Number of trailing spatial axes in :meth:`sample` (2 or 3).
    meander:
        Meandering robot path (x reversed on every other row) instead of raster order.
    """

    def __init__(self, frames: np.ndarray | None = None, *,
                 frequencies: np.ndarray | None = None, model: ParametricNoise | None = None,
                 dims: int = 2, meander: bool = False) -> None:
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims!r}")
        if frames is not None:
            frames = np.asarray(frames)
            if frames.ndim != 3 or frames.shape[0] < 2:
                raise ValueError(f"background frames must be (E >= 2, C, K), got {frames.shape}")
            frames = frames.astype(np.complex64)
            if frequencies is not None and np.size(frequencies) != frames.shape[2]:
                raise ValueError(f"{np.size(frequencies)} frequencies for {frames.shape[2]} "
                                 "frame columns")
        self.frames = frames
        self.frequencies = None if frequencies is None else np.asarray(frequencies, np.float64)
        self.model = model or ParametricNoise()
        self.dims = dims
        self.meander = bool(meander)
        self._std: np.ndarray | None = None

    def __repr__(self) -> str:
        what = "parametric" if self.frames is None else f"{self.frames.shape[0]} frames"
        return f"NoiseSource({what}, dims={self.dims}, meander={self.meander})"

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_system_matrix(cls, sm: Any, **kwargs: Any) -> NoiseSource:
        """Noise from ``sm.background`` (E, C, K); parametric if it has none."""
        kwargs.setdefault("dims", sm.dims)
        if sm.background is None:
            return cls(None, **kwargs)
        return cls(sm.background, frequencies=sm.frequencies, **kwargs)

    @classmethod
    def from_mdf(cls, path: str | os.PathLike[str], **kwargs: Any) -> NoiseSource:
        """Noise from the background frames of an MDF calibration or measurement file.

        A calibration's background frames are used; for a measurement file its
        background frames, or all frames if none is flagged (an empty-scanner run).
        """
        import pympisr
        from ..errors import MDFError

        try:
            data = pympisr.load_system_matrix(path, bg_correction=False)
            frames = data.background
            kwargs.setdefault("dims", data.dims)
        except MDFError:
            data = pympisr.load_measurement(path)
            frames = data.background if data.background is not None else data.data
        if frames is None or frames.shape[0] < 2:
            raise MDFError(path, "/measurement/isBackgroundFrame",
                           "fewer than 2 background frames to take noise from")
        return cls(frames, frequencies=data.frequencies, **kwargs)

    # ------------------------------------------------------------------ helpers
    def _columns(self, frequencies: np.ndarray | None, indices: np.ndarray | None,
                 count: int) -> np.ndarray:
        """Frame columns (source frequencies) matching the target frequencies."""
        k_src = self.frames.shape[2]
        if frequencies is not None and self.frequencies is not None:
            order = np.argsort(self.frequencies)
            pos = np.clip(np.searchsorted(self.frequencies[order], frequencies), 1, k_src - 1)
            left, right = self.frequencies[order][pos - 1], self.frequencies[order][pos]
            pick = np.where(np.abs(frequencies - left) <= np.abs(right - frequencies),
                            pos - 1, pos)
            return order[pick]
        idx = np.arange(count) if indices is None else np.asarray(indices, np.int64)
        return idx % k_src

    def _frame_run(self, steps: int, columns: np.ndarray, channels: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
        """(len(channels), len(columns), steps) mean-free frames from a random start."""
        e = self.frames.shape[0]
        start = int(rng.integers(0, e - steps + 1))
        run = self.frames[start:start + steps][:, channels][:, :, columns]  # (P, C, K)
        run = run - run.mean(axis=0, keepdims=True)
        return np.moveaxis(run, 0, -1)

    def _measured_std(self) -> np.ndarray:
        """Per-(channel, frequency) std of the frames' real/imaginary parts, (C, K)."""
        if self._std is None:
            dev = self.frames - self.frames.mean(axis=0, keepdims=True)
            self._std = np.sqrt(np.mean(np.abs(dev) ** 2, axis=0) / 2)
        return self._std

    # ------------------------------------------------------------------ drawing
    def draw(self, target: Any, rng: np.random.Generator, *,
             frequencies: np.ndarray | None = None, relative_std: float | None = None,
             reference: np.ndarray | None = None) -> np.ndarray:
        """Noise for a whole SM, complex64 ``(C, K, Nz, Ny, Nx)``.

        ``target``: a :class:`~pympisr.SystemMatrix` (its shape, frequencies and, as
        default ``reference``, its data) or a shape tuple. ``frequencies`` (Hz) overrides
        the target's. With ``relative_std`` every component is scaled by
        :func:`scale_noise` relative to ``reference``.
        """
        if hasattr(target, "data"):
            shape = target.data.shape
            frequencies = target.frequencies if frequencies is None else frequencies
            indices = target.frequency_indices
            if reference is None and relative_std is not None:
                reference = target.data
        else:
            shape, indices = tuple(target), None
        if len(shape) != 5:
            raise ValueError(f"target shape must be (C, K, Nz, Ny, Nx), got {shape}")
        c, k = shape[:2]
        spatial = shape[2:]
        steps = int(np.prod(spatial))
        freqs = (np.arange(k, dtype=np.float64) if frequencies is None
                 else np.asarray(frequencies, np.float64))
        if self.frames is not None and self.frames.shape[0] >= steps:
            if c > self.frames.shape[1]:
                raise ValueError(f"noise source has {self.frames.shape[1]} channels, "
                                 f"target {c}")
            cols = self._columns(None if frequencies is None else freqs, indices, k)
            path = self._frame_run(steps, cols, np.arange(c), rng)
        else:
            if self.frames is not None:
                cols = self._columns(None if frequencies is None else freqs, indices, k)
                std = self._measured_std()[np.arange(c) % self.frames.shape[1]][:, cols]
            else:
                std = self.model.spectrum(freqs, c, rng)
            hits = self.model.spike_steps(steps, rng)
            path = np.empty((c, k, steps), np.complex64)
            block = max(1, (32 * 2**20) // (8 * steps * c))  # bound temporaries
            for k0 in range(0, k, block):
                path[:, k0:k0 + block] = self.model.path_noise(std[:, k0:k0 + block], steps,
                                                               rng, hits)
        noise = np.empty(shape, np.complex64)
        order = acquisition_order(spatial, self.meander)
        noise.reshape(c, k, steps)[:, :, order] = path
        if relative_std is not None:
            noise = scale_noise(noise, relative_std, reference)
        return noise

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Noise images of ``shape`` = (batch..., spatial); one source component each.

        The trailing ``self.dims`` axes are the calibration grid; each image gets a
        random channel and frequency of the source and a random run of frames (or the
        parametric model), laid out along the acquisition order. Unscaled: callers such
        as :class:`pympisr.degradations.AdditiveSourceNoise` set the level.
        """
        shape = tuple(int(s) for s in shape)
        if len(shape) < self.dims:
            raise ValueError(f"shape {shape} has fewer than {self.dims} spatial axes")
        spatial = shape[len(shape) - self.dims:]
        batch = int(np.prod(shape[:len(shape) - self.dims]))
        steps = int(np.prod(spatial))
        order = acquisition_order(spatial, self.meander)
        out = np.empty((batch, steps), np.complex64)
        for b in range(batch):
            if self.frames is not None and self.frames.shape[0] >= steps:
                ch = np.array([rng.integers(self.frames.shape[1])])
                col = np.array([rng.integers(self.frames.shape[2])])
                path = self._frame_run(steps, col, ch, rng)[0, 0]
            else:
                if self.frames is not None:
                    std = self._measured_std()[rng.integers(self.frames.shape[1]),
                                               rng.integers(self.frames.shape[2])]
                else:
                    std = 1.0
                path = self.model.path_noise(np.full((1, 1), std), steps, rng)[0, 0]
            out[b, order] = path
        return out.reshape(shape)
