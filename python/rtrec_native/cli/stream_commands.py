"""``rtrec consume`` (the Redis-fed trainer), ``rtrec serve --follow`` (its replicas) and
``rtrec export`` (vectors out)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import PROG, CliError, one_line
from .output import print_json
from .steps import model_params


@contextlib.contextmanager
def _redis_errors(url: str) -> Iterator[None]:
    """Redis' own errors (a wrong key type, a refused command, a lost connection) as one line."""
    try:
        import redis  # noqa: PLC0415
    except ImportError:
        yield
        return
    try:
        yield
    except redis.exceptions.ConnectionError as exc:
        raise CliError(f"lost Redis at {url}: {one_line(str(exc))}") from None
    except redis.exceptions.RedisError as exc:
        raise CliError(f"Redis at {url} refused: {one_line(str(exc))}") from None


def _logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG} consume: %(message)s"))
    for name in ("rtrec_native.stream", "rtrec_native.replication"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False


def cmd_consume(args: argparse.Namespace) -> int:
    from ..recommender import Recommender  # noqa: PLC0415
    from ..stream import Consumer, RedisAnnouncer, RedisStreamSource  # noqa: PLC0415
    from .commands import _ignored_model_options  # noqa: PLC0415
    from .model_source import start_model  # noqa: PLC0415
    from .names import load_catalog  # noqa: PLC0415

    _logging(args.log_level)
    log = logging.getLogger("rtrec_native.stream")
    _partition(args)  # --partitions K --partition P: this trainer's stream and directory
    catalog = load_catalog(args)
    started = start_model(args.model, args.snapshot_dir, args.threads)  # --model: a warm start
    if started is None:
        rec = Recommender(**model_params(args, None))  # no labels seen: auto is the family's implicit loss
        origin = f"new {rec.get_params()['model']} {rec.get_params()['loss']} model in {args.snapshot_dir}"
    else:
        rec, origin = started
        ignored = _ignored_model_options(args, rec.get_params())
        if ignored:
            log.warning("note: the model keeps its own settings; ignoring %s", ignored)
    if catalog is not None:
        catalog.apply(rec)
        origin += f"; {catalog.describe()}"
    archive, refit = _archive_and_refit(args, catalog)
    with _redis_errors(args.redis):
        source = RedisStreamSource(args.redis, args.stream, args.group, args.consumer, dead_maxlen=args.dead_maxlen)
        announce = RedisAnnouncer(args.redis, args.stream + ":deltas", maxlen=args.announce_maxlen)
        shared = None
        if args.partitions > 1:
            from ..stream import SharedExchange  # noqa: PLC0415

            shared = SharedExchange(args.redis, args.events_stream, args.partitions, args.partition)
        consumer = Consumer(rec, source, args.snapshot_dir, ids=args.ids, event_weights=args.event_weights,
                            interval=args.snapshot_interval, batch_size=args.batch_size,
                            compact_every=args.compact_every, announce=announce, trim=args.trim,
                            archive=archive, refit=refit, shared=shared)
    metrics_url = _start_metrics(args, consumer)
    where = f" at entry {consumer.state.entry}" if consumer.state.entry else ""
    log.info("%s%s (%d events learned, %d dead letters so far); reading %s as %s/%s from %s%s", origin, where,
             consumer.learned, consumer.dead, args.stream, args.group, args.consumer, args.redis,
             f"; metrics on {metrics_url}" if metrics_url else "")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    learned_before, dead_before = consumer.learned, consumer.dead
    with _redis_errors(args.redis):
        try:
            consumer.run(stop, idle_exit=args.idle_exit, max_entries=args.max_entries)
            stats = consumer.stats()  # while the log is open (lag asks Redis)
        finally:
            source.close()
            announce.close()
            if shared is not None:
                shared.close()
    rec = consumer.model  # a refit may have replaced it
    summary = {**stats, "learned_now": consumer.learned - learned_before,
               "dead_letters_now": consumer.dead - dead_before, "snapshot_dir": str(args.snapshot_dir),
               "lineage": rec.snapshot_position[0], "sequence": rec.snapshot_position[1]}
    if refit is not None:
        summary["refits"], summary["refit_failures"] = refit.refits, refit.failures
    if args.json:
        print_json(summary)
    else:
        print(f"learned {summary['learned_now']:,} events ({summary['dead_letters_now']:,} dead letters) in this run; "
              f"{consumer.learned:,} in all, up to entry {consumer.state.entry}; model in {args.snapshot_dir} "
              f"at delta {rec.snapshot_position[1]}")
    if refit is not None and refit.running():
        # A refit's fit was abandoned mid-way (SIGTERM): its thread is in native code, which
        # interpreter shutdown would race with. Everything is durable by now: leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _partition(args: argparse.Namespace) -> None:
    """--partitions K --partition P: checked (one line each), then this trainer reads the
    stream NAME:P and keeps its files in DIR/partition-P (``args.stream`` and
    ``args.snapshot_dir`` become those; ``args.events_stream`` keeps NAME). K = 1 is the one
    trainer: stream NAME, files in DIR."""
    from ..stream import MAX_PARTITIONS  # noqa: PLC0415

    k, p = args.partitions, args.partition
    args.events_stream = args.stream
    if k > MAX_PARTITIONS:
        raise CliError(f"--partitions {k}: at most {MAX_PARTITIONS}")
    if k == 1:
        if p not in (None, 0):
            raise CliError(f"--partition {p}: out of range for --partitions 1 (the one partition is 0)")
        return
    if p is None:
        raise CliError(f"--partitions {k} needs --partition P, 0 to {k - 1}: which partition this process handles")
    if p >= k:
        raise CliError(f"--partition {p}: out of range for --partitions {k} (0 to {k - 1})")
    args.stream = f"{args.stream}:{p}"
    args.snapshot_dir = Path(args.snapshot_dir) / f"partition-{p}"


def _archive_and_refit(args: argparse.Namespace, catalog: Any) -> tuple[Any, Any]:
    """``--archive`` and ``--refit-*``: the EventArchive and the Refitter (None when off)."""
    from ..stream import EventArchive, Refitter  # noqa: PLC0415

    given = (("--refit-epochs", args.refit_epochs), ("--refit-window", args.refit_window))
    refit_flags = [flag for flag, value in given if value is not None]
    if args.refit_every is None and refit_flags:
        raise CliError(f"{', '.join(refit_flags)} needs --refit-every")
    if args.archive is None:
        if args.refit_every is not None:
            raise CliError("--refit-every needs --archive DIR: refits are fitted on the archived events")
        if args.archive_days is not None:
            raise CliError("--archive-days needs --archive DIR")
        return None, None
    if args.archive.exists() and not args.archive.is_dir():
        raise CliError(f"--archive {args.archive}: not a directory")
    if not args.archive.exists() and not args.archive.parent.is_dir():
        raise CliError(f"--archive {args.archive}: its parent directory {args.archive.parent} does not exist")
    try:
        archive = EventArchive(args.archive, retention_days=args.archive_days)
    except ImportError as exc:
        raise CliError(one_line(str(exc))) from None
    except OSError as exc:
        raise CliError(f"--archive {args.archive}: {one_line(exc.strerror or str(exc))}") from None
    if args.refit_every is None:
        return archive, None
    refit = Refitter(args.refit_every, epochs=args.refit_epochs, window=args.refit_window,
                     threads=args.refit_threads, prepare=None if catalog is None else catalog.apply)
    return archive, refit


def _start_metrics(args: argparse.Namespace, consumer: Any) -> str | None:
    if args.metrics_port is None:
        return None
    from ..prometheus import ServerMetrics  # noqa: PLC0415

    metrics = ServerMetrics(lambda: consumer.model, consumer=consumer)
    consumer.on_batch = lambda n, seconds: metrics.update_seconds.observe(seconds)
    try:
        server = metrics.serve(args.metrics_port, args.metrics_host)
    except OSError as exc:
        raise CliError(f"cannot serve metrics on {args.metrics_host}:{args.metrics_port}: "
                       f"{exc.strerror or exc}") from None
    port = server.server_port if server is not None else args.metrics_port
    return f"http://{args.metrics_host}:{port}/metrics"


def follow_app(args: argparse.Namespace) -> tuple[Any, str]:
    """``serve --follow``: a Replica of the trainer's directory that follows its Redis
    announcements, and the producer its POST /feedback forwards to."""
    from ..replication import Replica  # noqa: PLC0415
    from ..serving import create_app  # noqa: PLC0415
    from ..stream import Producer  # noqa: PLC0415

    if args.snapshot_dir is None:
        raise CliError("--follow needs --snapshot-dir: the trainer's directory, for the snapshot to start from")
    if args.model is not None:
        raise CliError("--follow serves the trainer's model; --model cannot be given with it")
    if args.item_features is not None or args.user_features is not None:
        raise CliError("--follow serves the trainer's model: give side features to the trainer, not a replica")
    _partition(args)  # --partitions K --partition P: that partition's directory and stream
    if not Path(args.snapshot_dir).is_dir():
        raise CliError(f"--snapshot-dir {args.snapshot_dir}: not a directory")
    partitioned = args.partitions > 1
    with _redis_errors(args.follow):
        replica = Replica(args.snapshot_dir, timeout=30.0, num_threads=args.threads, redis=args.follow,
                          deltas_stream=args.stream + ":deltas")
        forward = Producer(args.follow, args.events_stream, partitions=args.partitions if partitioned else None)
    app = create_app(replica, forward=forward, max_body_bytes=args.max_body_bytes, max_k=args.max_k,
                     partition=(args.partitions, args.partition) if partitioned else None)
    app.router.on_shutdown.append(replica.close)
    lineage, sequence = replica.position
    return app, (f"replica of {args.snapshot_dir} (lineage {lineage}, delta {sequence}) following "
                 f"{args.stream}:deltas at {args.follow}; feedback goes to {args.stream}")


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import export_vectors  # noqa: PLC0415
    from ..recommender import Recommender  # noqa: PLC0415
    from ..replication import restore_latest  # noqa: PLC0415

    if args.model is not None:
        if not args.model.is_file():
            raise CliError(f"model file not found: {args.model}")
        rec = Recommender.load(args.model)
    else:
        rec = restore_latest(args.snapshot_dir)
        if rec is None:
            raise CliError(f"no snapshot in {args.snapshot_dir}")
    sides = ("item", "user") if args.side == "both" else (args.side,)
    summary = export_vectors(rec, args.out, format=args.format, sides=sides)
    if args.json:
        print_json(summary)
    else:
        rows = ", ".join(f"{n:,} {side}s" for side, n in summary["rows"].items())
        print(f"wrote {rows} (dim {summary['meta']['dim']}) to {', '.join(summary['files'])}")
    return 0
