"""The refits of a prequential replay, fitted once and shared by the policies that refit."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ..recommender import Recommender

__all__ = ["SharedRefits"]


class SharedRefits:
    """The refits of one replay, shared by the policies that refit.

    Periodic and hybrid refit the same fresh model at the same points (same events,
    parameters, seed and epochs), so the first policy to reach a point fits it and keeps a
    snapshot; the other starts from a copy of it (``Recommender.load`` keeps training exactly
    like the saved model) and is charged the fit's seconds, as if it had fitted it itself.
    The snapshots live in a temporary directory (one per refit, each deleted once every other
    refitting policy has loaded it). Models that cannot be saved (a custom factory's) are
    fitted by each policy, and so are all refits when only one policy refits.
    """

    def __init__(self, n_policies: int) -> None:
        self._copies = n_policies - 1  # how many other policies load each refit
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._saved: dict[int, tuple[str, float, int | None]] = {}
        self._loaded: dict[int, int] = {}

    def fit(self, at: int, fit: Callable[[], Recommender]) -> tuple[Recommender, float, bool]:
        """The model refitted on the events before ``at``, the seconds its fit took and
        whether it is a copy of another policy's refit."""
        if at in self._saved:
            path, seconds, threads = self._saved[at]
            model = Recommender.load(path, num_threads=threads)
            self._loaded[at] = self._loaded.get(at, 0) + 1
            if self._loaded[at] >= self._copies:  # nobody needs it any more
                del self._saved[at]
                Path(path).unlink(missing_ok=True)
            return model, seconds, True
        t0 = time.perf_counter()
        model = fit()
        seconds = time.perf_counter() - t0
        if self._copies > 0 and isinstance(model, Recommender):
            if self._dir is None:
                self._dir = tempfile.TemporaryDirectory(prefix="rtrec-refits-")
            path = f"{self._dir.name}/refit-{at}.rtrec"
            model.save(path)
            self._saved[at] = (path, seconds, model.get_params()["num_threads"])
        return model, seconds, False

    def close(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
        self._saved.clear()
        self._loaded.clear()
