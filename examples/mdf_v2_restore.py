"""Restore the public MDF v2 example calibration and compare reconstructions.

Downloads the MDF v2 example pair (a 2D 44 x 44 system matrix measured on a Bruker
preclinical scanner and a phantom measurement; OpenMPIData, CC BY 4.0, cite
Knopp et al. 2016, arXiv:1602.06072), restores the calibration with pympisr's shipped
2D denoising model, and reconstructs the phantom with the measured and with the
restored system matrix (same frequency selection, Kaczmarz as in MPIReco.jl).

    python examples/mdf_v2_restore.py --out mdf_v2_example

Needs internet access for the first run (about 50 MB); later runs reuse the files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import pympisr
from pympisr.download import DATASETS, download
from pympisr.mdf.summary import describe, format_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("mdf_v2_example"))
    parser.add_argument("--snr-thresh", type=float, default=5.0)
    parser.add_argument("--lambd", type=float, default=0.1)
    parser.add_argument("--iterations", type=int, default=3)
    args = parser.parse_args()

    sm_path = download(DATASETS["mdf-v2-sm"], args.out / "systemMatrix_V2.mdf")
    meas_path = download(DATASETS["mdf-v2-meas"], args.out / "measurement_V2.mdf")
    print(format_summary(describe(sm_path)))

    restored_path = args.out / "systemMatrix_V2_restored.mdf"
    if not restored_path.exists():
        pympisr.restore(sm_path, out=restored_path, snr_thresh=args.snr_thresh)

    images = {}
    for name, path in (("measured", sm_path), ("restored", restored_path)):
        images[name] = pympisr.reconstruct(path, meas_path, snr_thresh=args.snr_thresh,
                                           min_freq=80e3, iterations=args.iterations,
                                           lambd=args.lambd, frames=slice(0, 100))
        np.save(args.out / f"reco_{name}.npy", images[name])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    for ax, (name, image) in zip(axes, images.items()):
        ax.imshow(image.mean(axis=0)[0], origin="lower", cmap="gray")
        ax.set_title(f"{name} system matrix")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.out / "reconstructions.png", dpi=100)
    print(f"wrote {args.out / 'reconstructions.png'}")


if __name__ == "__main__":
    main()
