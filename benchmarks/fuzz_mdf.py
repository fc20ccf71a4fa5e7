"""Fuzz pympisr's MDF readers with >= 1,000 mutated and hostile files.

Every mutant is made from a small valid file of ``tests/mdf_factory.py`` (system
matrices in the fast, time-domain, sparse and frequency-selection layouts, and a
measurement) by one random mutation:

* ``truncate``, ``flip``: cut the file / flip random bytes;
* ``delete``: remove a random group or dataset;
* ``replace``: replace a random dataset by a value of random shape and dtype
  (strings, int8, int64, float32/64, complex, empty, NaN, huge or negative numbers);
* ``huge``: a random dataset, or ``/measurement/data`` along its frame axis with
  ``numFrames`` / ``/calibration/size`` made consistent, declared with 2^20..2^40
  elements but never written (tiny on disk); huge scalars (numSamplingPoints,
  numFrames, calibration size);
* ``nonfinite``: values near the float32 limit with background, a transfer function of
  1e-45, a conversion factor of 1e300, NaN/Inf injected into data or TF;
* ``names``: objects with names that are not UTF-8;
* ``structure``: groups and datasets swapped, dangling soft / external links;
* ``special``: a FIFO, ``/dev/zero`` or ``/dev/null`` given as the input.

Cases run in ``--jobs`` persistent child processes; a child is killed and replaced
when one operation runs longer than ``--timeout`` seconds (counted as a hang). For each
case it calls the loader (``load_system_matrix`` or ``load_measurement``), ``validate``,
``describe`` and the CLI commands ``pympisr info`` and ``pympisr validate`` (click's
CliRunner), measuring each call's peak memory with tracemalloc (numpy allocations
included) against ``10 x file size + 200 MiB``. It prints a table of outcomes per
operation: ok, MDFError, clean CLI ``Error:`` line, MemoryError, other exception or
traceback, hang; plus memory-bound violations, loads refused while ``validate`` found
nothing, and modified input files. Exit status 1 if any bad outcome occurred.

Usage::

    .venv/bin/python benchmarks/fuzz_mdf.py --n 1000 --jobs 8
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from mdf_factory import FUZZ_BASES  # noqa: E402

M, C, A, RX = "/measurement/", "/calibration/", "/acquisition/", "/acquisition/receiver/"
MiB = 1 << 20
OPERATIONS = ("load", "validate", "describe", "cli info", "cli validate")
BASES = FUZZ_BASES
KINDS = ("truncate", "flip", "delete", "replace", "huge", "nonfinite", "names",
         "structure", "special")
WEIGHTS = (0.08, 0.12, 0.14, 0.22, 0.16, 0.12, 0.05, 0.07, 0.04)


# ====================================================================== mutations
def _objects(h5: h5py.File) -> list[str]:
    names: list[str] = []
    h5.visit(lambda name: names.append("/" + name) if isinstance(name, str) else None)
    return names


def _datasets(h5: h5py.File) -> list[str]:
    return [n for n in _objects(h5) if isinstance(h5.get(n, getlink=False), h5py.Dataset)
            or isinstance(h5.get(n), h5py.Dataset)]


def _put(h5: h5py.File, field: str, value: Any) -> None:
    if field in h5:
        del h5[field]
    if isinstance(value, str):
        h5.create_dataset(field, data=value, dtype=h5py.string_dtype())
    else:
        h5[field] = value


def _unwritten(h5: h5py.File, field: str, shape: tuple[int, ...], dtype: str) -> None:
    if field in h5:
        del h5[field]
    h5.create_dataset(field, shape=shape, dtype=dtype,
                      chunks=tuple(max(1, min(n, 1024)) for n in shape))


def _random_value(rng: np.random.Generator) -> Any:
    shape = tuple(int(n) for n in rng.integers(0, 5, size=int(rng.integers(0, 4))))
    kind = rng.choice(["int8", "int64", "float32", "float64", "complex64", "str",
                       "strings", "nan", "huge", "negative", "empty", "bool"])
    if kind == "str":
        return "garbage"
    if kind == "strings":
        return np.array(["a", "bc"], dtype=object).astype(h5py.string_dtype())
    if kind == "nan":
        return np.full(shape, np.nan)
    if kind == "huge":
        return np.full(shape, 2 ** int(rng.integers(31, 62)), dtype=np.int64)
    if kind == "negative":
        return np.full(shape, -int(rng.integers(1, 100)), dtype=np.int64)
    if kind == "empty":
        return np.zeros((0,))
    if kind == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    values = rng.standard_normal(shape) * 10
    if kind == "complex64":
        values = values + 1j
    return np.asarray(values).astype(kind)


def _huge(h5: h5py.File, rng: np.random.Generator) -> None:
    count = 2 ** int(rng.integers(20, 41))
    choice = rng.integers(0, 4)
    if choice == 0:          # the data's frame axis, sizes made consistent
        ds = h5[M + "data"]
        fast = bool(np.asarray(h5[M + "isFastFrameAxis"][()]).reshape(-1)[0]) \
            if M + "isFastFrameAxis" in h5 else False
        shape = list(ds.shape)
        shape[-1 if fast else 0] = count
        dtype = ds.dtype.str if ds.dtype.kind in "iufc" else "<c8"
        _unwritten(h5, M + "data", tuple(shape), dtype)
        _put(h5, A + "numFrames", np.int64(count))
        for name in ("isBackgroundFrame", "framePermutation"):
            if M + name in h5:
                del h5[M + name]
        if M + "isFramePermutation" in h5:
            _put(h5, M + "isFramePermutation", np.int8(0))
        if C + "size" in h5:
            _put(h5, C + "size", np.array([count, 1, 1], dtype=np.int64))
    elif choice == 1:        # any dataset, or a new one
        fields = _datasets(h5) + ["/_fuzz/huge"]
        _unwritten(h5, str(rng.choice(fields)), (count,), str(rng.choice(["<f8", "|i1",
                                                                           "<c8"])))
    elif choice == 2:        # huge scalars
        field = str(rng.choice([RX + "numSamplingPoints", A + "numFrames",
                                RX + "numChannels", A + "numPeriodsPerFrame"]))
        _put(h5, field, np.int64(count))
    else:
        _put(h5, C + "size", np.array([count, count, int(rng.integers(1, 1024))],
                                      dtype=np.int64))


def _nonfinite(h5: h5py.File, rng: np.random.Generator) -> None:
    choice = rng.integers(0, 5)
    ds = h5[M + "data"]
    if choice == 0 and ds.dtype.kind in "fc":        # overflow in background correction
        data = ds[()]
        data[...] = 3e38 if ds.dtype.kind == "c" else 3e38
        data.reshape(-1)[::2] = -3e38
        ds[...] = data
    elif choice == 1 and RX + "transferFunction" in h5:
        h5[RX + "transferFunction"][...] = np.complex64(1e-45)
    elif choice == 2:
        channels = int(np.asarray(h5[RX + "numChannels"][()]))
        _put(h5, RX + "dataConversionFactor",
             np.tile([float(rng.choice([1e300, 1e39, np.inf])), 0.0], (channels, 1)))
    elif choice == 3 and ds.dtype.kind in "fc":
        ds[(0,) * ds.ndim] = rng.choice([np.nan, np.inf])
    elif RX + "transferFunction" in h5:
        h5[RX + "transferFunction"][0, 0] = np.nan


def _names(h5: h5py.File, rng: np.random.Generator) -> None:
    group = h5.create_group(bytes([0xFF, 0xFE, int(rng.integers(0x80, 0xFF))]))
    group["x"] = np.arange(3)
    h5.create_dataset(b"/_custom/bad\xc3(", data=np.arange(2))


def _structure(h5: h5py.File, rng: np.random.Generator) -> None:
    choice = rng.integers(0, 5)
    target = str(rng.choice(_objects(h5)))
    if choice == 0:                                   # group <-> dataset
        is_group = isinstance(h5[target], h5py.Group)
        del h5[target]
        if is_group:
            h5[target] = np.arange(3)
        else:
            h5.create_group(target)
    elif choice == 1:
        del h5[target]
        h5[target] = h5py.SoftLink("/nowhere")
    elif choice == 2:
        del h5[target]
        h5[target] = h5py.ExternalLink("missing.h5", "/x")
    elif choice == 3:
        del h5[target]
        h5[target] = h5py.ExternalLink("/dev/zero", "/x")
    else:
        data = h5[M + "data"]
        shape = data.shape
        del h5[M + "data"]
        h5.create_dataset(M + "data", shape=shape, dtype=h5py.string_dtype())


def mutate(source: Path, target: Path, kind: str, rng: np.random.Generator) -> Path:
    """Write one mutant of ``source`` (or return a special file) for ``kind``."""
    if kind == "special":
        choice = rng.integers(0, 3)
        if choice == 0 and hasattr(os, "mkfifo"):
            os.mkfifo(target)
            return target
        return Path("/dev/zero" if choice == 1 else "/dev/null")
    raw = source.read_bytes()
    if kind == "truncate":
        target.write_bytes(raw[:int(len(raw) * rng.uniform(0, 1))])
        return target
    if kind == "flip":
        data = bytearray(raw)
        for pos in rng.integers(0, len(data), int(rng.integers(1, 257))):
            data[pos] ^= int(rng.integers(1, 256))
        target.write_bytes(bytes(data))
        return target
    shutil.copyfile(source, target)
    with h5py.File(target, "a") as h5:
        if kind == "delete":
            name = str(rng.choice(_objects(h5)))
            if name in h5:
                del h5[name]
        elif kind == "replace":
            _put(h5, str(rng.choice(_datasets(h5))), _random_value(rng))
        elif kind == "huge":
            _huge(h5, rng)
        elif kind == "nonfinite":
            _nonfinite(h5, rng)
        elif kind == "names":
            _names(h5, rng)
        else:
            _structure(h5, rng)
    return target


# ====================================================================== worker
def _classify(exc: BaseException) -> str:
    from pympisr.errors import MDFError

    if isinstance(exc, MDFError):
        return "MDFError"
    if isinstance(exc, MemoryError):
        return "MemoryError"
    return "other"


def _run_op(name: str, action: Any, limit: int) -> dict[str, Any]:
    import tracemalloc
    import warnings

    record: dict[str, Any] = {"op": name}
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            record.update(action())
    except BaseException as exc:  # noqa: BLE001 - classified and reported
        record["outcome"] = _classify(exc)
        record["detail"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        record["peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    record["over_memory"] = record["peak"] > limit
    return record


def _cli(command: str, path: str) -> dict[str, Any]:
    from click.testing import CliRunner

    from pympisr.cli import main

    result = CliRunner().invoke(main, [command, path])
    text = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return {"outcome": "traceback",
                "detail": f"{type(result.exception).__name__}: {result.exception}"}
    if result.exit_code == 0:
        return {"outcome": "ok"}
    if "Traceback" in text:
        return {"outcome": "traceback", "detail": text[-300:]}
    if text.lstrip().startswith("Error:") or "\nError:" in text:
        return {"outcome": "clean Error:"}
    if command == "validate" and result.exit_code == 1:
        return {"outcome": "problems listed"}
    return {"outcome": "other", "detail": f"exit {result.exit_code}: {text[-300:]}"}


def worker_loop() -> None:
    """Read ``<0|1>\\t<path>`` lines from stdin; run each case, then print ``DONE``."""
    for line in sys.stdin:
        flag, _, path = line.rstrip("\n").partition("\t")
        worker(path, flag == "1")
        print("DONE", flush=True)


def worker(path: str, calibration: bool) -> None:
    """Run every operation on ``path``, printing one JSON line per finished operation."""
    import pympisr
    from pympisr.mdf import describe, validate

    size = os.stat(path).st_size if os.path.isfile(path) else 0
    limit = 10 * size + 200 * MiB
    loader = pympisr.load_system_matrix if calibration else pympisr.load_measurement
    refused: list[str] = []

    def load() -> dict[str, Any]:
        try:
            loader(path)
        except pympisr.MDFError as exc:
            refused.append(exc.field)
            raise
        return {"outcome": "ok"}

    def check() -> dict[str, Any]:
        problems = validate(path)
        missed = bool(refused) and not problems and not _other_kind(path, refused[0])
        return {"outcome": "ok", "problems": len(problems), "missed": missed}

    actions = {"load": load, "validate": check,
               "describe": lambda: (describe(path), {"outcome": "ok"})[1],
               "cli info": lambda: _cli("info", path),
               "cli validate": lambda: _cli("validate", path)}
    for name in OPERATIONS:
        print("START " + name, flush=True)
        print(json.dumps(_run_op(name, actions[name], limit)), flush=True)


def _other_kind(path: str, field: str) -> bool:
    """Refused only because the file is valid MDF of another kind (metadata only, or a
    measurement given to the system-matrix loader)."""
    if field not in ("/measurement", "/calibration"):
        return False
    try:
        with h5py.File(path, "r") as h5:
            return field.lstrip("/") not in h5
    except (OSError, ValueError):
        return False


# ====================================================================== driver
def _digest(path: Path) -> str | None:
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Worker:
    """A child process (``--worker``) that runs cases sent on its stdin; killed and
    replaced when one operation runs longer than ``timeout`` seconds (a hang)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.buffer = b""

    def _start(self) -> subprocess.Popen[bytes]:
        if self.proc is None or self.proc.poll() is not None:
            env = {**os.environ, "PYTHONWARNINGS": "ignore"}
            self.proc = subprocess.Popen([sys.executable, __file__, "--worker"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
            self.buffer = b""
        return self.proc

    def _line(self, limit: float) -> str | None:
        """Next output line, or None on timeout / exit."""
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        deadline = time.monotonic() + limit
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    return None
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode(errors="replace")

    def _kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def run(self, path: Path, calibration: bool) -> dict[str, Any]:
        before = _digest(path)
        proc = self._start()
        assert proc.stdin is not None
        started = time.perf_counter()
        proc.stdin.write(f"{int(calibration)}\t{path}\n".encode())
        proc.stdin.flush()
        records: dict[str, dict[str, Any]] = {}
        current, broken = None, None
        limit = self.timeout + 30          # the first case also pays for the imports
        while True:
            line = self._line(limit)
            limit = self.timeout
            if line is None:
                broken = "hang" if self.proc and self.proc.poll() is None else "crash"
                self._kill()
                break
            if line == "DONE":
                break
            if line.startswith("START "):
                current = line[6:]
            elif line.startswith("{"):
                record = json.loads(line)
                records[record["op"]] = record
        for name in OPERATIONS:
            if name not in records:
                outcome = broken if name == current or current is None else "not run"
                records[name] = {"op": name, "outcome": outcome or "crash"}
        return {"ops": records, "seconds": time.perf_counter() - started,
                "path": str(path), "modified": before is not None and _digest(path) != before}

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill()


def _generate(count: int, seed: int, folder: Path) -> list[tuple[str, str, Path, bool]]:
    rng = np.random.default_rng(seed)
    bases = {}
    for name, build in BASES.items():
        bases[name] = build(folder / f"base_{name}.mdf").path
    cases = []
    for number in range(count):
        base = str(rng.choice(list(BASES)))
        kind = str(rng.choice(KINDS, p=WEIGHTS))
        target = folder / f"case{number:05d}.mdf"
        try:
            path = mutate(bases[base], target, kind, rng)
        except (KeyError, ValueError, TypeError, OSError, RuntimeError) as exc:
            # the mutation itself did not apply (e.g. deleted the parent first): fall back
            print(f"  mutation {kind} on {base} not applied ({exc}); flipping bytes")
            kind = "flip"
            target.unlink(missing_ok=True)
            path = mutate(bases[base], target, "flip", rng)
        cases.append((base, kind, path, not base.startswith("meas")))
    return cases


def _table(results: list[tuple[str, str, dict[str, Any]]]) -> str:
    columns = ["ok", "problems listed", "MDFError", "clean Error:", "MemoryError", "other",
               "traceback", "crash", "hang", "not run"]
    counts = {op: collections.Counter() for op in OPERATIONS}
    for _, _, result in results:
        for op in OPERATIONS:
            counts[op][result["ops"][op]["outcome"]] += 1
    used = [c for c in columns if any(counts[op][c] for op in OPERATIONS)]
    width = max(len(c) for c in used) + 2
    lines = ["operation".ljust(14) + "".join(c.rjust(width) for c in used)]
    for op in OPERATIONS:
        lines.append(op.ljust(14) + "".join(str(counts[op][c]).rjust(width) for c in used))
    over = sum(r["ops"][op].get("over_memory", False) for _, _, r in results
               for op in OPERATIONS)
    missed = sum(bool(r["ops"]["validate"].get("missed")) for _, _, r in results)
    modified = sum(r["modified"] for _, _, r in results)
    peak = max((r["ops"][op].get("peak", 0) for _, _, r in results for op in OPERATIONS),
               default=0)
    lines += ["", f"memory bound (10 x file + 200 MiB) exceeded: {over}",
              f"largest traced peak of one operation: {peak / MiB:.1f} MiB",
              f"loads refused while validate reported nothing: {missed}",
              f"input files modified: {modified}"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="number of mutants")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=20.0,
                        help="seconds per case before it counts as a hang")
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--keep", type=Path, help="keep the mutants in this folder")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_loop()
        return 0

    folder = Path(tempfile.mkdtemp(prefix="fuzz_mdf_")) if args.keep is None else args.keep
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    cases = _generate(args.n, args.seed, folder)
    print(f"{len(cases)} mutants generated in {time.perf_counter() - started:.1f} s "
          f"({dict(collections.Counter(kind for _, kind, _, _ in cases))})")
    results: list[tuple[str, str, dict[str, Any]]] = []
    queue = list(enumerate(cases))
    lock = threading.Lock()

    def serve() -> None:
        worker = Worker(args.timeout)
        try:
            while True:
                with lock:
                    if not queue:
                        return
                    _, (base, kind, path, sm) = queue.pop(0)
                result = worker.run(path, sm)
                with lock:
                    results.append((base, kind, result))
                    if len(results) % 100 == 0:
                        print(f"  {len(results)} cases done "
                              f"({time.perf_counter() - started:.0f} s)", flush=True)
        finally:
            worker.close()

    threads = [threading.Thread(target=serve) for _ in range(args.jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"ran in {time.perf_counter() - started:.1f} s with {args.jobs} jobs\n")
    print(_table(results))
    bad = [(base, kind, op, r) for base, kind, r in results for op in OPERATIONS
           if r["ops"][op]["outcome"] in ("MemoryError", "other", "traceback", "crash",
                                          "hang")
           or r["ops"][op].get("over_memory") or r["ops"][op].get("missed")]
    bad.sort(key=lambda item: item[3]["path"])
    for base, kind, op, result in bad[:40]:
        record = result["ops"][op]
        print(f"  {base}/{kind} {Path(result['path']).name} {op}: {record['outcome']} "
              f"{record.get('detail', '')}")
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    modified = any(r["modified"] for _, _, r in results)
    return 1 if bad or modified else 0


if __name__ == "__main__":
    sys.exit(main())
