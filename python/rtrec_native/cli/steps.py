"""The steps the commands share: load the data, read the side features, build a model and
fit it, run a prequential replay."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import _params
from .errors import EVENT_COLUMN_FLAGS, CliError, cli_hints, one_line

DAY = 86_400.0


# =========================================================================== shared steps


def load_data(args: argparse.Namespace) -> tuple[Any, dict[str, Any], bool]:
    """Return ``(events, data_info, is_synthetic)`` for the --data / synthetic options."""
    if args.data is None:
        for flag in ("user_col", "item_col", "label_col", "time_col"):
            if getattr(args, flag) is not None:
                raise CliError(f"--{flag.replace('_', '-')} needs --data")
        from ..datasets import synthetic_stream

        events = synthetic_stream(n_users=args.users, n_items=args.items, n_events=args.events, seed=args.seed)
        info = {"source": "synthetic", "n_events": len(events), "n_users": args.users,
                "n_items": args.items, "seed": args.seed}
        return events, info, True
    from ..data import load_events

    try:
        events, report = load_events(
            args.data, user_col=args.user_col, item_col=args.item_col,
            label_col=args.label_col, time_col=args.time_col, delimiter=args.sep,
        )
    except ValueError as exc:  # the library's hints name its arguments; here they are flags
        raise CliError(cli_hints(one_line(str(exc)), EVENT_COLUMN_FLAGS)) from None
    # The report always goes to stderr (stdout stays the command's output, JSON or table):
    # nobody should learn from a file without seeing what was dropped from it.
    print(report, file=sys.stderr, flush=True)
    if args.strict and report.n_dropped:
        raise CliError(f"--strict: {report.n_dropped:,} of {report.n_input:,} rows of {args.data} would be dropped: "
                       + "; ".join(report.problems()))
    if len(events) == 0:
        raise CliError(f"{args.data}: no valid events left after cleaning ({report.n_dropped} dropped)")
    return events, {"source": str(args.data), "cleaning": report.to_dict()}, False


def family(args: argparse.Namespace) -> str:
    """--family, or the command line's default family."""
    from .options import DEFAULT_FAMILY

    return args.family or DEFAULT_FAMILY


def model_params(args: argparse.Namespace, labels: Any) -> dict[str, Any]:
    """Recommender's arguments from the model options (one per parameter of the core's table):
    an option not given is left out, so the family's default applies."""
    from ..evaluation import infer_loss

    params: dict[str, Any] = {
        "model": family(args),
        "loss": infer_loss(labels, family(args)) if args.loss == "auto" else args.loss,
        "num_threads": args.threads,  # None: all cores, a setting of its own
    }
    for name in _params.NAMES:
        value = getattr(args, name, None)
        if name not in params and value is not None:
            params[name] = value
    return params


# --------------------------------------------------------------------------- side features


class SideFeatures:
    """Features read from ``--item-features`` / ``--user-features``: IDs and one list of
    strings per ID, ready for ``set_item_features`` / ``set_user_features``."""

    def __init__(self, side: str, path: Path, ids: np.ndarray, lists: list[list[str]]) -> None:
        self.side, self.path, self.ids, self.lists = side, path, ids, lists
        self.n_in_file = len(ids)
        self.n_in_data: int | None = None  # IDs of the file found in the data (when checked)

    @property
    def flag(self) -> str:
        return f"--{self.side}-features"

    def check_against(self, data_ids: np.ndarray) -> SideFeatures:
        """Fail clearly when the file cannot be about the data's IDs; count the overlap."""
        ours, theirs = _id_kind(self.ids), _id_kind(data_ids)
        if ours != theirs:
            raise CliError(f"{self.flag} {self.path}: its IDs are {ours}s but the data's {self.side} IDs "
                           f"are {theirs}s")
        self.n_in_data = int(np.isin(self.ids, data_ids).sum())
        if self.n_in_data == 0:
            raise CliError(f"{self.flag} {self.path}: none of its {len(self.ids):,} IDs is a {self.side} of "
                           f"the data (choose the ID column with --{self.side}-feature-id-col)")
        return self

    def restricted_to(self, data_ids: np.ndarray) -> SideFeatures:
        """Only the IDs that occur in the data: an evaluation ranks the data's catalogue."""
        keep = np.isin(self.ids, data_ids)
        out = SideFeatures(self.side, self.path, self.ids[keep],
                            [features for features, kept in zip(self.lists, keep, strict=True) if kept])
        out.n_in_file, out.n_in_data = self.n_in_file, len(out.ids)
        return out

    def apply(self, rec: Any) -> None:
        setter = rec.set_item_features if self.side == "item" else rec.set_user_features
        try:
            setter(self.ids, self.lists)
        except (ValueError, TypeError) as exc:
            raise CliError(f"{self.flag} {self.path}: {one_line(str(exc))}") from None

    def info(self) -> dict[str, Any]:
        """For JSON output: the file, its IDs, how many are in the data, how many got their
        features (all, or the data's only in an evaluation) and the distinct features."""
        return {"path": str(self.path), "n_ids": self.n_in_file, "n_in_data": self.n_in_data,
                "n_applied": len(self.ids), "n_features": len({f for features in self.lists for f in features})}

    def describe(self) -> str:
        return (f"{self.side} features from {self.path}: {self.info()['n_features']:,} distinct on "
                f"{len(self.ids):,} {self.side}s")


def _id_kind(ids: np.ndarray) -> str:
    return "string" if ids.dtype == object else "integer"


def load_side_features(args: argparse.Namespace) -> list[SideFeatures]:
    """The --item-features / --user-features files, loaded (none given: an empty list)."""
    out = []
    if getattr(args, "catalog_genres", False):
        if args.item_features is not None:
            raise CliError("--catalog-genres reads the item features from --catalog; drop --item-features")
        args.item_features = args.catalog
        args.item_feature_prefix = args.item_feature_prefix or "genre"
    for side in ("item", "user"):
        path = getattr(args, f"{side}_features")
        cols = getattr(args, f"{side}_feature_col")
        prefix = getattr(args, f"{side}_feature_prefix")
        id_col = getattr(args, f"{side}_feature_id_col")
        duplicates = getattr(args, f"{side}_feature_duplicates")
        if path is None:
            for flag, value in (("col", cols), ("prefix", prefix), ("id-col", id_col), ("duplicates", duplicates)):
                if value is not None:
                    raise CliError(f"--{side}-feature-{flag} needs --{side}-features")
            continue
        from ..data import load_features

        try:
            ids, lists = load_features(path, id_col=id_col, prefix=prefix, duplicates=duplicates or "error",
                                       delimiter=getattr(args, "sep", None),
                                       feature_col=None if cols is None else cols[0] if len(cols) == 1 else cols)
        except (ValueError, TypeError, OSError, ImportError) as exc:
            # The library's message, its hints turned into this side's flags, with the option
            # and file it is about.
            message = cli_hints(one_line(str(exc)) or type(exc).__name__,
                                {"id_col": f"--{side}-feature-id-col", "feature_col": f"--{side}-feature-col"})
            if str(path) not in message:
                message = f"{path}: {message}"
            raise CliError(f"--{side}-features: {message}") from None
        out.append(SideFeatures(side, Path(path), ids, lists))
    return out


def features_for(args: argparse.Namespace, events: Any, data_info: dict[str, Any], *,
                  data_ids_only: bool) -> list[SideFeatures]:
    """The side features files, checked against the events (recorded in ``data_info``).
    ``data_ids_only``: keep the data's IDs only (an evaluation ranks the data's catalogue;
    other IDs would take top-k slots that can never be hits)."""
    out = []
    for side_features in load_side_features(args):
        data_ids = np.unique(events.items if side_features.side == "item" else events.users)
        side_features.check_against(data_ids)
        out.append(side_features.restricted_to(data_ids) if data_ids_only else side_features)
    data_info.update({f"{f.side}_features": f.info() for f in out})
    return out


def _retrain_schedule(args: argparse.Namespace, n_events: int, synthetic: bool) -> tuple[int | None, float | None]:
    if args.retrain_every is not None or args.retrain_period is not None:
        return args.retrain_every, args.retrain_period
    if synthetic:
        return None, DAY  # the stream spans 30 days: a nightly batch job
    return max(1, n_events // 10), None


class _Progress:
    """A tqdm bar on stderr fed by :func:`prequential`'s progress callback."""

    def __init__(self, enabled: bool, n_policies: int = 1) -> None:
        self.enabled = enabled
        self.n_policies = max(1, n_policies)
        self.bar: Any = None
        self.policy = ""
        self.done = 0

    def __call__(self, policy: str, advanced: int, total: int) -> None:
        """One bar per policy, counting the stream's scored events (``total`` is over all policies)."""
        if not self.enabled:
            return
        if policy != self.policy:
            from tqdm import tqdm

            if self.bar is not None:
                self.bar.close()
            self.done += 1
            self.policy = policy
            self.bar = tqdm(total=total // self.n_policies, unit="ev", unit_scale=True, file=sys.stderr,
                            dynamic_ncols=True, leave=False, desc=f"{policy} ({self.done}/{self.n_policies})")
        self.bar.update(advanced)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_prequential(args: argparse.Namespace, policies: Sequence[str]) -> tuple[Any, dict[str, Any], float]:
    from ..evaluation import prequential

    events, data_info, synthetic = load_data(args)
    retrain_every, retrain_period = _retrain_schedule(args, len(events), synthetic)
    if retrain_period is not None and events.timestamps is None:
        raise CliError("--retrain-period needs timestamps and the data has no time column; use --retrain-every")
    features = features_for(args, events, data_info, data_ids_only=True)
    start, params = None, model_params(args, events.labels)
    saved = getattr(args, "model", None)
    if saved is not None:  # evaluate --model: every policy starts from the saved model
        from ..recommender import Recommender

        loaded = load_saved_model(saved, args.threads)
        params = {key: value for key, value in loaded.get_params().items() if key != "num_threads"}
        params["num_threads"] = args.threads

        def start() -> Any:
            return Recommender.load(saved, num_threads=args.threads)

        data_info["model_file"] = str(saved)
    progress = _Progress(enabled=not args.no_progress, n_policies=len(policies))
    began = time.perf_counter()
    try:
        by_side = {f.side: (f.ids, f.lists) for f in features}
        report = prequential(
            events, model=params, policies=tuple(policies), start=start,
            batch_size=args.batch_size, warmup=args.warmup, epochs=fit_epochs(args),
            retrain_every=retrain_every, retrain_period=retrain_period, k=args.k,
            n_windows=args.windows, positive_threshold=args.positive_threshold, progress=progress,
            item_features=by_side.get("item"), user_features=by_side.get("user"), diversity=args.diversity,
        )
    finally:
        progress.close()
    last = events.users[int(np.argmax(events.timestamps))] if events.timestamps is not None else events.users[-1]
    data_info["last_user"] = last.item() if isinstance(last, np.generic) else last
    return report, data_info, time.perf_counter() - began


def fit_epochs(args: argparse.Namespace) -> int:
    """``--epochs``, or the family's default number of fit passes (the core's)."""
    from ..recommender import default_epochs

    return args.epochs if args.epochs is not None else default_epochs(family(args))


def load_saved_model(path: Path, threads: int | None) -> Any:
    """A model file given with --model, or a one-line error."""
    from ..recommender import Recommender

    if not Path(path).is_file():
        raise CliError(f"model file not found: {path}")
    return Recommender.load(path, num_threads=threads)


def fit_model(
    args: argparse.Namespace, events: Any, features: Sequence[SideFeatures], catalog: Any = None
) -> tuple[Any, dict[str, Any], float]:
    """Build the model the options describe (loss inferred from ``events`` for ``--loss auto``),
    give it the side features, fit it on ``events`` for ``--epochs``; return the model, all
    its parameters and the seconds it took."""
    from ..recommender import Recommender

    params = model_params(args, events.labels)
    began = time.perf_counter()
    rec = Recommender(**params)
    for side_features in features:
        side_features.apply(rec)
    if catalog is not None:
        catalog.apply(rec)
    rec.fit(events, epochs=fit_epochs(args))
    return rec, rec.get_params(), time.perf_counter() - began  # every default filled in
