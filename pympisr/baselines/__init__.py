"""Classical (non-learned) restoration baselines, one per task of the seed paper.

- denoising: :func:`dct_denoise` (DCT-F, Weber et al. 2015);
- accelerated calibration / upsampling: :func:`interpolate_upsample` (bicubic or
  tricubic spline interpolation);
- inpainting: :func:`inpaint_biharmonic` (biharmonic PDE inpainting);
- compressed sensing for any task operator or random undersampling: :func:`cs_recover`
  (DCT sparsity, ADMM under the noise bound; TranSMS IV-C, Knopp & Weber 2013).
"""

from .compressed_sensing import cs_recover, random_sampling_mask
from .dct import dct_denoise, estimate_sigma_background, estimate_sigma_mad
from .inpainting import inpaint_biharmonic
from .interpolation import interpolate_upsample

__all__ = [
    "cs_recover",
    "dct_denoise",
    "estimate_sigma_background",
    "estimate_sigma_mad",
    "inpaint_biharmonic",
    "interpolate_upsample",
    "random_sampling_mask",
]
