"""Built-in data: a seeded synthetic feedback stream with drift.

The stream exists so that the demo and the tests have real structure to learn without
any download. It imitates a news/e-commerce feed:

* **Who acts**: user activity is Zipf-distributed (a few heavy users, a long tail).
* **What exists**: part of the catalogue is there from the start, the rest is *born*
  at random times; an item is never shown before its birth. Item popularity is Zipf
  and *decays* with age (half-life), so the popular set keeps moving.
* **Taste**: users and items have low-rank latent factors; a user's taste *drifts* at
  random times (the factor vector is rotated towards a fresh random direction).
* **Exposure**: for each event, ``n_candidates`` alive items are drawn by current
  popularity and one is shown with probability ∝ ``exp(selectivity × logit)``, as a
  decent recommender would show it.
* **Feedback**: the user clicks with probability ``sigmoid(logit)`` where
  ``logit = global_bias + item_bias + ⟨p_u(t), q_i⟩`` (label 1/0); clicks may turn into
  purchases (event type ``view``/``click``/``purchase``).

:func:`synthetic_stream` returns just the :class:`~rtrec_native.events.Events`;
:func:`generate_stream` also returns the ground truth (:class:`SyntheticStream`).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ParamSpec

import numpy as np

from .events import Events

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

__all__ = ["EVENT_TYPES", "SyntheticStream", "generate_stream", "synthetic_stream"]

#: Event type names, indexed by :attr:`SyntheticStream.event_codes`.
EVENT_TYPES: tuple[str, ...] = ("view", "click", "purchase")

# Time buckets used to refresh the alive set and decayed popularity. An event uses the
# catalogue as of the start of its bucket, which is what guarantees "never before birth".
_N_TIME_BUCKETS = 100


@dataclass(frozen=True, eq=False)
class SyntheticStream:
    """A generated stream together with the hidden truth that produced it.

    Attributes:
        events: the observable stream (int64 IDs, 0/1 float32 labels, increasing
            float64 timestamps in seconds, no weights).
        event_codes: int8 index into :data:`EVENT_TYPES` per event (0 view = shown and not
            clicked, 1 click, 2 purchase = a click that converted).
        logits: float64 true click logit of each event.
        user_versions: ``[n_versions, dim]`` every taste vector any user ever had.
        event_user_version: row of ``user_versions`` in force for each event's user.
        initial_user_factors: ``[n_users, dim]`` tastes at the start of the stream.
        item_factors: ``[n_items, dim]`` item factors.
        item_bias: ``[n_items]`` item click biases.
        global_bias: the global click bias.
        item_birth: ``[n_items]`` time (seconds, same clock as timestamps) each item
            becomes available; item IDs are in birth order.
        drift_users, drift_times: one entry per taste jump (sorted by user, then time).
    """

    events: Events
    event_codes: np.ndarray
    logits: np.ndarray
    user_versions: np.ndarray
    event_user_version: np.ndarray
    initial_user_factors: np.ndarray
    item_factors: np.ndarray
    item_bias: np.ndarray
    global_bias: float
    item_birth: np.ndarray
    drift_users: np.ndarray
    drift_times: np.ndarray

    @property
    def click_probabilities(self) -> np.ndarray:
        """``sigmoid(logits)``: the true probability that each event is a click."""
        return 1.0 / (1.0 + np.exp(-self.logits))

    @property
    def event_types(self) -> np.ndarray:
        """Object array of ``"view"``/``"click"``/``"purchase"`` per event."""
        return np.array(EVENT_TYPES, dtype=object)[self.event_codes]

    def to_dataframe(self) -> pd.DataFrame:
        """The events as a DataFrame with an extra ``event`` column (the event type).

        Feeds straight into ``load_events(df, event_weights={...})``.
        """
        frame = self.events.to_dataframe()
        frame["event"] = self.event_types
        return frame


# --------------------------------------------------------------------------- validation


def _check_int(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")


def _check_range(name: str, value: float, lo: float, hi: float, *, hi_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    ok = lo <= value < hi if hi_open else lo <= value <= hi
    if not (math.isfinite(value) and ok):
        bracket = ")" if hi_open else "]"
        raise ValueError(f"{name}: expected a value in [{lo}, {hi}{bracket}, got {value}")


# --------------------------------------------------------------------------- pieces


def _zipf_probabilities(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Probabilities ∝ rank^-exponent, ranks randomly assigned so IDs carry no signal."""
    weights = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    probabilities = np.empty(n)
    probabilities[rng.permutation(n)] = weights / weights.sum()
    return probabilities


def _latent(rng: np.random.Generator, rows: int, dim: int, scale: float) -> np.ndarray:
    # With entries ~ N(0, s^2), <p, q> has std s^2 * sqrt(dim); choose s so it is `scale`.
    s = math.sqrt(scale / math.sqrt(dim))
    return rng.normal(0.0, s, size=(rows, dim))


def _drift(
    rng: np.random.Generator,
    initial: np.ndarray,
    drift_rate: float,
    drift_strength: float,
    scale: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Taste jumps: returns ``(versions, version_offset, drift_users, drift_times01)``.

    User ``u``'s j-th taste is ``versions[version_offset[u] + j]``; version 0 is the
    initial taste and each jump rotates the previous one towards a fresh random
    direction by ``drift_strength × 90°`` (1 = an unrelated new taste). Rotation keeps
    the distribution of the vectors, so affinities stay on the same scale.
    """
    n_users, dim = initial.shape
    n_drifts = np.asarray(rng.poisson(drift_rate, size=n_users))
    drift_users = np.repeat(np.arange(n_users), n_drifts)
    drift_times01 = rng.random(drift_users.size)
    order = np.lexsort((drift_times01, drift_users))
    drift_users, drift_times01 = drift_users[order], drift_times01[order]

    version_offset = np.concatenate([[0], np.cumsum(1 + n_drifts)[:-1]])
    versions = np.empty((n_users + drift_users.size, dim))
    versions[version_offset] = initial
    angle = drift_strength * math.pi / 2
    for level in range(1, int(n_drifts.max(initial=0)) + 1):
        rows = version_offset[n_drifts >= level] + level
        fresh = _latent(rng, rows.size, dim, scale)
        versions[rows] = math.cos(angle) * versions[rows - 1] + math.sin(angle) * fresh
    return versions, version_offset, drift_users, drift_times01


def _versions_in_force(
    users: np.ndarray,
    times01: np.ndarray,
    drift_users: np.ndarray,
    drift_times01: np.ndarray,
    version_offset: np.ndarray,
) -> np.ndarray:
    """For each event, the index of the user's taste version at that time."""
    # One sorted key per drift, user + time/2 (time in [0, 1)), so a single
    # searchsorted counts the user's jumps that happened before each event.
    drift_keys = drift_users + drift_times01 / 2
    event_keys = users + times01 / 2
    jumps_before = np.searchsorted(drift_keys, event_keys, side="right") - np.searchsorted(
        drift_keys, users.astype(np.float64), side="left"
    )
    return version_offset[users] + jumps_before


def _item_births(
    rng: np.random.Generator, n_items: int, new_item_fraction: float, duration: float
) -> np.ndarray:
    """Birth times (relative seconds), sorted, so item IDs are in birth order."""
    n_new = min(round(new_item_fraction * n_items), n_items - 1)  # keep >= 1 at t=0
    births = np.zeros(n_items)
    births[n_items - n_new :] = np.sort(rng.random(n_new)) * duration
    return births


# --------------------------------------------------------------------------- generator


def generate_stream(
    n_users: int = 2000,
    n_items: int = 1000,
    n_events: int = 100_000,
    dim: int = 8,
    seed: int = 0,
    *,
    drift_rate: float = 1.0,
    drift_strength: float = 0.8,
    new_item_fraction: float = 0.7,
    popularity_half_life: float | None = 0.1,
    user_zipf: float = 0.8,
    item_zipf: float = 1.0,
    affinity_scale: float = 2.0,
    item_bias_std: float = 0.5,
    global_bias: float = -3.0,
    n_candidates: int = 20,
    selectivity: float = 1.0,
    purchase_rate: float = 0.2,
    duration: float = 30 * 86_400.0,
    start_time: float = 1_700_000_000.0,
) -> SyntheticStream:
    """Generate a seeded synthetic feedback stream and its ground truth.

    Args:
        n_users, n_items, n_events: sizes. User IDs are ``0..n_users-1``, item IDs
            ``0..n_items-1`` in birth order.
        dim: rank of the latent tastes.
        seed: everything is drawn from ``numpy.random.default_rng(seed)``.
        drift_rate: expected number of taste jumps per user over the stream (Poisson).
        drift_strength: how far a jump rotates the taste, from 0 (no change) to 1 (an
            unrelated new taste).
        new_item_fraction: fraction of the catalogue born during the stream (uniform
            times) rather than present at the start; at least one item is present at
            the start.
        popularity_half_life: fraction of ``duration`` after which an item's
            popularity halves; ``None`` for no decay.
        user_zipf, item_zipf: Zipf exponents of user activity and item popularity.
        affinity_scale: standard deviation of the taste term ``⟨p_u, q_i⟩``.
        item_bias_std: standard deviation of the item click biases.
        global_bias: global click bias (lower = fewer clicks).
        n_candidates: alive items drawn by popularity per event, one of which is shown.
        selectivity: how strongly exposure favours high-affinity candidates (0 = shown
            at random among the candidates).
        purchase_rate: probability that a click is also a purchase.
        duration: span of the stream in seconds (default 30 days).
        start_time: epoch seconds of the start of the stream.

    Returns:
        A :class:`SyntheticStream`; its ``events`` have increasing timestamps.
    """
    for int_name, int_value in (
        ("n_users", n_users),
        ("n_items", n_items),
        ("n_events", n_events),
        ("dim", dim),
        ("n_candidates", n_candidates),
    ):
        _check_int(int_name, int_value, 1)
    _check_int("seed", seed, 0)
    _check_range("drift_rate", drift_rate, 0.0, 1e6)
    _check_range("drift_strength", drift_strength, 0.0, 1.0)
    _check_range("new_item_fraction", new_item_fraction, 0.0, 1.0)
    if popularity_half_life is not None:
        _check_range("popularity_half_life", popularity_half_life, 1e-9, math.inf, hi_open=True)
    for name, value in (
        ("user_zipf", user_zipf),
        ("item_zipf", item_zipf),
        ("affinity_scale", affinity_scale),
        ("item_bias_std", item_bias_std),
        ("selectivity", selectivity),
    ):
        _check_range(name, value, 0.0, 1e6)
    _check_range("global_bias", global_bias, -1e6, 1e6)
    _check_range("purchase_rate", purchase_rate, 0.0, 1.0)
    _check_range("duration", duration, 1e-9, math.inf, hi_open=True)
    _check_range("start_time", start_time, -1e12, 1e12)

    rng = np.random.default_rng(seed)

    # When: a Poisson process over [0, duration) is uniform times, sorted.
    times01 = np.sort(rng.random(n_events))
    users = rng.choice(n_users, size=n_events, p=_zipf_probabilities(n_users, user_zipf, rng))

    # Who likes what, and how that changes.
    initial = _latent(rng, n_users, dim, affinity_scale)
    item_factors = _latent(rng, n_items, dim, affinity_scale)
    item_bias = rng.normal(0.0, item_bias_std, size=n_items)
    versions, version_offset, drift_users, drift_times01 = _drift(
        rng, initial, drift_rate, drift_strength, affinity_scale
    )
    event_version = _versions_in_force(users, times01, drift_users, drift_times01, version_offset)

    # What exists and how popular it is.
    births01 = _item_births(rng, n_items, new_item_fraction, 1.0)
    base_popularity = _zipf_probabilities(n_items, item_zipf, rng)

    items = np.empty(n_events, dtype=np.int64)
    logits = np.empty(n_events)
    bucket_of_event = np.minimum((times01 * _N_TIME_BUCKETS).astype(np.int64), _N_TIME_BUCKETS - 1)
    bucket_bounds = np.searchsorted(bucket_of_event, np.arange(_N_TIME_BUCKETS + 1))
    for bucket in range(_N_TIME_BUCKETS):
        lo, hi = bucket_bounds[bucket], bucket_bounds[bucket + 1]
        if lo == hi:
            continue
        popularity = _popularity_at(
            bucket / _N_TIME_BUCKETS, births01, base_popularity, popularity_half_life
        )
        candidates = rng.choice(n_items, size=(hi - lo, n_candidates), p=popularity)
        taste = versions[event_version[lo:hi]]
        candidate_logits = (
            global_bias
            + item_bias[candidates]
            + np.einsum("ed,ecd->ec", taste, item_factors[candidates])
        )
        # Gumbel-max: picks a candidate with probability ∝ exp(selectivity × logit).
        chosen = np.argmax(
            selectivity * candidate_logits + rng.gumbel(size=candidate_logits.shape), axis=1
        )
        rows = np.arange(hi - lo)
        items[lo:hi] = candidates[rows, chosen]
        logits[lo:hi] = candidate_logits[rows, chosen]

    clicks = rng.random(n_events) < 1.0 / (1.0 + np.exp(-logits))
    purchases = clicks & (rng.random(n_events) < purchase_rate)
    event_codes = (clicks.astype(np.int8) + purchases.astype(np.int8)).astype(np.int8)

    events = Events(
        users=users.astype(np.int64),
        items=items,
        labels=clicks.astype(np.float32),
        timestamps=start_time + times01 * duration,
        weights=None,
    )
    return SyntheticStream(
        events=events,
        event_codes=event_codes,
        logits=logits,
        user_versions=versions,
        event_user_version=event_version,
        initial_user_factors=initial,
        item_factors=item_factors,
        item_bias=item_bias,
        global_bias=float(global_bias),
        item_birth=start_time + births01 * duration,
        drift_users=drift_users,
        drift_times=start_time + drift_times01 * duration,
    )


def _popularity_at(
    time01: float,
    births01: np.ndarray,
    base_popularity: np.ndarray,
    half_life: float | None,
) -> np.ndarray:
    """Sampling probabilities over items at ``time01``: alive only, decayed by age."""
    age = time01 - births01
    alive = age >= 0
    weights = np.where(alive, base_popularity, 0.0)
    if half_life is not None:
        weights = weights * np.exp2(-np.maximum(age, 0.0) / half_life)
    total = weights.sum()
    if total <= 0:  # every alive item decayed to 0 in float64: fall back to uniform
        weights, total = alive.astype(np.float64), float(alive.sum())
    return weights / total


# --------------------------------------------------------------------------- events only

_P = ParamSpec("_P")


def _events_only(
    generate: Callable[_P, SyntheticStream], name: str, doc: str
) -> Callable[_P, Events]:
    """Wrap ``generate`` so it returns only the events; parameters stay in one place."""

    @functools.wraps(generate)
    def events_only(*args: _P.args, **kwargs: _P.kwargs) -> Events:
        return generate(*args, **kwargs).events

    events_only.__name__ = events_only.__qualname__ = name
    events_only.__doc__ = doc
    events_only.__signature__ = inspect.signature(generate).replace(  # type: ignore[attr-defined]
        return_annotation="Events"
    )
    return events_only


synthetic_stream = _events_only(
    generate_stream,
    "synthetic_stream",
    """Generate the default synthetic feedback stream as :class:`Events`.

    Same parameters as :func:`generate_stream` (``n_users=2000, n_items=1000,
    n_events=100_000, dim=8, seed=0``, drift and popularity options); returns only the
    observable events: int64 user/item IDs, 0/1 float32 click labels and increasing
    float64 timestamps in seconds. Use :func:`generate_stream` for the hidden ground
    truth.
    """,
)


def two_genre_cold_start(n_users: int = 3000, per_genre: int = 5, per_user: int = 3
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, list[str]], int]:
    """A planted feature cold-start case: can a shared feature row carry a cold item?

    Items ``0 .. 2 * per_genre - 1`` alternate between two genres; user ``u`` likes genre
    ``u % 2`` only and takes ``per_user`` items of it, every item of a genre equally often.
    Two cold items, ``n = 2 * per_genre`` (genre 0) and ``n + 1`` (genre 1), have their genre
    feature and no events. A model that learned the genres ranks each user's genre's cold
    item above the other's.

    Returns ``(users, items, taste, features, n)``: the events as int64 arrays, each user's
    liked genre, ``{item: ["genre=g"]}`` for every item including the cold ones, and the
    first cold item's ID.
    """
    _check_int("n_users", n_users, 2)
    _check_int("per_genre", per_genre, 1)
    _check_int("per_user", per_user, 1)
    n_items = 2 * per_genre
    genre = np.arange(n_items) % 2
    taste = np.arange(n_users) % 2
    pools = [np.flatnonzero(genre == g) for g in (0, 1)]
    taken = [0, 0]  # items handed out per genre so far: each in turn
    users, items = [], []
    for u in range(n_users):
        g = int(taste[u])
        for _ in range(per_user):
            items.append(int(pools[g][taken[g] % per_genre]))
            taken[g] += 1
            users.append(u)
    features = {i: [f"genre={genre[i]}"] for i in range(n_items)}
    features.update({n_items: ["genre=0"], n_items + 1: ["genre=1"]})
    return np.array(users, dtype=np.int64), np.array(items, dtype=np.int64), taste, features, n_items
