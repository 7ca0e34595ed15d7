"""rtrec_native: real-time feedback learning for recommendation.

A C++17/OpenMP core (sparse collisionless embedding table, Hogwild SGD/AdaGrad, exact top-K)
behind a thin Python API. ``import rtrec_native`` loads only numpy and the native module; the
data, evaluation and CLI modules are imported on use.
"""

from ._core import openmp_enabled
from .recommender import DEFAULTS, Recommender

__version__ = "0.1.0"

__all__ = ["DEFAULTS", "Recommender", "__version__", "openmp_enabled"]
