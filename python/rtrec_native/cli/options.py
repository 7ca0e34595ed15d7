"""The ``rtrec`` argument parser: every command's options and the argument types that check
them (a bad value exits 2 with a one-line message naming the option).

Defaults are read from where the library defines them (``Recommender``'s ``DEFAULTS``,
``Recommender.fit``'s epochs, ``prequential``'s replay settings, the synthetic stream's
sizes), so the command line never holds a second copy.
"""

from __future__ import annotations

import argparse
import inspect
import math
from pathlib import Path
from typing import Any, NoReturn

from .. import _core, _params
from ..evaluation.replay import DEFAULT_POLICIES, POLICIES
from .errors import PROG, one_line
from .retrieval import add_filter_options

# "auto" (see --loss) and every loss some family trains with, as the core lists them.
LOSS_CHOICES = ("auto", *dict.fromkeys(loss for family in ("mf", "two_tower") for loss in _core.losses(family)))
# The demo's and evaluate's policies by default (rtrec_native.evaluation.replay owns the list).
POLICY_CHOICES = DEFAULT_POLICIES
ALL_POLICIES = POLICIES
#: The command line's model family when --family is not given. Measured with each family's own
#: defaults (benchmarks/bench_two_tower_quality.py, rtrec demo): learning per event, two_tower
#: is ahead of mf and of every periodic and static policy on the MovieLens replay and on the
#: synthetic stream; mf stays one word away (--family mf) for ratings and the cheapest updates.
DEFAULT_FAMILY = _params.DEFAULT_FAMILY


# =========================================================================== argument types


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage block) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")




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


positive_int = _int_at_least(1)
nonnegative_int = _int_at_least(0)


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


fraction = _float_in(0.0, 1.0, low_open=True, high_open=True, what="a number in (0, 1)")
positive_float = _float_in(0.0, math.inf, low_open=True, high_open=True, what="a number > 0")
nonnegative_float = _float_in(0.0, math.inf, low_open=False, high_open=True, what="a number >= 0")
finite_float = _float_in(-math.inf, math.inf, low_open=True, high_open=True, what="a finite number")
diversity_lambda = _float_in(0.0, _core.limits["max_diversity"], low_open=False, high_open=False,
                             what="a number in [0, 1]")
DIVERSITY_HELP = ("re-rank for diversity: 0 is the plain top-k, up to 1 trades relevance for spread (maximal "
                  "marginal relevance over the max(5k, 50) best items) (default: %(default)s)")


# =========================================================================== parser


def _saved_model_query(commands: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """A command that answers from a saved model: its parser with the saved-model options."""
    parser = commands.add_parser(name, help=summary, description=description)
    _add_saved_model_options(parser)
    return parser


def _add_saved_model_options(parser: argparse.ArgumentParser) -> None:
    """What every query of a saved model takes: the file, k and the output form."""
    parser.add_argument("--model", type=Path, required=True, metavar="PATH", help="model snapshot file")
    parser.add_argument("-k", type=positive_int, default=10, help="number of items (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout instead of a table")


def build_parser() -> argparse.ArgumentParser:
    """The ``rtrec`` argument parser (all subcommands)."""
    from .. import __version__

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
        help="replay a stream through realtime / periodic / static / hybrid models and compare them",
        description="Replay a time-ordered stream (the built-in synthetic stream with taste "
        "drift, or --data) test-then-train through four policies: realtime (learns every "
        "micro-batch of events right after scoring it), periodic (a fresh model refitted on "
        "all data so far every --retrain-every events or --retrain-period seconds), "
        "static (fitted on the warm-up prefix, then frozen) and hybrid (the periodic refits, "
        "every micro-batch learned in between). Prints a table, writes "
        "prequential.png and report.json to --out.",
    )
    _add_data_options(demo)
    _add_model_options(demo)
    _add_feature_options(demo, evaluation=True)
    _add_replay_options(demo)
    add_catalog_options(demo)
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
    add_catalog_options(train)
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
    evaluate.add_argument("--model", type=Path, metavar="PATH",
                          help="measure this saved model instead of fitting one: temporal, it scores the test part "
                          "as it is (no fine-tuning); prequential, it is every policy's starting point (no warm-up "
                          "fit) and realtime keeps learning from it, as it would in production")
    evaluate.add_argument("--policies", nargs="+", choices=ALL_POLICIES, default=list(POLICY_CHOICES),
                          metavar="POLICY", help="prequential: policies to run, from "
                          f"{', '.join(ALL_POLICIES)} (hybrid: the periodic refits, every event learned in between) "
                          f"(default: {' '.join(POLICY_CHOICES)})")
    evaluate.add_argument("--split", choices=("global", "user"), default="global",
                          help="temporal: one cut time for everyone (global) or the last "
                          "fraction of each user's events (user) (default: %(default)s)")
    evaluate.add_argument("--test-fraction", type=fraction, default=0.2, metavar="F",
                          help="temporal: fraction of events in the test part (default: %(default)s)")
    _add_output_options(evaluate)

    recommend = _saved_model_query(
        commands, "recommend", "top-k items for a user from a saved model",
        "Load a snapshot written by 'rtrec train' and print the user's top-k items. "
        "An unknown user gets the items with the highest learned bias (the popular ones).",
    )
    who = recommend.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", metavar="ID",
                     help="user ID (an integer, or a string for models trained on string IDs)")
    who.add_argument("--history", metavar="ID,ID,...",
                     help="an anonymous visitor known only by these items (oldest first): nothing is learned")
    recommend.add_argument("--include-seen", action="store_true",
                           help="also rank items the user has already consumed")
    recommend.add_argument("--diversity", type=diversity_lambda, default=0.0, metavar="LAMBDA", help=DIVERSITY_HELP)
    recommend.add_argument("--explain", action="store_true",
                           help="under each item, the reasons the model scores it (the user's own items and "
                           "features that weigh most, from Recommender.explain)")
    add_filter_options(recommend)

    similar = _saved_model_query(
        commands, "similar", "the items most similar to an item, from a saved model",
        "Load a snapshot and print the k items most similar to --item: those the model ranks "
        "first for a visitor whose session holds that item alone (never the item itself).",
    )
    similar.add_argument("--item", required=True, metavar="ID", help="item ID")
    add_filter_options(similar)

    serve = commands.add_parser(
        "serve", help="HTTP service that learns from feedback while it serves (needs the [serve] extra)",
        description="Serve GET/POST /recommend, POST /feedback (learned before the reply), GET "
        "/healthz, GET /stats and GET /metrics (Prometheus) from one in-process model. With "
        "--snapshot-dir the model is published there (a delta every --snapshot-interval seconds and "
        "on shutdown) and a restart resumes from it; else --model loads a snapshot, else a new model "
        "starts empty. With --follow it is a read-only replica of a Redis-fed trainer instead.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s, loopback only)")
    serve.add_argument("--port", type=nonnegative_int, default=8000, help="TCP port (default: %(default)s)")
    serve.add_argument("--model", type=Path, metavar="PATH", help="start from this snapshot file")
    serve.add_argument("--snapshot-dir", type=Path, metavar="DIR",
                       help="publish snapshots and deltas here, and resume from it on restart (with --follow: "
                       "the trainer's directory, read only)")
    serve.add_argument("--snapshot-interval", type=positive_float, default=1.0, metavar="SECONDS",
                       help="seconds between deltas: at most this much feedback is lost in a crash "
                       "(default: %(default)s)")
    serve.add_argument("--max-k", type=positive_int, default=1000,
                       help="largest k a request may ask (default: %(default)s)")
    serve.add_argument("--max-body-bytes", type=positive_int, default=1 << 20,
                       help="largest request body accepted (default: %(default)s)")
    serve.add_argument("--log-level", choices=("critical", "error", "warning", "info", "debug"), default="warning",
                       help="uvicorn log level (default: %(default)s)")
    _add_model_options(serve)
    _add_feature_options(serve)
    add_catalog_options(serve, with_sep=True)

    from .stream_options import add_consume_parser, add_export_parser, add_follow_options

    add_follow_options(serve)
    add_consume_parser(commands)
    add_export_parser(commands)
    consume = commands.choices["consume"]
    consume.add_argument("--model", type=Path, metavar="PATH",
                         help="warm start: a new --snapshot-dir starts from this saved model (a directory that "
                         "already holds a model resumes from it instead; another model there is an error)")
    add_catalog_options(consume, with_sep=True)
    return parser


def add_catalog_options(p: argparse.ArgumentParser, *, with_sep: bool = False) -> None:
    """--catalog: item names (and, one option away, genres as side features) from one file."""
    g = p.add_argument_group("item names (a catalogue such as MovieLens movies.csv)")
    g.add_argument("--catalog", type=Path, metavar="PATH",
                   help="items' display names, kept with the model and shown by recommend and serve: "
                   "CSV/TSV/Parquet with an item ID column and a name column (found by name: movieId/itemId/"
                   "item_id/item and title/name)")
    g.add_argument("--item-id-col", metavar="NAME", help="--catalog: item ID column (default: found by name)")
    g.add_argument("--item-name-col", metavar="NAME", help="--catalog: name column (default: found by name)")
    g.add_argument("--catalog-genres", action="store_true",
                   help="also use the catalogue's genres column as item side features (the same as "
                   "--item-features PATH --item-feature-prefix genre)")
    if with_sep:
        g.add_argument("--sep", type=_delimiter, default=None, metavar="CHAR",
                       help="field separator of the files read: ',', ';', 'tab', ... (default: sniffed from "
                       "each file's header line: comma, tab or semicolon)")


def _delimiter(text: str) -> str:
    from ..data.sources import check_delimiter

    try:
        out = check_delimiter(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("delimiter must be", "expected")) from None
    assert out is not None
    return out


def _add_data_options(p: argparse.ArgumentParser) -> None:

    from ..datasets import generate_stream

    synthetic = inspect.signature(generate_stream).parameters  # its defaults are the demo's
    g = p.add_argument_group("data (without --data: the built-in synthetic stream)")
    g.add_argument("--data", type=Path, metavar="PATH",
                   help="events as CSV/TSV/Parquet; columns found by common names (userId/user_id/"
                   "user, movieId/itemId/item_id/item, rating/label/click, timestamp/time/ts), "
                   "so MovieLens ratings.csv works as is")
    g.add_argument("--sep", type=_delimiter, default=None, metavar="CHAR",
                   help="field separator of --data and the other files read: ',', ';', 'tab', ... (default: "
                   "sniffed from each file's header line: comma, tab or semicolon)")
    g.add_argument("--strict", action="store_true",
                   help="fail (exit code 1, the reasons listed) if cleaning would drop any row of --data "
                   "(malformed lines or IDs, missing values, duplicates, ...); without it bad rows are "
                   "dropped and the cleaning report on stderr says which")
    g.add_argument("--user-col", metavar="NAME", help="user ID column (default: found by name)")
    g.add_argument("--item-col", metavar="NAME", help="item ID column (default: found by name)")
    g.add_argument("--label-col", metavar="NAME", help="label/rating column (default: found by name; optional)")
    g.add_argument("--time-col", metavar="NAME",
                   help="timestamp column, epoch seconds or ISO 8601 (default: found by name; "
                   "without one, events are replayed in file order)")
    g.add_argument("--events", type=positive_int, default=synthetic["n_events"].default, metavar="N",
                   help="synthetic stream: number of events (default: %(default)s)")
    g.add_argument("--users", type=positive_int, default=synthetic["n_users"].default, metavar="N",
                   help="synthetic stream: number of users (default: %(default)s)")
    g.add_argument("--items", type=positive_int, default=synthetic["n_items"].default, metavar="N",
                   help="synthetic stream: number of items (default: %(default)s)")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    from ..recommender import default_epochs

    g = p.add_argument_group("model")
    g.add_argument("--family", choices=("mf", "two_tower"), default=None,
                   help="two_tower: users encoded from their recent items (learns sequences; personal after one "
                   "event; learning from each event beats periodic refits on MovieLens and the synthetic stream); "
                   "mf: matrix factorisation (an update costs ~1 µs instead of ~10, less memory per user; ratings) "
                   f"(default: {DEFAULT_FAMILY})")
    g.add_argument("--loss", choices=LOSS_CHOICES, default="auto",
                   help="auto: mf: squared for ratings (labels other than 0/1), else bpr (clicks, implicit); "
                   "two_tower: softmax; logistic for calibrated click probabilities; warp (mf): bpr's rules, steps "
                   "weighted toward the top of each list (default: %(default)s)")
    g.add_argument("--epochs", type=positive_int, default=None,
                   help="passes over the data per fit (warm-up, periodic refits, train) "
                   f"(default: the family's, mf {default_epochs('mf')}, two_tower {default_epochs('two_tower')})")
    g.add_argument("--seed", type=nonnegative_int, default=0,
                   help="seeds the synthetic stream and the model (default: %(default)s)")
    g.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="threads for fitting and scoring (default: OMP_NUM_THREADS or all cores)")
    # Every other model parameter is --<name>, typed, ranged and documented by the core's table.
    for spec in _params.PARAMETERS:
        if spec["name"] not in _HAND_MADE:
            _add_parameter_option(g, spec)


# Model parameters whose option is written above (the CLI's "auto" loss, the seed that also
# seeds the synthetic stream).
_HAND_MADE = ("loss", "seed")


def _add_parameter_option(g: Any, spec: dict[str, Any]) -> None:
    """One model parameter as --<name>: None (not given) leaves it to the family's default."""
    flag = "--" + spec["name"].replace("_", "-")
    scope = "two_tower: " if spec["two_tower_only"] else ""
    help_text = f"{scope}{spec['doc']} (default: {_params.default_text(spec)})".replace("%", "%%")
    kind = spec["kind"]
    if kind == "bool":
        g.add_argument(flag, action="store_true", default=None, help=help_text)
        return
    if kind == "choice":
        g.add_argument(flag, choices=spec["choices"], default=None, help=help_text)
        return
    if kind == "widths":
        g.add_argument(flag, type=_widths, default=None, metavar="W[,W...]", help=help_text)
        return
    low = spec["low"]
    off = spec["zero_is_off"]
    if kind == "int":
        parse = _int_between(max(int(low), 1 if off else 0), int(spec["high"]))
        metavar = "N"
    else:
        parse = _float_in(low, spec["high"], low_open=spec["low_open"] or off, high_open=False,
                          what=_range_text(spec))
        metavar = None
    if off:
        parse = _or_none(parse)
        help_text = help_text.replace("(default: off)", "(default: off; 'none': off)")
    g.add_argument(flag, type=parse, default=None, metavar=metavar, help=help_text)


def _range_text(spec: dict[str, Any]) -> str:
    low = f"{'>' if spec['low_open'] or spec['zero_is_off'] else '>='} {spec['low']:g}"
    return f"a number {low}" + ("" if math.isinf(spec["high"]) else f" and <= {spec['high']:g}")


def _widths(text: str) -> tuple[int, ...]:
    """'128' or '256,128': hidden layer widths."""
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths such as 128 or 256,128, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be >= 1, got {text!r}")
    return widths


def _add_feature_options(p: argparse.ArgumentParser, *, evaluation: bool = False) -> None:
    from ..data.features import DUPLICATE_POLICIES

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
                       help="features column, load_features' feature_col; repeat for several (default: "
                       "found by name: features, genres, tags, categories, ...)")
        g.add_argument(f"--{side}-feature-prefix", type=_feature_prefix, metavar="PREFIX",
                       help="write each value as PREFIX=value, e.g. 'genre' gives genre=Drama "
                       "(default: the value as it is)")
        g.add_argument(f"--{side}-feature-id-col", metavar="NAME",
                       help=f"{side} ID column of the features file, load_features' id_col (default: found "
                       f"by name, e.g. {'movieId' if side == 'item' else 'userId'})")
        g.add_argument(f"--{side}-feature-duplicates", choices=DUPLICATE_POLICIES, default=None,
                       help="load_features' duplicates: an ID on several rows: error, keep the first or "
                       "last row, or merge the "
                       "rows' features (a long table with one row per ID and feature"
                       + (", such as MovieLens tags.csv" if side == "item" else "") + ") (default: error)")


def _add_replay_options(p: argparse.ArgumentParser) -> None:
    from ..evaluation import prequential

    defaults = prequential.__kwdefaults__ or {}  # one place for the replay defaults
    g = p.add_argument_group("replay (prequential protocol)")
    g.add_argument("--batch-size", type=positive_int, default=defaults["batch_size"], metavar="B",
                   help="micro-batch: B events are scored together, then learned by the realtime "
                   "model, one by one in order (1 = exact per-event test-then-train) (default: %(default)s)")
    g.add_argument("--warmup", type=fraction, default=defaults["warmup"], metavar="F",
                   help="fraction of the stream every policy is first fitted on (default: %(default)s)")
    g.add_argument("--retrain-every", type=positive_int, default=None, metavar="N",
                   help="periodic and hybrid policies: refit every N events (default: daily for the synthetic "
                   "stream, else every tenth of the stream)")
    g.add_argument("--retrain-period", type=positive_float, default=None, metavar="SECONDS",
                   help="periodic and hybrid policies: refit at each boundary of SECONDS of event time, e.g. "
                   "86400 for nightly (combinable with --retrain-every)")
    g.add_argument("-k", type=positive_int, default=defaults["k"],
                   help="cut-off of HitRate@k / NDCG@k (default: %(default)s)")
    g.add_argument("--diversity", type=diversity_lambda, default=defaults["diversity"], metavar="LAMBDA",
                   help=DIVERSITY_HELP)
    g.add_argument("--windows", type=positive_int, default=defaults["n_windows"], metavar="N",
                   help="time windows (equal event counts) for the metric over time (default: %(default)s)")
    g.add_argument("--positive-threshold", type=finite_float, default=None, metavar="LABEL",
                   help="label at or above which a new item counts as a hit (default: 0.5 for "
                   "0/1 labels, the 75th percentile of ratings, 4.0 on MovieLens)")


def _add_output_options(p: argparse.ArgumentParser) -> Any:
    g = p.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print JSON on stdout instead of tables")
    g.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return g


