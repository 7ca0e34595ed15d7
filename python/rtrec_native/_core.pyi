# Generated from the built module by pybind11-stubgen; tests/test_core_stub.py checks that it
# matches the module. Regenerate after changing cpp/bindings/module.cpp:
#   pip install pybind11-stubgen && pybind11-stubgen rtrec_native._core -o DIR  (then copy DIR/rtrec_native/_core.pyi here)
"""
rtrec_native native core (private; use rtrec_native.Recommender)
"""
from __future__ import annotations
import numpy
import numpy.typing
import typing
__all__: list[str] = ['DeltaOrderError', 'IdKindError', 'MissingFileError', 'Model', 'SnapshotError', 'check_config', 'compact_kernel', 'consumed', 'default_epochs', 'default_threads', 'defaults', 'hash_string_id', 'limits', 'losses', 'needs_labels', 'openmp_enabled', 'parameters', 'partition_of', 'peek_snapshot', 'rating_loss', 'samples_negatives']
class IdKindError(TypeError):
    pass
class SnapshotError(ValueError):
    pass
class DeltaOrderError(ValueError):
    pass
class MissingFileError(FileNotFoundError):
    pass
class Model:
    source_position: str
    @staticmethod
    def load(path: str) -> Model:
        ...
    def __init__(self, config: dict) -> None:
        ...
    def add_shared(self, increment: dict) -> None:
        ...
    def add_to_shared_base(self, increment: dict) -> None:
        ...
    def apply_delta(self, path: str) -> None:
        ...
    def evict_before(self, cutoff: typing.SupportsFloat | typing.SupportsIndex) -> int:
        ...
    def explain(self, user: typing.Any, item: typing.Any, n: typing.SupportsInt | typing.SupportsIndex) -> list:
        ...
    def features_of(self, items: bool, id: typing.Any) -> list[str]:
        ...
    def fit(self, users: typing.Any, items: typing.Any, labels: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None, weights: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None, timestamps: typing.Annotated[numpy.typing.ArrayLike, numpy.float64] | None, epochs: typing.SupportsInt | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def hidden(self, items: typing.Any) -> numpy.typing.NDArray[numpy.uint8]:
        ...
    def hide(self, items: typing.Any, hidden: bool) -> tuple[int, int]:
        ...
    def item_names(self, ids: typing.Any) -> list:
        ...
    def knows_user(self, user: typing.Any) -> bool:
        ...
    def predict(self, users: typing.Any, items: typing.Any, num_threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
        ...
    def recommend(self, user: typing.Any, k: typing.SupportsInt | typing.SupportsIndex, exclude_seen: bool, num_threads: typing.SupportsInt | typing.SupportsIndex, diversity: typing.SupportsFloat | typing.SupportsIndex = 0.0, items: typing.Any = None, exclude: typing.Any = None, tags: typing.Any = None) -> tuple:
        ...
    def recommend_batch(self, users: typing.Any, k: typing.SupportsInt | typing.SupportsIndex, exclude_seen: bool, num_threads: typing.SupportsInt | typing.SupportsIndex, diversity: typing.SupportsFloat | typing.SupportsIndex = 0.0, items: typing.Any = None, exclude: typing.Any = None, tags: typing.Any = None) -> tuple:
        ...
    def recommend_for_history(self, history: typing.Any, weights: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None, k: typing.SupportsInt | typing.SupportsIndex, exclude_history: bool, num_threads: typing.SupportsInt | typing.SupportsIndex, diversity: typing.SupportsFloat | typing.SupportsIndex = 0.0, items: typing.Any = None, exclude: typing.Any = None, tags: typing.Any = None) -> tuple:
        ...
    def reset_shared_base(self) -> None:
        ...
    def save(self, path: str) -> None:
        ...
    def save_delta(self, path: str) -> None:
        ...
    def set_features(self, items: bool, ids: typing.Any, features: list) -> None:
        ...
    def set_item_names(self, ids: typing.Any, names: list) -> None:
        ...
    def shared_increment(self, base: dict) -> dict:
        ...
    def shared_rows(self) -> dict:
        ...
    def similar_items(self, items: typing.Any, k: typing.SupportsInt | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex, allow: typing.Any = None, exclude: typing.Any = None, tags: typing.Any = None) -> tuple:
        ...
    def stats(self) -> dict:
        ...
    def take_shared_increment(self) -> dict:
        ...
    def update(self, users: typing.Any, items: typing.Any, labels: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None, weights: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None, timestamps: typing.Annotated[numpy.typing.ArrayLike, numpy.float64] | None) -> None:
        ...
    def update_one(self, user: typing.Any, item: typing.Any, label: typing.Any = None, weight: typing.Any = 1.0, timestamp: typing.Any = None) -> None:
        ...
    def vectors(self, items: bool, ids: typing.Any) -> tuple[typing.Any, numpy.typing.NDArray[numpy.float32], numpy.typing.NDArray[numpy.float32]]:
        ...
    @property
    def change_count(self) -> int:
        ...
    @property
    def clock(self) -> float:
        ...
    @property
    def config(self) -> dict:
        ...
    @property
    def item_id_kind(self) -> str:
        ...
    @property
    def lineage(self) -> int:
        ...
    @property
    def n_items(self) -> int:
        ...
    @property
    def n_users(self) -> int:
        ...
    @property
    def sequence(self) -> int:
        ...
    @property
    def user_id_kind(self) -> str:
        ...
def _noop(user: typing.Any, item: typing.Any, label: typing.Any = None) -> None:
    """
    Does nothing: the cost of calling a bound function (benchmarks).
    """
def check_config(config: dict) -> None:
    """
    Raises ValueError naming the first argument that is out of range for its family.
    """
def compact_kernel() -> str:
    """
    The kernel retrieval='compact' scans with on this CPU: avx512-vnni, avx2 or portable.
    """
def consumed(loss: str, labels: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None, weights: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None, n: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.bool]:
    """
    Which events put their item among the user's consumed items (the core's rule; a missing label counts as 1, a missing weight as 1).
    """
def default_epochs(model: str) -> int:
    """
    How many passes fit makes over its events by default, for a model family.
    """
def default_threads() -> int:
    """
    Threads used when num_threads is None: OMP_NUM_THREADS if set, else all cores.
    """
def defaults(model: str) -> dict:
    """
    The default constructor arguments of a model family ('mf' or 'two_tower').
    """
def hash_string_id(arg0: str) -> int:
    ...
def losses(model: str) -> list[str]:
    """
    The losses a model family trains with.
    """
def needs_labels(loss: str) -> bool:
    """
    Whether events of this loss need labels (squared, huber: ratings; logistic: clicks).
    """
def parameters() -> list:
    """
    The model parameters, in table order: name, kind, choices, range, doc and each family's default.
    """
def partition_of(users: typing.Any, partitions: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.uint32]:
    """
    The partition of each user key (uint64 keys or a list of str) among `partitions` (the core's rule).
    """
def peek_snapshot(path: str) -> tuple[str, int, int]:
    """
    (kind, lineage, sequence) from a snapshot or delta file's verified header.
    """
def rating_loss(loss: str) -> bool:
    """
    Whether this loss regresses a rating (squared, huber).
    """
def samples_negatives(loss: str) -> bool:
    """
    Whether this loss learns implicit positives against sampled items (labels optional; a label <= 0 teaches nothing).
    """
limits: dict = {'max_dim': 65536, 'max_features_per_id': 1024, 'max_min_count': 65535, 'max_rows': 268435456, 'max_negatives': 4096, 'max_tower_layers': 8, 'max_tower_width': 8192, 'max_history': 1024, 'max_diversity': 1.0, 'diversity_pool_factor': 5, 'diversity_pool_min': 50, 'max_filter_ids': 1000000, 'max_filter_tags': 64, 'max_query_history': 10000, 'max_partitions': 4096}
openmp_enabled: bool = True
