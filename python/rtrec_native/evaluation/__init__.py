"""Offline evaluation: temporal splits and prequential (test-then-train) replay.

Two protocols, both over time-ordered :class:`~rtrec_native.data.Events`:

* :func:`temporal_split` + :func:`evaluate_split` — the classic offline protocol: train on
  the past, test on the future. The cut is either **global** (one timestamp for everyone)
  or **per user** (the last fraction of each user's events). Ranking metrics never count
  an item the user already consumed in the training part: it is left out of the top-K and
  dropped from the relevant set.

* :func:`prequential` — replays the stream and compares how models are kept fresh:

  ``realtime``
      learns from every event: after each micro-batch has been scored, ``rec.update`` is
      called on it (events applied one by one, in arrival order, inside the core).
  ``periodic``
      the industry baseline: a *fresh* model is refitted on all events so far every
      ``retrain_every`` events (and/or every ``retrain_period`` seconds of event time).
  ``static``
      fitted once on the warm-up prefix, then frozen.
  ``hybrid``
      both: the periodic refits (``refit_epochs`` passes each), with every event learned
      in between, as a trainer that refits on a schedule and hands over to live learning.
      Periodic and hybrid share each refit: it is fitted once and the other policy starts
      from a snapshot of it.

  All four start from the same warm-up fit (same data, parameters and seed) and are
  scored on exactly the same events after it. Scoring is **test-then-train per
  micro-batch of B events**: the B events of a batch are scored together (one ``predict``
  call and one ``recommend_batch`` call) by the model as it was before the batch, then
  the batch is learned (realtime, hybrid); a refit that is due (periodic, hybrid)
  replaces the model before the next batch is scored. With
  ``batch_size=1`` this is exact per-event prequential evaluation; a larger batch only
  delays what the realtime model has learned by less than B events, so it understates
  the real-time advantage rather than inflating it.

Metrics per scored event (overall, and per window of equal event counts):

* **Ranking** — for each event that is a *new* positive (the first time this user
  consumes this item, with a label at or above ``positive_threshold``): is the item in the
  user's top-``k`` (HitRate@k), and at which rank (NDCG@k, binary gain). Items the user has
  already consumed in the stream are excluded from the top-``k`` for every policy alike, by
  the stream itself and not by the model's own seen list (which stops at a frozen model's
  last fit, misses the events of IDs not yet admitted by ``min_count`` and is lost with an
  evicted user): each model is asked for extra items and the consumed ones are filtered
  out, as a serving layer with the user's history would do.
* **Pointwise** — ``predict`` on every scored event before it is learned: AUC (and log
  loss for ``loss="logistic"``) for 0/1 labels, RMSE and MAE for ``loss="squared"``.

"Consumed" is the core's rule, the one its seen lists follow (``rtrec_native._core.consumed``,
what :meth:`Recommender.recommend`'s ``exclude_seen`` leaves out): an event with weight > 0
and, for ``squared`` any label, for ``logistic`` a label >= 0.5, for ``bpr``, ``warp`` and ``softmax``
a label > 0 (or no label).

The parts: :mod:`.split` (temporal split and its evaluation), :mod:`.replay` (prequential
replay), :mod:`.reports` (the replay's report types), :mod:`._ranking` (top-K without
consumed items), :mod:`._refits` (the refits periodic and hybrid share) and :mod:`._common`
(checks and defaults both protocols share).
"""

from __future__ import annotations

from ._common import ModelSpec, default_positive_threshold, infer_loss
from .replay import POLICIES, prequential
from .reports import PolicyResult, PrequentialReport, WindowSpan
from .split import SplitEvaluation, TemporalSplit, evaluate_split, temporal_split

__all__ = [
    "POLICIES",
    "ModelSpec",
    "PolicyResult",
    "PrequentialReport",
    "SplitEvaluation",
    "TemporalSplit",
    "WindowSpan",
    "default_positive_threshold",
    "evaluate_split",
    "infer_loss",
    "prequential",
    "temporal_split",
]
