"""Tune the DCT-F soft-threshold factor (``lam = threshold * sigma``) on simulated components.

Usage::

    python benchmarks/bench_dct_threshold.py                       # Chebyshev surrogate
    python benchmarks/bench_dct_threshold.py --data DIR --split val  # a generated dataset
    python benchmarks/bench_dct_threshold.py --data DIR --random-phase

Components: either the clean components of a dataset generated with ``pympisr dataset``
(``--data``; the strongest ``--count`` by energy, spread over the split), or a surrogate of
2D Lissajous system-matrix components: products of Chebyshev polynomials of the second
kind weighted by ``sqrt(1 - x^2)`` (the 1D x-space model of Rahmer et al. 2009, "Signal
encoding in magnetic particle imaging", extended to 2D as a product, an approximation)
blurred by a Gaussian particle response, on a calibration grid slightly larger than the
drive-field FOV.  Each component is normalised to unit maximum magnitude, noise of
standard deviation sigma (real and imaginary parts) is added, and DCT-F with the true
sigma is applied for each threshold factor.  Prints a markdown table of mean PSNR (dB)
per (sigma, factor) for both shrinkage rules.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import ndimage
from scipy.special import eval_chebyu

from pympisr.baselines import dct_denoise
from pympisr.degradations import AdditiveGaussianNoise
from pympisr.metrics import psnr

SIGMAS = (0.06, 0.10, 0.20, 0.30)
FACTORS = (0.5, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0)


def surrogate_components(count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Chebyshev-product surrogate components on random 2D grids (see module docstring)."""
    out = []
    for _ in range(count):
        ny, nx = rng.integers(16, 45, size=2)
        margin = rng.uniform(1.0, 1.2)
        y = np.linspace(-margin, margin, ny)[:, None]
        x = np.linspace(-margin, margin, nx)[None, :]
        n, m = rng.integers(0, 16, size=2)
        inside = (np.abs(x) < 1) & (np.abs(y) < 1)
        xc, yc = np.clip(x, -1, 1), np.clip(y, -1, 1)
        image = (eval_chebyu(n, xc) * np.sqrt(1 - xc**2) * eval_chebyu(m, yc)
                 * np.sqrt(1 - yc**2)) * inside
        image = ndimage.gaussian_filter(image, rng.uniform(0.5, 2.0))
        image = image * np.exp(1j * rng.uniform(0, 2 * np.pi))
        out.append((image / np.abs(image).max()).astype(np.complex64))
    return out


def dataset_components(root: str, split: str, count: int) -> list[np.ndarray]:
    """``count`` components spread evenly over a dataset split, squeezed, unit max."""
    from pympisr.datasets import ComponentStore

    store = ComponentStore(root, split)
    picks = np.linspace(0, len(store) - 1, min(count, len(store))).astype(int)
    comps = []
    for i in picks:
        c = np.squeeze(store[int(i)][0])
        comps.append((c / np.abs(c).max()).astype(np.complex64))
    return comps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="dataset folder (default: Chebyshev surrogate)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--random-phase", action="store_true",
                        help="rotate each component by a random complex phase (simulated "
                             "clean SMs are purely imaginary; measured ones are not)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    comps = (dataset_components(args.data, args.split, args.count) if args.data
             else surrogate_components(args.count, rng))
    if args.random_phase:
        comps = [(c * np.exp(1j * rng.uniform(0, 2 * np.pi))).astype(np.complex64) for c in comps]
    source = (args.data or "Chebyshev surrogate") + (", random phase" if args.random_phase else "")
    print(f"{len(comps)} components from {source}\n")
    for shrink in ("magnitude", "parts"):
        print(f"shrink = {shrink}: mean PSNR (dB)\n")
        print("| sigma | noisy | " + " | ".join(f"{f:g}" for f in FACTORS) + " | best |")
        print("|---" * (len(FACTORS) + 3) + "|")
        for sigma in SIGMAS:
            noise = AdditiveGaussianNoise(sigma)
            noisy = [noise(c, np.random.default_rng([args.seed, i])) for i, c in enumerate(comps)]
            base = np.mean([psnr(n, c) for n, c in zip(noisy, comps)])
            row = [np.mean([psnr(dct_denoise(n, sigma, threshold=f, shrink=shrink), c)
                            for n, c in zip(noisy, comps)]) for f in FACTORS]
            best = FACTORS[int(np.argmax(row))]
            print(f"| {sigma:g} | {base:.2f} | " + " | ".join(f"{v:.2f}" for v in row)
                  + f" | {best:g} |")
        print()


if __name__ == "__main__":
    main()
