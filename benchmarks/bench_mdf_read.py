"""Time and peak memory to read 100 frequencies of a ~2 GB synthetic system matrix.

Creates an MDF system matrix in the usual calibration layout (J x C x K x N,
isFastFrameAxis = 1, complex64 {r, i}, chunks of 4 frequency rows x all frames, as
:func:`pympisr.save_system_matrix` writes them) in a temporary folder, then loads 100
frequency rows with :func:`pympisr.load_system_matrix` in fresh subprocesses, with
the file's pages evicted from the OS cache (``posix_fadvise(DONTNEED)``, "cold") and
again without ("warm"). Time and peak memory (maximum resident set size,
``ru_maxrss``, minus the size after imports) come from one subprocess, the tracemalloc
peak of the load from a second one (tracing slows the load down).
The file is deleted afterwards. Prints a markdown table.

    python benchmarks/bench_mdf_read.py [--size-gb 2.0] [--keep-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

CHILD = r"""
import json, os, resource, sys, time, tracemalloc
import numpy as np
import pympisr
import pympisr.mdf.reader
path, bins = sys.argv[1], json.loads(sys.argv[2])
cold, traced = sys.argv[3] == "1", sys.argv[4] == "1"
if cold:
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if traced:
    tracemalloc.start()
t0 = time.perf_counter()
sm = pympisr.load_system_matrix(path, frequencies=bins)
elapsed = time.perf_counter() - t0
peak = tracemalloc.get_traced_memory()[1] if traced else 0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": elapsed, "rss_mib": (rss - base) / 1024,
                  "traced_mib": peak / 2**20, "result_mib": sm.data.nbytes / 2**20,
                  "shape": list(sm.data.shape)}))
"""


def make_file(path: Path, size_gb: float, seed: int = 0) -> dict:
    """Write a (1, 3, K, N) complex64 SM of about ``size_gb`` GB; return its sizes."""
    grid = (40, 40, 20)
    num_voxels = int(np.prod(grid))
    num_bg = 40
    num_frames = num_voxels + num_bg
    channels = 3
    freqs = int(size_gb * 1e9 / (channels * num_frames * 8))
    num_samples = 2 * (freqs - 1)
    rows = 4
    rng = np.random.default_rng(seed)
    block = (rng.standard_normal((rows, num_frames)) +
             1j * rng.standard_normal((rows, num_frames))).astype(np.complex64)
    with h5py.File(path, "w") as h5:
        for name, value in {
            "/version": "2.1.0", "/uuid": "00000000-0000-4000-8000-000000000000",
            "/time": "2024-01-01T00:00:00.000", "/calibration/method": "robot",
        }.items():
            h5.create_dataset(name, data=value, dtype=h5py.string_dtype())
        h5["/calibration/size"] = np.array(grid, dtype=np.int64)
        h5["/calibration/fieldOfView"] = np.array([0.04, 0.04, 0.02])
        h5["/calibration/fieldOfViewCenter"] = np.zeros(3)
        h5["/calibration/snr"] = rng.uniform(1, 100, (1, channels, freqs))
        h5["/acquisition/numFrames"] = np.int64(num_frames)
        h5["/acquisition/numPeriodsPerFrame"] = np.int64(1)
        h5["/acquisition/receiver/numChannels"] = np.int64(channels)
        h5["/acquisition/receiver/numSamplingPoints"] = np.int64(num_samples)
        h5["/acquisition/receiver/bandwidth"] = np.float64(1.25e6)
        for flag, value in {"isFastFrameAxis": 1, "isFourierTransformed": 1,
                            "isFramePermutation": 0, "isFrequencySelection": 0,
                            "isBackgroundCorrected": 0, "isTransferFunctionCorrected": 0,
                            "isSparsityTransformed": 0, "isSpectralLeakageCorrected": 0}.items():
            h5[f"/measurement/{flag}"] = np.int8(value)
        h5["/measurement/isBackgroundFrame"] = (np.arange(num_frames) >= num_voxels
                                                ).astype(np.int8)
        ds = h5.create_dataset("/measurement/data", shape=(1, channels, freqs, num_frames),
                               dtype=np.complex64, chunks=(1, 1, rows, num_frames))
        for c in range(channels):
            for start in range(0, freqs, rows):
                stop = min(freqs, start + rows)
                ds[0, c, start:stop] = block[:stop - start]
    return {"channels": channels, "freqs": freqs, "frames": num_frames,
            "bytes": path.stat().st_size}


def measure(path: Path, bins: list[int], cold: bool) -> dict:
    """Time and RSS from one fresh subprocess, tracemalloc peak from a second one."""
    def child(traced: bool) -> dict:
        out = subprocess.run([sys.executable, "-c", CHILD, str(path), json.dumps(bins),
                              "1" if cold else "0", "1" if traced else "0"],
                             check=True, capture_output=True, text=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    result = child(traced=False)
    result["traced_mib"] = child(traced=True)["traced_mib"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument("--keep-dir", type=Path, default=None,
                        help="folder for the temporary file (default: system temp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.keep_dir) as folder:
        path = Path(folder) / "sm_2gb.mdf"
        t0 = time.perf_counter()
        sizes = make_file(path, args.size_gb)
        created = time.perf_counter() - t0
        rng = np.random.default_rng(1)
        scattered = sorted(rng.choice(sizes["freqs"], 100, replace=False).tolist())
        contiguous = list(range(1000, 1100))
        rows = []
        for label, bins in (("100 scattered bins", scattered),
                            ("100 contiguous bins", contiguous)):
            for cold in (True, False):
                r = measure(path, bins, cold)
                rows.append((label, "cold" if cold else "warm", r))
        print(f"\nfile: {sizes['bytes'] / 1e9:.2f} GB, h5py shape (1, {sizes['channels']}, "
              f"{sizes['freqs']}, {sizes['frames']}) complex64, chunks (1, 1, 4, "
              f"{sizes['frames']}); created in {created:.1f} s; "
              f"loaded result {rows[0][2]['shape']} = {rows[0][2]['result_mib']:.1f} MiB\n")
        print("| selection | OS cache | time (s) | peak RSS increase (MiB) | "
              "tracemalloc peak (MiB) |")
        print("|---|---|---|---|---|")
        for label, cache, r in rows:
            print(f"| {label} | {cache} | {r['seconds']:.3f} | {r['rss_mib']:.0f} | "
                  f"{r['traced_mib']:.0f} |")
        os.remove(path)


if __name__ == "__main__":
    main()
