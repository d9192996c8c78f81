"""Robust statistics (median and 1.4826 x MAD) shared by verdicts, regions and fusion: defined once in the
torch-free runtime (``zsad_runtime.robust``), whose verdicts and regions use them too."""
from zsad_runtime.robust import MAD_TO_SIGMA, robust_scale

__all__ = ["MAD_TO_SIGMA", "robust_scale"]
