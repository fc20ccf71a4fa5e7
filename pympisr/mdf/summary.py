"""A light summary of an MDF file (for ``pympisr info``) that never reads the data."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import MDFError
from .layout import DATA, parse_layout
from .reader import guard, open_mdf
from .safety import require_regular_file

__all__ = ["describe", "format_summary"]


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Summary of ``path``: kind, version, sizes, layout flags, grid, FOV, size on disk.

    Keys: ``path``, ``size_bytes``, ``kind`` ("calibration", "measurement" or
    "metadata only"), ``version``, ``channels``, ``samples``, ``bandwidth_hz``,
    ``frequencies`` (stored), ``frames``, ``background_frames``, ``periods``,
    ``layout`` (flag name -> bool), ``data_shape``, ``data_dtype``, ``grid``, ``fov_m``,
    ``center_m``, ``problem`` (why the measurement could not be interpreted, or None).
    Missing values are None. Raises MDFError only if the file is not a regular file
    or not HDF5 (FileNotFoundError if it does not exist).
    """
    path = os.fspath(path)
    require_regular_file(path)   # before anything reads from it (FIFOs would block)
    info: dict[str, Any] = {"path": path, "size_bytes": os.path.getsize(path)}
    with open_mdf(path) as reader, guard(path):
        def safe(getter: Any, *args: Any) -> Any:
            try:
                return getter(*args, default=None)
            except MDFError:
                return None

        has_meas = reader.is_group("/measurement")
        has_calib = reader.is_group("/calibration")
        info["kind"] = ("calibration" if has_meas and has_calib else
                        "measurement" if has_meas else
                        "metadata only" if reader.has("/version") else
                        "not MDF (HDF5 without /version)")
        info["version"] = safe(reader.string, "/version")
        info["channels"] = safe(reader.integer, "/acquisition/receiver/numChannels")
        info["samples"] = safe(reader.integer, "/acquisition/receiver/numSamplingPoints")
        info["bandwidth_hz"] = safe(reader.number, "/acquisition/receiver/bandwidth")
        info["frames"] = safe(reader.integer, "/acquisition/numFrames")
        info["periods"] = safe(reader.integer, "/acquisition/numPeriodsPerFrame")
        info["grid"] = _tuple(safe(reader.integers, "/calibration/size"))
        info["fov_m"] = _tuple(safe(reader.numbers, "/calibration/fieldOfView"))
        info["center_m"] = _tuple(safe(reader.numbers, "/calibration/fieldOfViewCenter"))
        info.update(frequencies=None, background_frames=None, layout={}, data_shape=None,
                    data_dtype=None, problem=None)
        if has_meas:
            try:
                ds = reader.dataset(DATA)
                info["data_shape"], info["data_dtype"] = ds.shape, str(ds.dtype)
                layout = parse_layout(reader)
            except MDFError as exc:
                info["problem"] = f"{exc.field}: {exc.problem}"
            else:
                info.update(
                    channels=layout.num_channels, samples=layout.num_samples,
                    frames=layout.num_frames, periods=layout.num_periods,
                    frequencies=int(layout.stored_bins().size),
                    background_frames=int(layout.background_mask.sum()),
                    layout={"time domain": layout.time_domain,
                            "fast frame axis": layout.fast_frame_axis,
                            "frame permutation": layout.has_permutation,
                            "frequency selection": layout.frequency_selection is not None,
                            "sparsity transformed": layout.sparse,
                            "background corrected": safe(
                                reader.flag, "/measurement/isBackgroundCorrected"),
                            "transfer function corrected": safe(
                                reader.flag, "/measurement/isTransferFunctionCorrected"),
                            "has transfer function": reader.has(
                                "/acquisition/receiver/transferFunction")})
    return info


def _tuple(value: Any) -> tuple | None:
    return None if value is None else tuple(np.asarray(value).reshape(-1).tolist())


def _bytes(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def format_summary(info: dict[str, Any]) -> str:
    """Human-readable multi-line text of a :func:`describe` result."""
    def show(value: Any) -> str:
        return "n/a" if value is None else str(value)

    lines = [f"file:              {info['path']}",
             f"kind:              {info['kind']}",
             f"MDF version:       {show(info['version'])}",
             f"size on disk:      {_bytes(info['size_bytes'])}"]
    if info["grid"] is not None:
        lines.append(f"grid (x, y, z):    {' x '.join(str(int(g)) for g in info['grid'])}")
    if info["fov_m"] is not None:
        lines.append("FOV (m):           " + ", ".join(f"{v:g}" for v in info["fov_m"]))
    if info["center_m"] is not None:
        lines.append("FOV center (m):    " + ", ".join(f"{v:g}" for v in info["center_m"]))
    lines += [f"receive channels:  {show(info['channels'])}",
              f"samples/period:    {show(info['samples'])}",
              f"bandwidth (Hz):    {show(info['bandwidth_hz'])}",
              f"frequencies:       {show(info['frequencies'])}",
              f"periods/frame:     {show(info['periods'])}",
              f"frames:            {show(info['frames'])}",
              f"background frames: {show(info['background_frames'])}"]
    if info["data_shape"] is not None:
        lines.append(f"data:              {info['data_shape']} {info['data_dtype']}")
    if info["layout"]:
        flags = ", ".join(f"{name}={'n/a' if on is None else 'yes' if on else 'no'}"
                          for name, on in info["layout"].items())
        lines.append(f"layout:            {flags}")
    if info["kind"] == "metadata only":
        lines.append("note:              no /measurement group: the file holds no data")
    if info["problem"]:
        lines.append(f"problem:           {info['problem']}")
    return "\n".join(lines)
