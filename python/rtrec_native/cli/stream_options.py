"""The options of ``rtrec consume``, ``rtrec export`` and ``rtrec serve --follow``."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from .options import _add_model_options, _add_output_options, nonnegative_int, positive_float, positive_int

DEFAULT_STREAM = "rtrec:events"


def _name(text: str) -> str:
    """An argparse type: a non-empty Redis key or group name."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a non-empty name, got {text!r}")
    return text


def _event_weights(text: str) -> dict[str, float]:
    """'view=0.2,click=1,purchase=3': event type -> weight >= 0."""
    out: dict[str, float] = {}
    for part in text.split(","):
        kind, sep, value = part.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = math.nan
        if not sep or not kind.strip() or not (math.isfinite(weight) and weight >= 0):
            raise argparse.ArgumentTypeError(f"expected TYPE=WEIGHT[,TYPE=WEIGHT...] with weights >= 0 such as "
                                             f"view=0.2,click=1,purchase=3, got {text!r}")
        out[kind.strip()] = weight
    return out


def _duration(text: str) -> float:
    """An argparse type: 24h, 15m, 15s, 90d or a plain number of seconds, > 0."""
    from ..stream.refit import parse_duration  # noqa: PLC0415

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_refit_options(consume: argparse.ArgumentParser) -> None:
    r = consume.add_argument_group("archive and refits")
    r.add_argument("--archive", type=Path, default=None, metavar="DIR",
                   help="append every learned event, exactly once, to Parquet files under DIR (created if missing; "
                   "columns user, item, label, weight, timestamp, entry; pandas.read_parquet(DIR) and 'rtrec train "
                   "--data DIR' read it). Needs pyarrow")
    r.add_argument("--archive-days", type=positive_float, default=None, metavar="N",
                   help="--archive: remove archive files older than N days (default: keep them)")
    r.add_argument("--refit-every", type=_duration, default=None, metavar="DURATION",
                   help="refit a fresh model on the archive every DURATION (24h, 15m, 15s or seconds) in the "
                   "background, catch it up with the events learned meanwhile and swap it in (needs --archive)")
    r.add_argument("--refit-epochs", type=positive_int, default=None, metavar="N",
                   help="--refit-every: epochs of each refit (default: the family's default)")
    r.add_argument("--refit-window", type=_duration, default=None, metavar="DURATION",
                   help="--refit-every: fit only the archive files of the last DURATION, e.g. 90d (default: all)")
    r.add_argument("--refit-threads", type=positive_int, default=1, metavar="T",
                   help="--refit-every: threads of each refit's fit (leave a core to the live model) "
                   "(default: %(default)s)")


def add_consume_parser(commands: Any) -> None:
    consume = commands.add_parser(
        "consume", help="the trainer: learn from a Redis stream, exactly once, and publish deltas",
        description="Read feedback events from a Redis stream through a consumer group (created at the start "
        "of the stream when missing), learn them in stream order, publish snapshots and deltas to "
        "--snapshot-dir (each recording the last entry it holds) and announce every delta on STREAM:deltas "
        "for replicas ('rtrec serve --follow'). Entries are acknowledged only once a delta holding them is "
        "durable, and a restart resumes from the model's recorded entry: after any crash every event is "
        "learned exactly once. Entries: XADD STREAM * user U item I [label L] [weight W] [ts T] [type T], or packed "
        "entries of many events (docs/streaming.md); malformed ones are counted, logged and copied to STREAM:dead "
        "with the reason. Acknowledged entries are trimmed from the stream (--no-trim keeps them). A Redis that "
        "goes away is waited for; one that comes back without the stream is said in one line, and the trainer "
        "goes on with the entries written from then on. Stops on SIGTERM or SIGINT after writing a last delta.",
    )
    g = consume.add_argument_group("stream")
    g.add_argument("--redis", required=True, metavar="URL", help="Redis URL, e.g. redis://127.0.0.1:6379/0")
    g.add_argument("--stream", type=_name, default=DEFAULT_STREAM, metavar="NAME",
                   help="the events stream; dead letters go to NAME:dead, delta announcements to NAME:deltas "
                   "(default: %(default)s)")
    g.add_argument("--group", type=_name, default="trainers", metavar="NAME",
                   help="the consumer group (one trainer per group) (default: %(default)s)")
    g.add_argument("--consumer", type=_name, default="trainer", metavar="NAME",
                   help="this trainer's name in the group (default: %(default)s)")
    _add_partition_options(g, "the users are split over K trainers by rtrec_native.stream.partition_of (producers: "
                           "Producer(..., partitions=K)); this one reads NAME:P, writes its files to DIR/partition-P, "
                           "and exchanges the shared rows (items, features, tower) with the others through "
                           "NAME:shared:Q (default: %(default)s: one trainer, stream NAME, files in DIR)",
                           "which of the K partitions this trainer learns, 0 to K-1 (needed when K > 1)")
    g.add_argument("--ids", choices=("auto", "int", "str"), default="auto",
                   help="ID text: auto reads a base-10 int64 as an integer ID and anything else as a string (a "
                   "side keeps the kind it started with); int or str force one kind (default: %(default)s)")
    g.add_argument("--event-weights", type=_event_weights, default=None, metavar="TYPE=W[,...]",
                   help="weights of the entries' type field, e.g. view=0.2,click=1,purchase=3 (multiplies the "
                   "weight field; a type not listed is a dead letter). Default: the type field is ignored")
    g.add_argument("--batch-size", type=positive_int, default=1000, metavar="N",
                   help="most entries read at once (default: %(default)s)")
    g.add_argument("--idle-exit", type=positive_float, default=None, metavar="SECONDS",
                   help="stop once nothing arrived for SECONDS (default: run until stopped)")
    g.add_argument("--max-entries", type=positive_int, default=None, metavar="N",
                   help="stop after reading N entries (default: no limit)")
    p = consume.add_argument_group("publishing")
    p.add_argument("--snapshot-dir", type=Path, required=True, metavar="DIR",
                   help="snapshots and deltas go here; the trainer resumes from it on restart")
    p.add_argument("--snapshot-interval", type=positive_float, default=0.1, metavar="SECONDS",
                   help="seconds between deltas: how long a learned event may wait to reach replicas (and to be "
                   "acknowledged) (default: %(default)s)")
    p.add_argument("--compact-every", type=positive_int, default=600, metavar="N",
                   help="deltas between full snapshots (for replicas that start late) (default: %(default)s)")
    p.add_argument("--announce-maxlen", type=positive_int, default=100, metavar="N",
                   help="announcements kept on NAME:deltas (a replica further behind catches up from the files) "
                   "(default: %(default)s)")
    p.add_argument("--trim", action=argparse.BooleanOptionalAction, default=True,
                   help="remove from the stream (XTRIM MINID, with each delta) the entries that every consumer "
                   "group has acknowledged; this trainer acknowledges an entry once a durable delta holds it, so the "
                   "stream keeps what some group still needs plus a few batches. --no-trim keeps everything (e.g. "
                   "to train another model from the start later) (default: on)")
    p.add_argument("--dead-maxlen", type=positive_int, default=100_000, metavar="N",
                   help="dead letters kept on NAME:dead, the oldest dropped first (default: %(default)s)")
    p.add_argument("--metrics-port", type=nonnegative_int, default=None, metavar="PORT",
                   help="serve GET /metrics (Prometheus text) on this port (0: a free one) (default: off)")
    p.add_argument("--metrics-host", default="127.0.0.1", help="interface for --metrics-port (default: %(default)s)")
    p.add_argument("--log-level", choices=("error", "warning", "info"), default="info",
                   help="what goes to stderr: info adds the start and the dead letters' summary (default: "
                   "%(default)s)")
    _add_refit_options(consume)
    _add_model_options(consume)
    _add_output_options(consume)


def add_export_parser(commands: Any) -> None:
    from ..export import FORMATS

    export = commands.add_parser(
        "export", help="write a model's item and user vectors (npz or parquet) for ANN indexes and other systems",
        description="Write the vectors and biases that scoring uses: for any user, items ranked by "
        "user_vector . item_vector + item_bias come in the order of 'rtrec recommend --include-seen'. npz: one "
        "file (item_ids, item_vectors, item_biases, user_..., meta); parquet: a directory with items.parquet "
        "and users.parquet (id, bias, vector).",
    )
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, metavar="PATH", help="a snapshot file")
    source.add_argument("--snapshot-dir", type=Path, metavar="DIR",
                        help="a trainer's directory: its newest state (snapshot and deltas)")
    export.add_argument("--format", choices=FORMATS, default="npz", help="file format (default: %(default)s)")
    export.add_argument("--out", type=Path, required=True, metavar="PATH",
                        help="npz: the file; parquet: the directory (created)")
    export.add_argument("--side", choices=("both", "item", "user"), default="both",
                        help="which vectors (default: %(default)s)")
    export.add_argument("--json", action="store_true", help="print JSON on stdout instead of a summary line")


def _add_partition_options(g: Any, partitions_help: str, partition_help: str) -> None:
    """--partitions K and --partition P (checked together by the command: cli/stream_commands.py)."""
    g.add_argument("--partitions", type=positive_int, default=1, metavar="K", help=partitions_help)
    g.add_argument("--partition", type=nonnegative_int, default=None, metavar="P", help=partition_help)


def add_follow_options(serve: argparse.ArgumentParser) -> None:
    g = serve.add_argument_group("replica (follow a trainer through Redis)")
    g.add_argument("--follow", metavar="URL",
                   help="serve as a read-only replica of the trainer ('rtrec consume') announcing deltas through "
                   "this Redis, e.g. redis://127.0.0.1:6379/0: starts from the newest snapshot in --snapshot-dir, "
                   "applies each announced delta at once, and forwards POST /feedback to --stream")
    g.add_argument("--stream", type=_name, default=DEFAULT_STREAM, metavar="NAME",
                   help="--follow: the trainer's events stream (announcements on NAME:deltas) (default: "
                   "%(default)s)")
    _add_partition_options(g, "--follow: the trainers split the users over K partitions ('rtrec consume "
                           "--partitions K'); this replica serves partition --partition P from DIR/partition-P, "
                           "answers 421 naming the right partition for another partition's user, and forwards "
                           "feedback to each user's partition stream (default: %(default)s)",
                           "--follow with --partitions K: which partition this replica serves, 0 to K-1")
