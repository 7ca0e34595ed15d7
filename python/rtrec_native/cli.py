"""The ``rtrec`` command line: demo, train, evaluate, recommend.

``rtrec demo`` is the main job: it replays a stream (the built-in synthetic stream with
taste drift, or ``--data ratings.csv``) through three ways of keeping a model fresh —
learning from every event (realtime), refitting periodically, and never (static) — and
shows what real-time learning buys: a table on stdout, a PNG of the metric over time and
``report.json`` in ``--out``.

The commands that build a model take its options, including admission (``--min-count``)
and expiry (``--ttl``, ``--max-rows``), and side features for cold start
(``--item-features movies.csv``, ``--user-features``), given to every model they build.

Every subcommand takes ``--json`` for machine-readable output on stdout. Bad input ends
with exit code 2 (bad arguments) or 1 (bad data, missing file, ...) and one line on
stderr, never a traceback. Progress bars go to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

PROG = "rtrec"
DAY = 86_400.0
LOSS_CHOICES = ("auto", "bpr", "logistic", "squared")
POLICY_CHOICES = ("realtime", "periodic", "static")
FEATURE_DUPLICATES = ("error", "first", "last", "merge")


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 1."""


# =========================================================================== argument types


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def _int_at_least(low: int):
    """An argparse type: an integer >= low, with a one-line message otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return value
    return parse


_positive_int = _int_at_least(1)
_nonnegative_int = _int_at_least(0)


def _int_between(low: int, high: int):
    """An argparse type: an integer in [low, high], with a one-line message otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer in [{low}, {high}], got {text!r}")
        return value
    return parse


def _feature_prefix(text: str) -> str:
    """An argparse type: a feature prefix such as 'genre' (written as genre=value)."""
    if not text.strip() or text.strip().endswith("="):
        raise argparse.ArgumentTypeError(f"expected a name such as 'genre' (without '='), got {text!r}")
    return text.strip()


def _or_none(parse):
    """An argparse type: ``parse``, or ``None`` for the word 'none' (the feature switched off)."""
    def parse_or_none(text: str) -> Any:
        if text.strip().lower() == "none":
            return None
        try:
            return parse(text)
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(str(exc).replace(", got ", " or 'none', got ", 1)) from None
    return parse_or_none


def _float_in(low: float, high: float, *, low_open: bool, high_open: bool, what: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        ok = math.isfinite(value) and (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
        if not ok:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_fraction = _float_in(0.0, 1.0, low_open=True, high_open=True, what="a number in (0, 1)")
_positive_float = _float_in(0.0, math.inf, low_open=True, high_open=True, what="a number > 0")
_nonnegative_float = _float_in(0.0, math.inf, low_open=False, high_open=True, what="a number >= 0")
_finite_float = _float_in(-math.inf, math.inf, low_open=True, high_open=True, what="a finite number")


# =========================================================================== parser


def build_parser() -> argparse.ArgumentParser:
    """The ``rtrec`` argument parser (all subcommands)."""
    from . import __version__

    parser = _Parser(
        prog=PROG,
        description="rtrec_native: a recommender that learns from every event in real time.",
        epilog="Run 'rtrec COMMAND --help' for the options of a command. "
        "Start with 'rtrec demo'.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    demo = commands.add_parser(
        "demo",
        help="replay a stream through realtime / periodic / static models and compare them",
        description="Replay a time-ordered stream (the built-in synthetic stream with taste "
        "drift, or --data) test-then-train through three policies: realtime (learns every "
        "micro-batch of events right after scoring it), periodic (a fresh model refitted on "
        "all data so far every --retrain-every events or --retrain-period seconds) and "
        "static (fitted on the warm-up prefix, then frozen). Prints a table, writes "
        "prequential.png and report.json to --out.",
    )
    _add_data_options(demo)
    _add_model_options(demo)
    _add_feature_options(demo, evaluation=True)
    _add_replay_options(demo)
    output = _add_output_options(demo)
    output.add_argument("--out", type=Path, default=Path("rtrec-demo"),
                        help="directory for report.json and prequential.png (created; default: %(default)s)")

    train = commands.add_parser(
        "train", help="fit a model on a data set and save it",
        description="Fit a model on all events (--epochs passes) and save a snapshot that "
        "'rtrec recommend --model' (or Recommender.load) reads.",
    )
    _add_data_options(train)
    _add_model_options(train)
    _add_feature_options(train)
    train.add_argument("--model-out", type=Path, required=True, metavar="PATH",
                       help="where to write the model snapshot (parent directories are created)")
    _add_output_options(train)

    evaluate = commands.add_parser(
        "evaluate", help="measure a model on a data set (prequential replay or temporal split)",
        description="prequential: the demo's replay without files (choose --policies). "
        "temporal: fit on the past, score on the future (--split global|user); items a user "
        "consumed in the training part are never ranked nor counted as hits.",
    )
    evaluate.add_argument("--protocol", choices=("prequential", "temporal"), default="prequential",
                          help="evaluation protocol (default: %(default)s)")
    _add_data_options(evaluate)
    _add_model_options(evaluate)
    _add_feature_options(evaluate, evaluation=True)
    _add_replay_options(evaluate)
    evaluate.add_argument("--policies", nargs="+", choices=POLICY_CHOICES, default=list(POLICY_CHOICES),
                          metavar="POLICY", help="prequential: policies to run, from "
                          f"{', '.join(POLICY_CHOICES)} (default: all)")
    evaluate.add_argument("--split", choices=("global", "user"), default="global",
                          help="temporal: one cut time for everyone (global) or the last "
                          "fraction of each user's events (user) (default: %(default)s)")
    evaluate.add_argument("--test-fraction", type=_fraction, default=0.2, metavar="F",
                          help="temporal: fraction of events in the test part (default: %(default)s)")
    _add_output_options(evaluate)

    recommend = commands.add_parser(
        "recommend", help="top-k items for a user from a saved model",
        description="Load a snapshot written by 'rtrec train' and print the user's top-k items. "
        "An unknown user gets the items with the highest learned bias (the popular ones).",
    )
    recommend.add_argument("--model", type=Path, required=True, metavar="PATH", help="model snapshot file")
    recommend.add_argument("--user", required=True, metavar="ID",
                           help="user ID (an integer, or a string for models trained on string IDs)")
    recommend.add_argument("-k", type=_positive_int, default=10, help="number of items (default: %(default)s)")
    recommend.add_argument("--include-seen", action="store_true",
                           help="also rank items the user has already consumed")
    recommend.add_argument("--json", action="store_true", help="print JSON on stdout instead of a table")

    serve = commands.add_parser(
        "serve", help="HTTP service that learns from feedback while it serves (needs the [serve] extra)",
        description="Serve GET/POST /recommend, POST /feedback (learned before the reply), GET "
        "/healthz and GET /stats from one in-process model. With --snapshot-dir the model is "
        "published there (a delta every --snapshot-interval seconds and on shutdown) and a "
        "restart resumes from it; else --model loads a snapshot, else a new model starts empty.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s, loopback only)")
    serve.add_argument("--port", type=_nonnegative_int, default=8000, help="TCP port (default: %(default)s)")
    serve.add_argument("--model", type=Path, metavar="PATH", help="start from this snapshot file")
    serve.add_argument("--snapshot-dir", type=Path, metavar="DIR",
                       help="publish snapshots and deltas here, and resume from it on restart")
    serve.add_argument("--snapshot-interval", type=_positive_float, default=1.0, metavar="SECONDS",
                       help="seconds between deltas: at most this much feedback is lost in a crash "
                       "(default: %(default)s)")
    serve.add_argument("--max-k", type=_positive_int, default=1000, help="largest k a request may ask (default: %(default)s)")
    serve.add_argument("--max-body-bytes", type=_positive_int, default=1 << 20,
                       help="largest request body accepted (default: %(default)s)")
    serve.add_argument("--log-level", choices=("critical", "error", "warning", "info", "debug"), default="warning",
                       help="uvicorn log level (default: %(default)s)")
    _add_model_options(serve)
    _add_feature_options(serve)
    return parser


def _add_data_options(p: argparse.ArgumentParser) -> None:
    import inspect

    from .datasets import generate_stream

    synthetic = inspect.signature(generate_stream).parameters  # its defaults are the demo's
    g = p.add_argument_group("data (without --data: the built-in synthetic stream)")
    g.add_argument("--data", type=Path, metavar="PATH",
                   help="events as CSV/TSV/Parquet; columns found by common names (userId/user_id/"
                   "user, movieId/itemId/item_id/item, rating/label/click, timestamp/time/ts), "
                   "so MovieLens ratings.csv works as is")
    g.add_argument("--user-col", metavar="NAME", help="user ID column (default: found by name)")
    g.add_argument("--item-col", metavar="NAME", help="item ID column (default: found by name)")
    g.add_argument("--label-col", metavar="NAME", help="label/rating column (default: found by name; optional)")
    g.add_argument("--time-col", metavar="NAME",
                   help="timestamp column, epoch seconds or ISO 8601 (default: found by name; "
                   "without one, events are replayed in file order)")
    g.add_argument("--events", type=_positive_int, default=synthetic["n_events"].default, metavar="N",
                   help="synthetic stream: number of events (default: %(default)s)")
    g.add_argument("--users", type=_positive_int, default=synthetic["n_users"].default, metavar="N",
                   help="synthetic stream: number of users (default: %(default)s)")
    g.add_argument("--items", type=_positive_int, default=synthetic["n_items"].default, metavar="N",
                   help="synthetic stream: number of items (default: %(default)s)")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    from .recommender import DEFAULTS, MAX_MIN_COUNT, MAX_ROWS

    g = p.add_argument_group("model")
    g.add_argument("--loss", choices=LOSS_CHOICES, default="auto",
                   help="auto: squared for ratings (labels other than 0/1), else bpr (clicks, "
                   "implicit); logistic for calibrated click probabilities (default: %(default)s)")
    g.add_argument("--dim", type=_positive_int, default=DEFAULTS["dim"], help="embedding size (default: %(default)s)")
    g.add_argument("--epochs", type=_positive_int, default=5,
                   help="passes over the data per fit (warm-up, periodic refits, train) (default: %(default)s)")
    g.add_argument("--optimizer", choices=("sgd", "adagrad"), default=DEFAULTS["optimizer"],
                   help="per-coordinate step rule (default: %(default)s)")
    g.add_argument("--learning-rate", type=_positive_float, default=DEFAULTS["learning_rate"], metavar="LR",
                   help="step size (default: %(default)s)")
    g.add_argument("--l2", type=_nonnegative_float, default=DEFAULTS["l2"], help="L2 penalty (default: %(default)s)")
    g.add_argument("--seed", type=_nonnegative_int, default=0,
                   help="seeds the synthetic stream and the model (default: %(default)s)")
    g.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="threads for fitting and scoring (default: OMP_NUM_THREADS or all cores)")
    g.add_argument("--min-count", type=_int_between(1, MAX_MIN_COUNT), default=DEFAULTS["min_count"],
                   metavar="N", help="admission: a user or item gets a row only once seen in N events; "
                   "events before that are not learned (1: at once) (default: %(default)s)")
    g.add_argument("--ttl", type=_or_none(_positive_float), default=DEFAULTS["ttl"], metavar="SECONDS",
                   help="expiry: evict users and items not updated for SECONDS of the model's clock "
                   "(the newest event timestamp seen, else the wall clock), e.g. 2592000 for 30 days "
                   f"(default: {_off(DEFAULTS['ttl'], 'never')})")
    g.add_argument("--max-rows", type=_or_none(_int_between(1, MAX_ROWS)), default=DEFAULTS["max_rows"],
                   metavar="N", help="cap on the rows of each table (users, items): over it the least "
                   f"recently updated are evicted (default: {_off(DEFAULTS['max_rows'], 'no cap')})")


def _off(default: Any, word: str) -> str:
    """Help text for a default where None means the feature is off."""
    return word if default is None else f"{default} ('none': {word})"


def _add_feature_options(p: argparse.ArgumentParser, *, evaluation: bool = False) -> None:
    g = p.add_argument_group(
        "side features (cold start: new items/users score like those that share their features)"
    )
    for side, example in (("item", "MovieLens movies.csv works as is (genres)"),
                          ("user", "e.g. users.csv with userId and --user-feature-col country")):
        applied = (f"The {side}s of the data get their features in every model of the evaluation"
                   if evaluation else
                   f"Every {side} in the file gets its features (and a row) before the model learns or serves")
        g.add_argument(f"--{side}-features", type=Path, metavar="PATH",
                       help=f"{side} features as CSV/TSV/Parquet, one row per {side}: an ID column and "
                       f"a features column whose cells are split on '|'; {example}. {applied}")
        g.add_argument(f"--{side}-feature-col", action="append", metavar="NAME",
                       help="features column; repeat for several (default: found by name: "
                       "features, genres, tags, categories, ...)")
        g.add_argument(f"--{side}-feature-prefix", type=_feature_prefix, metavar="PREFIX",
                       help="write each value as PREFIX=value, e.g. 'genre' gives genre=Drama "
                       "(default: the value as it is)")
        g.add_argument(f"--{side}-feature-id-col", metavar="NAME",
                       help=f"{side} ID column of the features file (default: found by name, e.g. "
                       f"{'movieId' if side == 'item' else 'userId'})")
        g.add_argument(f"--{side}-feature-duplicates", choices=FEATURE_DUPLICATES, default=None,
                       help="an ID on several rows: error, keep the first or last row, or merge the "
                       "rows' features (a long table with one row per ID and feature"
                       + (", such as MovieLens tags.csv" if side == "item" else "") + ") (default: error)")


def _add_replay_options(p: argparse.ArgumentParser) -> None:
    from .evaluation import prequential

    defaults = prequential.__kwdefaults__ or {}  # one place for the replay defaults
    g = p.add_argument_group("replay (prequential protocol)")
    g.add_argument("--batch-size", type=_positive_int, default=defaults["batch_size"], metavar="B",
                   help="micro-batch: B events are scored together, then learned by the realtime "
                   "model, one by one in order (1 = exact per-event test-then-train) (default: %(default)s)")
    g.add_argument("--warmup", type=_fraction, default=defaults["warmup"], metavar="F",
                   help="fraction of the stream every policy is first fitted on (default: %(default)s)")
    g.add_argument("--retrain-every", type=_positive_int, default=None, metavar="N",
                   help="periodic policy: refit every N events (default: daily for the synthetic "
                   "stream, else every tenth of the stream)")
    g.add_argument("--retrain-period", type=_positive_float, default=None, metavar="SECONDS",
                   help="periodic policy: refit at each boundary of SECONDS of event time, e.g. "
                   "86400 for nightly (combinable with --retrain-every)")
    g.add_argument("-k", type=_positive_int, default=defaults["k"],
                   help="cut-off of HitRate@k / NDCG@k (default: %(default)s)")
    g.add_argument("--windows", type=_positive_int, default=defaults["n_windows"], metavar="N",
                   help="time windows (equal event counts) for the metric over time (default: %(default)s)")
    g.add_argument("--positive-threshold", type=_finite_float, default=None, metavar="LABEL",
                   help="label at or above which a new item counts as a hit (default: 0.5 for "
                   "0/1 labels, the 75th percentile of ratings, 4.0 on MovieLens)")


def _add_output_options(p: argparse.ArgumentParser) -> Any:
    g = p.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print JSON on stdout instead of tables")
    g.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return g


# =========================================================================== shared steps


def _load(args: argparse.Namespace) -> tuple[Any, dict[str, Any], bool]:
    """Return ``(events, data_info, is_synthetic)`` for the --data / synthetic options."""
    if args.data is None:
        for flag in ("user_col", "item_col", "label_col", "time_col"):
            if getattr(args, flag) is not None:
                raise CliError(f"--{flag.replace('_', '-')} needs --data")
        from .datasets import synthetic_stream

        events = synthetic_stream(n_users=args.users, n_items=args.items, n_events=args.events, seed=args.seed)
        info = {"source": "synthetic", "n_events": len(events), "n_users": args.users,
                "n_items": args.items, "seed": args.seed}
        return events, info, True
    from .data import load_events

    events, report = load_events(
        args.data, user_col=args.user_col, item_col=args.item_col,
        label_col=args.label_col, time_col=args.time_col,
    )
    if len(events) == 0:
        raise CliError(f"{args.data}: no valid events left after cleaning ({report.n_dropped} dropped)")
    return events, {"source": str(args.data), "cleaning": report.to_dict()}, False


def _model_params(args: argparse.Namespace, labels: Any) -> dict[str, Any]:
    from .evaluation import infer_loss

    return {
        "dim": args.dim,
        "loss": infer_loss(labels) if args.loss == "auto" else args.loss,
        "optimizer": args.optimizer,
        "learning_rate": args.learning_rate,
        "l2": args.l2,
        "seed": args.seed,
        "num_threads": args.threads,
        "min_count": args.min_count,
        "ttl": args.ttl,
        "max_rows": args.max_rows,
    }


# --------------------------------------------------------------------------- side features


class _SideFeatures:
    """Features read from ``--item-features`` / ``--user-features``: IDs and one list of
    strings per ID, ready for ``set_item_features`` / ``set_user_features``."""

    def __init__(self, side: str, path: Path, ids: np.ndarray, lists: list[list[str]]) -> None:
        self.side, self.path, self.ids, self.lists = side, path, ids, lists
        self.n_in_file = len(ids)
        self.n_in_data: int | None = None  # IDs of the file found in the data (when checked)

    @property
    def flag(self) -> str:
        return f"--{self.side}-features"

    def check_against(self, data_ids: np.ndarray) -> _SideFeatures:
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

    def restricted_to(self, data_ids: np.ndarray) -> _SideFeatures:
        """Only the IDs that occur in the data: an evaluation ranks the data's catalogue."""
        keep = np.isin(self.ids, data_ids)
        out = _SideFeatures(self.side, self.path, self.ids[keep],
                            [features for features, kept in zip(self.lists, keep) if kept])
        out.n_in_file, out.n_in_data = self.n_in_file, len(out.ids)
        return out

    def apply(self, rec: Any) -> None:
        setter = rec.set_item_features if self.side == "item" else rec.set_user_features
        try:
            setter(self.ids, self.lists)
        except (ValueError, TypeError) as exc:
            raise CliError(f"{self.flag} {self.path}: {_one_line(str(exc))}") from None

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


def _load_features(args: argparse.Namespace) -> list[_SideFeatures]:
    """The --item-features / --user-features files, loaded (none given: an empty list)."""
    out = []
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
        from .data import load_features

        try:
            ids, lists = load_features(path, id_col=id_col, prefix=prefix, duplicates=duplicates or "error",
                                       feature_col=None if cols is None else cols[0] if len(cols) == 1 else cols)
        except (ValueError, TypeError, OSError, ImportError) as exc:
            message = _one_line(str(exc)) or type(exc).__name__
            # The library's hints name its keyword arguments; here they are options.
            message = message.replace("pass duplicates=", f"pass --{side}-feature-duplicates ")
            message = message.replace("id_col", f"--{side}-feature-id-col")
            message = message.replace("feature_col", f"--{side}-feature-col")
            if str(path) not in message:
                message = f"{path}: {message}"
            raise CliError(f"--{side}-features: {message}") from None
        out.append(_SideFeatures(side, Path(path), ids, lists))
    return out


def _features_for(args: argparse.Namespace, events: Any, data_info: dict[str, Any], *,
                  data_ids_only: bool) -> list[_SideFeatures]:
    """The side features files, checked against the events (recorded in ``data_info``).
    ``data_ids_only``: keep the data's IDs only (an evaluation ranks the data's catalogue;
    other IDs would take top-k slots that can never be hits)."""
    out = []
    for side_features in _load_features(args):
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

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.policy = ""

    def __call__(self, policy: str, advanced: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="ev", unit_scale=True, file=sys.stderr,
                            dynamic_ncols=True, leave=False)
        if policy != self.policy:
            self.policy = policy
            self.bar.set_description(policy, refresh=False)
        self.bar.update(advanced)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run_prequential(args: argparse.Namespace, policies: Sequence[str]) -> tuple[Any, dict[str, Any], float]:
    from .evaluation import prequential

    events, data_info, synthetic = _load(args)
    retrain_every, retrain_period = _retrain_schedule(args, len(events), synthetic)
    if retrain_period is not None and events.timestamps is None:
        raise CliError("--retrain-period needs timestamps and the data has no time column; use --retrain-every")
    features = _features_for(args, events, data_info, data_ids_only=True)
    progress = _Progress(enabled=not args.no_progress)
    began = time.perf_counter()
    try:
        by_side = {f.side: (f.ids, f.lists) for f in features}
        report = prequential(
            events, model=_model_params(args, events.labels), policies=tuple(policies),
            batch_size=args.batch_size, warmup=args.warmup, epochs=args.epochs,
            retrain_every=retrain_every, retrain_period=retrain_period, k=args.k,
            n_windows=args.windows, positive_threshold=args.positive_threshold, progress=progress,
            item_features=by_side.get("item"), user_features=by_side.get("user"),
        )
    finally:
        progress.close()
    return report, data_info, time.perf_counter() - began


# =========================================================================== output


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _refresh_text(name: str, result: Any, config: dict[str, Any]) -> str:
    if name == "realtime":
        size = config["batch_size"]
        return f"{result.update_latency_ms:.3f} ms per update of {size} event{'s' if size != 1 else ''}"
    if name == "periodic":
        return f"{result.update_latency_ms:,.1f} ms per refit ({result.n_updates} refits)"
    return "never updated"


def format_table(report: Any) -> str:
    """The demo's table: one row per policy."""
    k = report.config["k"]
    pointwise = "rmse" if "rmse" in report.metric_names else "auc" if "auc" in report.metric_names else None
    headers = ["policy", f"HitRate@{k}", f"NDCG@{k}"]
    if pointwise is not None:
        headers.append(pointwise.upper())
    headers += ["events/s", "update latency"]
    rows = []
    for name, result in report.policies.items():
        row = [name, _fmt(result.metrics[f"hitrate@{k}"]), _fmt(result.metrics[f"ndcg@{k}"])]
        if pointwise is not None:
            row.append(_fmt(result.metrics[pointwise]))
        row += [f"{result.events_per_s:,.0f}", _refresh_text(name, result, report.config)]
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        middle = [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1])]
        return "  ".join([first, *middle, cells[-1]])

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _describe_run(report: Any, data_info: dict[str, Any]) -> str:
    s, c = report.stream, report.config
    source = "synthetic stream (taste drift, new items)" if data_info["source"] == "synthetic" else data_info["source"]
    if c["retrain_period"] is not None and c["retrain_every"] is None:
        schedule = f"every {c['retrain_period'] / 3600:g} h of event time"
    elif c["retrain_period"] is None:
        schedule = f"every {c['retrain_every']:,} events"
    else:
        schedule = f"every {c['retrain_every']:,} events or {c['retrain_period'] / 3600:g} h"
    from .recommender import DEFAULTS

    model = c["model"]
    extras = "".join(f", {key}={model[key]}" for key in ("min_count", "ttl", "max_rows")
                     if key in model and model[key] != DEFAULTS[key])
    for side in ("item", "user"):
        info = data_info.get(f"{side}_features")
        if info is not None:
            extras += f"; {info['n_features']:,} {side} features ({info['path']})"
    return (
        f"data: {source}: {s['n_events']:,} events, {s['n_users']:,} users, {s['n_items']:,} items; "
        f"loss={s['loss']}, dim={model['dim']}{extras}\n"
        f"protocol: {c['protocol']}; warm-up fit on the first {c['n_warmup']:,} events "
        f"({c['epochs']} epochs); periodic refit {schedule}; {s['n_scored']:,} events scored, "
        f"{s['n_ranked']:,} new positives ranked (label >= {c['positive_threshold']:g})"
    )


def write_plot(report: Any, path: Path) -> None:
    """PNG of the metrics per window for each policy (matplotlib, no display needed)."""
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend

    names = [m for m in report.metric_names if m in (report.primary_metric, "auc", "rmse")]
    fig = Figure(figsize=(9, 3.2 * len(names)), layout="constrained")
    axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
    spans = report.windows
    x: np.ndarray
    if spans and spans[0].t_start is not None:
        seconds = np.array([(w.t_start + w.t_end) / 2 for w in spans], dtype=np.float64)
        x = seconds.astype("datetime64[s]")
        xlabel = "event time (middle of each window of equal event counts)"
    else:
        x = np.array([(w.start + w.end) / 2 for w in spans], dtype=np.float64)
        xlabel = "event position in the stream (middle of each window)"
    styles = {"realtime": "-o", "periodic": "-s", "static": "-^"}
    for ax, metric in zip(axes, names):
        for name, result in report.policies.items():
            y = np.array([w[metric] for w in result.windows], dtype=np.float64)
            ax.plot(x, y, styles.get(name, "-"), markersize=3, label=name)
        ax.set_ylabel(metric.upper() if metric in ("auc", "rmse") else metric.replace("hitrate", "HitRate"))
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best")
    axes[-1].set_xlabel(xlabel)
    if x.dtype.kind == "M":
        for ax in axes:
            for label in ax.get_xticklabels():
                label.set_rotation(20)
                label.set_horizontalalignment("right")
    axes[0].set_title(f"Prequential replay ({report.config['protocol']})")
    fig.savefig(path, dpi=110)


def _print_json(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, indent=2, allow_nan=False, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


# =========================================================================== commands


def cmd_demo(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    report, data_info, replay_seconds = _run_prequential(args, POLICY_CHOICES)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create output directory {out}: {exc.strerror or exc}") from None
    payload = report.to_dict()
    payload["data"] = data_info
    payload["replay_seconds"] = replay_seconds
    report_path, plot_path = out / "report.json", out / "prequential.png"
    write_plot(report, plot_path)
    seconds = time.perf_counter() - began  # everything: loading, replay, plot
    payload["wall_seconds"] = seconds
    report_path.write_text(json.dumps(payload, indent=2, allow_nan=False, default=_json_default) + "\n")
    if args.json:
        _print_json({**payload, "files": {"report": str(report_path), "plot": str(plot_path)}})
        return 0
    print(_describe_run(report, data_info))
    print()
    print(format_table(report))
    print()
    best = max(report.policies.values(), key=lambda r: _nan_low(r.metrics[report.primary_metric]))
    print(f"best {report.primary_metric}: {best.name}; wall time {seconds:.1f} s")
    print(f"wrote {report_path} and {plot_path}")
    return 0


def _nan_low(value: float) -> float:
    return -math.inf if value is None or math.isnan(value) else value


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.protocol == "prequential":
        report, data_info, seconds = _run_prequential(args, args.policies)
        if args.json:
            _print_json({**report.to_dict(), "data": data_info, "wall_seconds": seconds})
        else:
            print(_describe_run(report, data_info))
            print()
            print(format_table(report))
        return 0
    return _evaluate_temporal(args)


def _evaluate_temporal(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_split, temporal_split
    from .recommender import Recommender

    events, data_info, _ = _load(args)
    if len(events) < 2:
        raise CliError(f"need at least 2 events for a train/test split, got {len(events)}")
    split = temporal_split(events, args.test_fraction, by=args.split)
    if len(split.train) == 0 or len(split.test) == 0:
        raise CliError(f"the {args.split} split left an empty part (train {len(split.train)}, test "
                       f"{len(split.test)}); change --test-fraction")
    features = _features_for(args, events, data_info, data_ids_only=True)  # train and test IDs
    params = _model_params(args, split.train.labels)
    began = time.perf_counter()
    rec = Recommender(**params)
    for side_features in features:
        side_features.apply(rec)
    rec.fit(
        split.train.users, split.train.items, split.train.labels, split.train.weights,
        epochs=args.epochs, timestamps=split.train.timestamps,
    )
    fit_seconds = time.perf_counter() - began
    result = evaluate_split(rec, split, k=args.k, positive_threshold=args.positive_threshold)
    if args.json:
        _print_json({**result.to_dict(), "data": data_info, "model": params, "fit_seconds": fit_seconds})
        return 0
    info = result.split
    print(f"temporal split ({info['by']}): {info['n_train']:,} train / {info['n_test']:,} test events; "
          f"loss={params['loss']}, fit {fit_seconds:.2f} s; {result.n_ranked_users:,} test users ranked")
    for side_features in features:
        print(side_features.describe())
    width = max(len(name) for name in result.metrics)
    for name, value in result.metrics.items():
        print(f"  {name.ljust(width)}  {_fmt(value)}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .recommender import Recommender

    events, data_info, _ = _load(args)
    # Every ID of a features file gets its features (and a row): the model can then
    # recommend items nobody has interacted with yet.
    features = _features_for(args, events, data_info, data_ids_only=False)
    params = _model_params(args, events.labels)
    began = time.perf_counter()
    rec = Recommender(**params)
    for side_features in features:
        side_features.apply(rec)
    rec.fit(events.users, events.items, events.labels, events.weights, epochs=args.epochs,
            timestamps=events.timestamps)
    fit_seconds = time.perf_counter() - began
    path = Path(args.model_out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create directory {path.parent}: {exc.strerror or exc}") from None
    rec.save(path)
    stats = rec.stats()
    counters = {key: stats[key] for key in TRAIN_COUNTERS}
    summary = {"model": str(path), "n_events": len(events), "n_users": rec.n_users, "n_items": rec.n_items,
               **counters, "epochs": args.epochs, "fit_seconds": fit_seconds, "params": params,
               "data": data_info}
    if args.json:
        _print_json(summary)
        return 0
    print(f"trained loss={params['loss']} dim={params['dim']} on {len(events):,} events "
          f"({rec.n_users:,} users, {rec.n_items:,} items) in {fit_seconds:.2f} s; saved to {path}")
    notes = []
    if params["min_count"] > 1 or counters["not_admitted"]:
        notes.append(f"{counters['not_admitted']:,} events not learned (an ID seen fewer than "
                     f"--min-count {params['min_count']} times)")
    if params["ttl"] is not None or params["max_rows"] is not None or counters["evicted_users"] \
            or counters["evicted_items"]:
        notes.append(f"evicted {counters['evicted_users']:,} users and {counters['evicted_items']:,} items "
                     f"({_eviction_text(params)})")
    for side_features in features:
        notes.append(f"{counters[f'n_{side_features.side}_features']:,} distinct {side_features.side} features "
                     f"on {len(side_features.ids):,} {side_features.side}s from {side_features.path} "
                     f"({side_features.n_in_data:,} of them in the data)")
    for note in notes:
        print(f"  {note}")
    return 0


TRAIN_COUNTERS = ("not_admitted", "evicted_users", "evicted_items", "n_item_features", "n_user_features")


def _eviction_text(params: dict[str, Any]) -> str:
    ttl = "never" if params["ttl"] is None else f"{params['ttl']:g} s"
    cap = "none" if params["max_rows"] is None else f"{params['max_rows']:,} rows"
    return f"ttl {ttl}, cap {cap}"


def cmd_recommend(args: argparse.Namespace) -> int:
    from .recommender import Recommender

    if not Path(args.model).is_file():
        raise CliError(f"model file not found: {args.model}")
    rec = Recommender.load(args.model)
    ids, scores = _recommend_any_kind(rec, args.user, args.k, not args.include_seen)
    items = [v.item() if isinstance(v, np.generic) else v for v in ids]
    if args.json:
        _print_json({"user": args.user, "k": args.k, "items": items, "scores": [float(s) for s in scores]})
        return 0
    print(f"top {len(items)} for user {args.user}:")
    for rank, (item, score) in enumerate(zip(items, scores), start=1):
        print(f"{rank:>4}  {item!s:>12}  {score:.4f}")
    return 0


def _recommend_any_kind(rec: Any, user: str, k: int, exclude_seen: bool) -> tuple[np.ndarray, np.ndarray]:
    """A command-line ID is text: try it as an integer ID first, then as a string ID."""
    try:
        as_int = int(user)
    except ValueError:
        return rec.recommend(user, k=k, exclude_seen=exclude_seen)
    try:
        return rec.recommend(as_int, k=k, exclude_seen=exclude_seen)
    except TypeError:  # the model's user IDs are strings
        return rec.recommend(user, k=k, exclude_seen=exclude_seen)


def cmd_serve(args: argparse.Namespace) -> int:
    from .recommender import Recommender  # noqa: PLC0415
    from .replication import Publisher, restore_latest  # noqa: PLC0415
    from .serving import create_app  # noqa: PLC0415

    features = _load_features(args)  # bad files fail before anything starts
    rec = restore_latest(args.snapshot_dir, num_threads=args.threads) if args.snapshot_dir else None
    origin = f"resumed from {args.snapshot_dir}" if rec is not None else ""
    if rec is None and args.model is not None:
        rec, origin = Recommender.load(args.model, num_threads=args.threads), f"loaded {args.model}"
    if rec is None:
        params = _model_params(args, None)  # no labels yet: auto means bpr
        rec = Recommender(**params)
        origin = f"new {params['loss']} model"
    else:
        ignored = _ignored_model_options(args, rec.get_params())
        if ignored:
            print(f"{PROG} serve: note: the model keeps its own settings; ignoring {ignored}",
                  file=sys.stderr, flush=True)
    for side_features in features:
        side_features.apply(rec)
        origin += f"; {side_features.describe()}"
    publisher = Publisher(rec, args.snapshot_dir, interval=args.snapshot_interval) if args.snapshot_dir else None
    app = create_app(rec, publisher=publisher, max_body_bytes=args.max_body_bytes, max_k=args.max_k)
    import uvicorn  # noqa: PLC0415

    print(f"{PROG} serve: {origin}; http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    # uvicorn turns SIGTERM/SIGINT into a graceful shutdown, which closes the publisher and
    # so writes the last delta; afterwards it re-raises the signal with the handler that was
    # installed before it started. A no-op handler there makes a requested shutdown exit 0.
    import signal  # noqa: PLC0415

    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _ignored_model_options(args: argparse.Namespace, model: dict[str, Any]) -> str:
    """The model options given on the command line that a loaded model does not have
    (its settings are its own), as text such as "--ttl 3600 (the model has ttl=None)"."""
    from .recommender import DEFAULTS

    given = {"loss": None if args.loss == "auto" else args.loss}
    given.update({key: getattr(args, key) for key in ("dim", "optimizer", "learning_rate", "l2", "min_count",
                                                      "ttl", "max_rows")})
    out = []
    for key, value in given.items():
        if key == "loss" and value is None:
            continue
        if key != "loss" and value == DEFAULTS[key]:
            continue  # not asked for (or asked for the default)
        have = model.get(key)
        same = have == value or (isinstance(have, float) and isinstance(value, float)
                                 and math.isclose(have, value, rel_tol=1e-6))
        if not same:
            out.append(f"--{key.replace('_', '-')} {value} (the model has {key}={have})")
    return ", ".join(out)


COMMANDS = {"demo": cmd_demo, "train": cmd_train, "evaluate": cmd_evaluate, "recommend": cmd_recommend,
            "serve": cmd_serve}


# =========================================================================== entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rtrec`` with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Exit codes: 0 success, 1 bad data or a failed operation, 2 bad arguments. Errors are
    one line on stderr.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, argument errors
        return int(exc.code) if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (CliError, ValueError, TypeError, OSError, ImportError) as exc:
        # SnapshotError is a ValueError; FileNotFoundError/PermissionError are OSErrors.
        if os.environ.get("RTREC_DEBUG"):  # developers: the full traceback
            raise
        print(f"{PROG} {args.command}: error: {_one_line(str(exc)) or type(exc).__name__}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # python -m rtrec_native.cli
    sys.exit(main())
