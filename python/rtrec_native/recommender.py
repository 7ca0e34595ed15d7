"""The public model class: a thin, validating front end over the native core."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core, _params
from . import _validation as check
from ._item_names import ItemNamesMixin
from ._persistence import PersistenceMixin
from ._retrieval import MAX_FILTER_IDS, MAX_FILTER_TAGS, MAX_QUERY_HISTORY, RetrievalMixin, _ids_out
from .events import event_arguments

#: The mf family's default constructor arguments (see :func:`defaults` for either family).
DEFAULTS: dict[str, Any] = _params.defaults("mf")


# The core's limits, under the names the CLI uses.
MAX_DIM: int = _core.limits["max_dim"]
MAX_MIN_COUNT: int = _core.limits["max_min_count"]
MAX_ROWS: int = _core.limits["max_rows"]
#: ``diversity`` re-ranks the best max(DIVERSITY_POOL_FACTOR * k, DIVERSITY_POOL_MIN) items.
DIVERSITY_POOL_FACTOR: int = _core.limits["diversity_pool_factor"]
DIVERSITY_POOL_MIN: int = _core.limits["diversity_pool_min"]
__all__ = ["DEFAULTS", "MAX_FILTER_IDS", "MAX_FILTER_TAGS", "MAX_QUERY_HISTORY", "Recommender", "default_epochs",
           "defaults"]


def defaults(model: str = _params.DEFAULT_FAMILY) -> dict[str, Any]:
    """The default constructor arguments of a model family (``"mf"`` or ``"two_tower"``),
    as the native core defines them; arguments that do not apply to the family are None."""
    return _params.defaults(model)


def default_epochs(model: str = _params.DEFAULT_FAMILY) -> int:
    """How many passes ``fit`` makes over its events when ``epochs`` is not given, for a
    model family (``"mf"`` or ``"two_tower"``), as the native core defines it."""
    return _params.default_epochs(model)


_NOT_ONE = object()
_K_LIMIT = 1 << 32  # more than any catalogue holds; the core clamps k to the catalogue
_SCALAR_ID_TYPES = (int, str)


def _one(values: Any) -> Any:
    """The element of a one-element list or tuple, else a sentinel."""
    return values[0] if type(values) in (list, tuple) and len(values) == 1 else _NOT_ONE


def _single_event(users: Any, items: Any, labels: Any, weights: Any, timestamps: Any) -> tuple | None:
    """(user, item, label, weight, timestamp) when the batch is one event given as plain
    Python scalars in lists, which update_one checks exactly like update would; else None."""
    user, item = _one(users), _one(items)
    if type(user) not in _SCALAR_ID_TYPES or type(item) not in _SCALAR_ID_TYPES:
        return None
    fields = []
    for values in (labels, weights, timestamps):
        if values is None:
            fields.append(None)
            continue
        value = _one(values)
        # Plain floats and ints a double holds exactly; anything else takes the batch path,
        # whose checks and messages are the reference.
        if not (type(value) is float or (type(value) is int and -(2**53) <= value <= 2**53)):
            return None
        fields.append(value)
    label, weight, timestamp = fields
    return user, item, label, 1.0 if weight is None else weight, timestamp


class Recommender(RetrievalMixin, PersistenceMixin, ItemNamesMixin):
    """A recommender that learns from every event, in place, in one of two model families.

    ``model="mf"``, matrix factorisation: score(u, i) = mu + b_u + b_i +
    <p_u, q_i>. ``model="two_tower"``, the behaviour encoder and item decoder:
    score(u, i) = mu + b_i + <c_u, q_i> with c_u = tower([p_u ; h_u]) + p_u + h_u, where h_u
    is the recency-weighted mean of the *input* vectors of u's last ``history`` positive items
    and the tower is dense ReLU layers (``tower`` hidden widths) with a skip connection; each
    item has an input vector (pooled into its consumers' encodings) and an output vector q_i
    (scored); user ID rows start at zero. A user is encoded from what they just did,
    so one event already personalises their recommendations, where an ID embedding needs many
    steps; top-K is still one exact scan over the item vectors. mu is the running (weighted)
    mean label (its logit for ``loss="logistic"``; 0 for BPR and softmax); p_u and q_i are
    rows of a sparse embedding table that grows as new IDs appear, plus the rows of their side
    features. ``fit`` runs Hogwild epochs on all threads; ``update`` / ``update_one`` learn
    from live events one at a time and the very next ``predict``/``recommend`` (in any
    thread) sees the change.

    Every argument left at None takes the family's default (:func:`defaults`; the core owns
    them and their ranges). Arguments that do not apply to a family (``tower`` for mf, say)
    raise ValueError when given.

    Losses: ``"squared"`` and ``"huber"`` regress ratings (huber is squared within
    ``huber_delta`` of the label and linear beyond, so a wrong rating pulls with bounded force);
    ``"logistic"`` learns clicks (labels in [0, 1]); ``"bpr"``, mf's ``"warp"`` (LightFM's
    WARP: per positive, items are sampled until one scores within 1 of it, at most
    ``negatives`` tries, and that pair takes a BPR step weighted by the rank estimate) and
    two_tower's ``"softmax"`` (sampled softmax over the positive and ``negatives`` sampled
    items, accidental hits removed, with the log-probability correction of the sampling
    distribution) learn implicit positives: labels are optional and a label <= 0 is not a
    positive. Negatives are drawn without checking the user's history: with a catalogue much
    larger than one user's history such collisions are rare noise. Admission, expiry and caps
    are described in docs/dynamic-ids.md, the noisy-feedback options in docs/noisy-feedback.md,
    the retrieval modes in docs/retrieval-modes.md; ``rtrec_native.parameters()`` lists every
    parameter with its range.

    Args:
        model: ``"two_tower"`` (the default: it learns more from each event) or ``"mf"`` (the
            cheaper update and the smaller user row; the losses warp and huber).
        num_threads: threads for ``fit``, ``predict`` and ``recommend``; None uses the
            OpenMP default (``OMP_NUM_THREADS`` if set, else all cores); an int >= 1 is exact.
{model parameters}

    Evicted rows leave the model at once (their IDs score as unknown and are not
    recommended) and are reused by new IDs, with their seen items, history and features
    dropped (an evicted item also leaves every user's history), once no call that started
    before the eviction is still running. ``evict`` does the same on demand. Counts are in
    ``stats()["evicted_users"]`` / ``["evicted_items"]``, and deltas carry evicted IDs so
    replicas drop them too. An update racing with the eviction of its own ID may be lost,
    as if it had arrived just before the eviction.

    An update that would write a non-finite value is skipped and counted in
    ``stats()["skipped_updates"]``. IDs are int64 values or strings (not both on one side).
    All methods may be called concurrently from several Python threads: the GIL is released
    inside the core, parameter values are shared Hogwild-style (two threads updating the
    same two_tower user at once may also lose one of the two history entries), and the table
    structure is never raced on.
    """

    def __init__(
        self,
        model: str = _params.DEFAULT_FAMILY,
        dim: int | None = None,
        loss: str | None = None,
        optimizer: str | None = None,
        learning_rate: float | None = None,
        l2: float | None = None,
        negatives: int | None = None,
        num_threads: int | None = None,
        seed: int | None = None,
        grad_clip: float | None = None,
        init_std: float | None = None,
        negative_sampling: str | None = None,
        min_count: int | None = None,
        ttl: float | None = None,
        max_rows: int | None = None,
        tower: tuple[int, ...] | None = None,
        history: int | None = None,
        recency: float | None = None,
        dedup_window: float | None = None,
        max_user_rate: float | None = None,
        huber_delta: float | None = None,
        adaptive_step: bool | None = None,
        retrieval: str | None = None,
    ) -> None:
        given = {name: value for name, value in locals().items() if name in _params.NAMES}
        params = _params.resolve(model, given)
        threads = check.num_threads(num_threads)
        self._attach(_core.Model(params), threads, num_threads)

    def _attach(self, model: Any, threads: int, num_threads: int | None) -> None:
        """The one place a Recommender's state is set (``__init__`` and ``load``)."""
        self._model = model
        self._threads = threads
        self._params = {**model.config, "num_threads": num_threads}
        self._default_epochs = _params.default_epochs(self._params["model"])
        # The per-request path without a Python frame: the instance's update_one is the
        # native method itself (same signature, same checks; the method below documents it).
        self.update_one = model.update_one

    # ------------------------------------------------------------------ learning

    def fit(self, users: Any, items: Any = None, labels: Any = None, weights: Any = None, epochs: int | None = None,
            timestamps: Any = None) -> Recommender:
        """Train for ``epochs`` Hogwild passes over the events (shuffled each epoch).

        Calling ``fit`` again continues from the current parameters (it is a warm start, not a
        reset); new IDs in the new data get rows. Returns ``self``.

        Args:
            users, items: equal-length sequences of IDs (int64 or str; lists, arrays, Series).
                Or ``users`` is an ``Events`` or a pandas DataFrame (columns found by name as in
                ``data.load_events``) holding every field, and items, labels, weights and
                timestamps are left out.
            labels: ratings (squared), click labels in [0, 1] (logistic), or optional for BPR.
            weights: optional per-event importance >= 0 (a purchase may count 3, a view 0.2).
            epochs: passes over the data (>= 1); None: the family's default
                (:func:`default_epochs`: 40 for mf, 10 for two_tower).
            timestamps: optional event times in seconds (or datetime64), stored as each
                row's last-update time; the wall clock is used otherwise.
        """
        epochs = self._default_epochs if epochs is None else check.positive_int(epochs, "epochs")
        users, items, labels, weights, timestamps = event_arguments(users, items, labels, weights, timestamps)
        args = self._events(users, items, labels, weights, timestamps, allow_empty=False)
        self._model.fit(*args, epochs=epochs, num_threads=self._threads)
        return self

    def update(self, users: Any, items: Any = None, labels: Any = None, weights: Any = None,
               timestamps: Any = None) -> Recommender:
        """Learn from a batch of live events, one after another in the given order, in place.

        When this returns, every thread's next ``predict``/``recommend`` sees the new
        parameters. An empty batch is a no-op. The events come as ``fit`` takes them (separate
        sequences, or an ``Events`` / pandas DataFrame first). Returns ``self``.
        """
        single = _single_event(users, items, labels, weights, timestamps)
        if single is not None:  # one event in plain lists: skip the array machinery (~1 µs vs ~14)
            self._model.update_one(*single)
            return self
        users, items, labels, weights, timestamps = event_arguments(users, items, labels, weights, timestamps)
        args = self._events(users, items, labels, weights, timestamps, allow_empty=True)
        self._model.update(*args)
        return self

    def update_one(self, user: int | str, item: int | str, label: float | None = None, weight: float = 1.0,
                   timestamp: float | None = None) -> None:
        """Learn from a single event: the per-request fast path (about a microsecond for mf).

        Same semantics as ``update([user], [item], [label], [weight])``; the arguments are
        checked in the native layer to keep the call cheap (ValueError/TypeError naming the
        argument, the model unchanged, as in ``update``; messages are worded for one event).
        On an instance this name is bound straight to the native method (no Python frame in
        between); this definition documents it and serves subclasses that override it.
        """
        self._model.update_one(user, item, label, weight, timestamp)

    def _id_pairs(self, users: Any, items: Any, *, allow_empty: bool) -> tuple[Any, Any, int]:
        """Both sides' IDs normalised for the core, equal in length (the core checks their kinds)."""
        _, user_ids, n = check.ids(users, "users", allow_empty=allow_empty)
        _, item_ids, n_items = check.ids(items, "items", allow_empty=allow_empty)
        if n != n_items:
            raise ValueError(f"users and items must have the same length, got {n} and {n_items}")
        return user_ids, item_ids, n

    def _events(self, users: Any, items: Any, labels: Any, weights: Any, timestamps: Any, *,
                allow_empty: bool) -> tuple:
        user_ids, item_ids, n = self._id_pairs(users, items, allow_empty=allow_empty)
        loss = self._params["loss"]
        if labels is None:
            label_arr = None  # the core refuses it for a loss that needs labels (its rule, its message)
        elif loss == "logistic":
            label_arr = check.numbers(labels, "labels", n, np.float32, low=0.0, high=1.0)
        else:
            label_arr = check.numbers(labels, "labels", n, np.float32)
        weight_arr = None if weights is None else check.numbers(weights, "weights", n, np.float32, low=0.0)
        time_arr = None if timestamps is None else check.timestamps(timestamps, n)
        return user_ids, item_ids, label_arr, weight_arr, time_arr

    # ------------------------------------------------------------------ serving

    def predict(self, users: Any, items: Any) -> np.ndarray:
        """Scores for (user, item) pairs as float32: predicted rating (squared), click
        probability (logistic) or preference score (BPR). Unknown IDs score with zero
        vectors and biases (so an unknown pair gets mu)."""
        user_ids, item_ids, _ = self._id_pairs(users, items, allow_empty=True)
        return self._model.predict(user_ids, item_ids, num_threads=self._threads)

    def explain(self, user: int | str, item: int | str, n: int = 3) -> list[dict[str, Any]]:
        """Why ``item`` scores as it does for ``user``: up to ``n`` reasons, strongest first,
        each ``{"item": id, "weight": w}`` (one of the user's own past items) or
        ``{"feature": name, "weight": w}`` (a feature of the user or of the item).

        mf: weights are cosine similarities in the model's space — the user's consumed
        items by their similarity to ``item`` (as implicit's ALS ``explain`` lists the liked
        items behind a score), the item's features by their match to the user's vector, the
        user's features by their match to the item's vector. two_tower: weights are score
        contributions, computed by leave-one-out through the encoder: for each distinct item
        of the user's encoded history (the last ``history`` positives), the score of the
        history's encoding minus that score with the item left out (the user's ID row is left
        out of both, since it learned from those same items and would otherwise mask them);
        for each user feature, the score minus the score without it; for each item feature,
        its term of the score. Negative weights (reasons against) sort last. Computed in the
        core.

        Raises KeyError when the user or the item is not in the model.
        """
        user = check.scalar_id(user, "user")
        item = check.scalar_id(item, "item")
        n = check.positive_int(n, "n")
        return self._model.explain(user, item, min(n, _K_LIMIT))

    # ------------------------------------------------------------------ side features

    def set_item_features(self, items: Any, features: Any) -> Recommender:
        """Give items side features (cold start): ``features`` holds one list of strings per
        item, e.g. ``[["genre=drama", "brand=acme"], ...]``.

        Each distinct feature gets its own embedding row (and bias) in the item side's
        feature table, starting at zero; an item's vector (and bias) everywhere, in training,
        ``predict`` and ``recommend``, is its ID row plus the sum of its features' rows
        scaled by 1/sqrt(n) (so many features do not inflate the norm). Training moves the
        feature rows too, so an item with no interactions yet scores like the items that
        share its features. Items get a row if they have none (they are recommendable at
        once). Calling it again replaces an item's features; an empty list removes them.
        The whole batch is checked before anything changes. Returns ``self``.
        """
        self._set_features(True, items, features)
        return self

    def set_user_features(self, users: Any, features: Any) -> Recommender:
        """The same for users (e.g. ``["country=fr", "device=ios"]``): a new user's first
        recommendations then follow what users like them liked. Returns ``self``."""
        self._set_features(False, users, features)
        return self

    def item_features(self, item: int | str) -> list[str]:
        """The features of an item (empty when it has none or is unknown)."""
        return self._model.features_of(True, check.scalar_id(item, "item"))

    def user_features(self, user: int | str) -> list[str]:
        """The features of a user (empty when they have none or are unknown)."""
        return self._model.features_of(False, check.scalar_id(user, "user"))

    def _set_features(self, on_items: bool, ids: Any, features: Any) -> None:
        side = "items" if on_items else "users"
        _, payload, n = check.ids(ids, side)
        lists = check.feature_lists(features, n)
        self._model.set_features(on_items, payload, lists)

    # ------------------------------------------------------------------ expiry

    def evict(self, older_than: float, now: float | None = None) -> int:
        """Evict every user and item row not updated in the last ``older_than`` seconds;
        returns how many rows were evicted.

        Times are the model's clock: the newest event time seen (see ``ttl``), unless
        ``now`` (seconds, e.g. ``time.time()``) is given. Safe while other threads
        recommend and update; evicted IDs score as unknown at once and their rows are
        reused by new IDs.
        """
        older_than = check.real(older_than, "older_than", low=0.0, low_inclusive=True)
        reference = self._model.clock if now is None else check.finite(now, "now")
        return int(self._model.evict_before(reference - older_than))

    # ------------------------------------------------------------------ export

    def item_vectors(self, ids: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ids, vectors, biases)`` of the given items (None: every item), ``vectors``
        float32 of shape (n, dim): each item's vector and bias as scoring uses them (the ID
        row plus its features). For any user, ranking items by ``user_vector @ item_vector +
        item_bias`` is exactly ``recommend``'s order, so these feed an ANN index (faiss, say)
        or another system. Unknown IDs raise KeyError."""
        return self._vectors(True, ids)

    def user_vectors(self, ids: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ids, vectors, biases)`` of the given users (None: every user): the query vector
        each user's recommendations are scored with (mf: the user's vector with features;
        two_tower: the encoding of their current history, bias 0). See ``item_vectors``."""
        return self._vectors(False, ids)

    def _vectors(self, on_items: bool, ids: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        payload = None
        if ids is not None:
            side = "items" if on_items else "users"
            _, payload, _ = check.ids(ids, side)
        found, vectors, biases = self._model.vectors(on_items, payload)
        return _ids_out(found), vectors, biases

    # ------------------------------------------------------------------ introspection

    @property
    def n_users(self) -> int:
        """Users with a row (seen in an event and not evicted)."""
        return self._model.n_users

    @property
    def n_items(self) -> int:
        """Items with a row (seen in an event and not evicted): the catalogue that
        ``recommend`` ranks."""
        return self._model.n_items

    def stats(self) -> dict[str, Any]:
        """Counters: n_users, n_items, updates (gradient steps applied), skipped_updates
        (steps dropped because they would write a non-finite value), not_admitted (events
        not learned because an ID had not reached ``min_count``), evicted_users and
        evicted_items (rows evicted so far), deduplicated and rate_limited (``update`` events
        not learned by ``dedup_window`` / ``max_user_rate``), clock (newest event time seen, seconds),
        item_names (items with a display name), seen_pairs, memory_bytes (tables, index, seen
        lists, two_tower's histories and tower, item names),
        global_bias, plus the model family, dim, loss, optimizer and threads."""
        out = dict(self._model.stats())
        out["model"] = self._params["model"]
        out["dim"] = self._params["dim"]
        out["loss"] = self._params["loss"]
        out["optimizer"] = self._params["optimizer"]
        out["num_threads"] = self._threads or _core.default_threads()
        out["openmp"] = bool(_core.openmp_enabled)
        return out

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, every default filled in (``Recommender(**p)`` builds
        an untrained model like this one)."""
        return dict(self._params)

    @property
    def user_id_kind(self) -> str | None:
        """``"int"`` or ``"str"``: the kind of user IDs this model holds (None before the first)."""
        kind = self._model.user_id_kind
        return None if kind == "unset" else kind

    @property
    def item_id_kind(self) -> str | None:
        """``"int"`` or ``"str"``: the kind of item IDs this model holds (None before the first)."""
        kind = self._model.item_id_kind
        return None if kind == "unset" else kind

    @property
    def change_count(self) -> int:
        """A counter that moves whenever a call changed the model (training, features,
        evictions, applied deltas): a publisher that sees it unchanged since its last delta has
        nothing to write."""
        return self._model.change_count

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"Recommender({args}; n_users={self.n_users}, n_items={self.n_items})"


# The model parameters' entries of the docs come from the core's table, like their checks.
Recommender.__doc__ = (Recommender.__doc__ or "").replace("{model parameters}", _params.args_doc(" " * 8))
