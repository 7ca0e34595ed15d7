"""rtrec_native: real-time feedback learning for recommendation.

A C++17/OpenMP core (sparse collisionless embedding table, Hogwild SGD/AdaGrad, exact top-K)
behind a thin Python API. ``import rtrec_native`` loads only numpy and the native module; the
data, evaluation and CLI modules are imported on use.
"""

import os

# OpenMP workers that busy-wait after a parallel region burn a core that the serving
# process's Python threads need, and on a CPU-quota'd VM they get the whole process
# throttled: measured here, a 100k-item recommend took 8.0 ms with spinning workers and
# 0.54 ms without. Our parallel regions are either long (fit epochs) or latency-critical
# and separated by Python work (recommend), so sleeping workers are the right default.
# Set before the native module loads libgomp; an explicit user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

from ._batch import BatchRecommendations
from ._core import (
    DeltaOrderError,
    IdKindError,
    SnapshotError,
    needs_labels,
    openmp_enabled,
    rating_loss,
    samples_negatives,
)
from ._params import parameters
from .recommender import DEFAULTS, Recommender, default_epochs, defaults
from .replication import Publisher, Replica

__version__ = "0.1.0"

__all__ = [
    "DEFAULTS",
    "BatchRecommendations",
    "DeltaOrderError",
    "IdKindError",
    "Publisher",
    "Recommender",
    "Replica",
    "SnapshotError",
    "__version__",
    "default_epochs",
    "defaults",
    "needs_labels",
    "openmp_enabled",
    "parameters",
    "rating_loss",
    "samples_negatives",
]
