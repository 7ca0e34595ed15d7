"""The ``rtrec`` commands: one function per command, taking the parsed arguments and
returning the exit code."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from .errors import PROG, CliError
from .options import POLICY_CHOICES
from .output import (
    describe_run,
    dropped_text,
    eviction_text,
    fmt,
    format_table,
    json_default,
    nan_low,
    print_json,
    write_plot,
)
from .retrieval import cli_id, cmd_history, cmd_similar, filters, load_model, ranked
from .steps import features_for, fit_epochs, fit_model, load_data, load_side_features, model_params, run_prequential

# =========================================================================== commands


def cmd_demo(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    report, data_info, replay_seconds = run_prequential(args, POLICY_CHOICES)
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
    report_path.write_text(json.dumps(payload, indent=2, allow_nan=False, default=json_default) + "\n")
    if args.json:
        print_json({**payload, "files": {"report": str(report_path), "plot": str(plot_path)}})
        return 0
    print(describe_run(report, data_info))
    print()
    print(format_table(report))
    print()
    best = max(report.policies.values(), key=lambda r: nan_low(r.metrics[report.primary_metric]))
    print(f"best {report.primary_metric}: {best.name}; wall time {seconds:.1f} s")
    print(f"wrote {report_path} and {plot_path}")
    return 0




def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.protocol == "prequential":
        report, data_info, seconds = run_prequential(args, args.policies)
        if args.json:
            print_json({**report.to_dict(), "data": data_info, "wall_seconds": seconds})
        else:
            print(describe_run(report, data_info))
            print()
            print(format_table(report))
        return 0
    return _evaluate_temporal(args)


def _evaluate_temporal(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate_split, temporal_split

    events, data_info, _ = load_data(args)
    if len(events) < 2:
        raise CliError(f"need at least 2 events for a train/test split, got {len(events)}")
    split = temporal_split(events, args.test_fraction, by=args.split)
    if len(split.train) == 0 or len(split.test) == 0:
        raise CliError(f"the {args.split} split left an empty part (train {len(split.train)}, test "
                       f"{len(split.test)}); change --test-fraction")
    features = features_for(args, events, data_info, data_ids_only=True)  # train and test IDs
    rec, params, fit_seconds = fit_model(args, split.train, features)
    result = evaluate_split(rec, split, k=args.k, positive_threshold=args.positive_threshold,
                            diversity=args.diversity)
    if args.json:
        print_json({**result.to_dict(), "data": data_info, "model": params, "fit_seconds": fit_seconds})
        return 0
    info = result.split
    print(f"temporal split ({info['by']}): {info['n_train']:,} train / {info['n_test']:,} test events; "
          f"loss={params['loss']}, fit {fit_seconds:.2f} s; {result.n_ranked_users:,} test users ranked")
    for side_features in features:
        print(side_features.describe())
    width = max(len(name) for name in result.metrics)
    for name, value in result.metrics.items():
        print(f"  {name.ljust(width)}  {fmt(value)}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    events, data_info, _ = load_data(args)
    # Every ID of a features file gets its features (and a row): the model can then
    # recommend items nobody has interacted with yet.
    features = features_for(args, events, data_info, data_ids_only=False)
    rec, params, fit_seconds = fit_model(args, events, features)
    path = Path(args.model_out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create directory {path.parent}: {exc.strerror or exc}") from None
    rec.save(path)
    stats = rec.stats()
    counters = {key: stats[key] for key in TRAIN_COUNTERS}
    summary = {"model": str(path), "n_events": len(events), "n_users": rec.n_users, "n_items": rec.n_items,
               **counters, "epochs": fit_epochs(args), "fit_seconds": fit_seconds, "params": params,
               "data": data_info}
    if args.json:
        print_json(summary)
        return 0
    print(f"trained loss={params['loss']} dim={params['dim']} on {len(events):,} events{dropped_text(data_info)} "
          f"({rec.n_users:,} users, {rec.n_items:,} items) in {fit_seconds:.2f} s; saved to {path}")
    notes = []
    if params["min_count"] > 1 or counters["not_admitted"]:
        notes.append(f"{counters['not_admitted']:,} events not learned (an ID seen fewer than "
                     f"--min-count {params['min_count']} times)")
    if params["ttl"] is not None or params["max_rows"] is not None or counters["evicted_users"] \
            or counters["evicted_items"]:
        notes.append(f"evicted {counters['evicted_users']:,} users and {counters['evicted_items']:,} items "
                     f"({eviction_text(params)})")
    for side_features in features:
        notes.append(f"{counters[f'n_{side_features.side}_features']:,} distinct {side_features.side} features "
                     f"on {len(side_features.ids):,} {side_features.side}s from {side_features.path} "
                     f"({side_features.n_in_data:,} of them in the data)")
    for note in notes:
        print(f"  {note}")
    return 0


TRAIN_COUNTERS = ("not_admitted", "evicted_users", "evicted_items", "n_item_features", "n_user_features")



def cmd_recommend(args: argparse.Namespace) -> int:
    rec = load_model(args.model)
    if args.history is not None:
        return cmd_history(args, rec)
    user = cli_id(rec, args.user, "user")
    ids, scores = ranked(lambda: rec.recommend(user, k=args.k, exclude_seen=not args.include_seen,
                                               diversity=args.diversity, **filters(rec, args)))
    # An unknown user's list is the popularity ranking: said, never passed off as personal.
    known = rec.knows_user(user)
    # The reasons come from the model itself (Recommender.explain); a user the model does
    # not know has none.
    reasons = [rec.explain(user, item, n=3) if known else [] for item in ids] if args.explain else None
    if args.json:
        payload = {"user": args.user, "k": args.k, "diversity": args.diversity, "items": ids,
                   "scores": [float(s) for s in scores]}
        if not known:
            payload["fallback"] = "popular"
        if reasons is not None:
            payload["explanations"] = reasons
        print_json(payload)
        return 0
    print(f"top {len(ids)} for user {args.user}" + (f" (diversity {args.diversity:g})" if args.diversity else "")
          + ("" if known else " (unknown user: the popular items)") + ":")
    for rank, (item, score) in enumerate(zip(ids, scores, strict=True), start=1):
        print(f"{rank:>4}  {item!s:>12}  {score:.4f}")
        if reasons is not None:
            print(f"{'':>6}because: {_reasons_text(reasons[rank - 1]) if known else 'unknown user: popular items'}")
    return 0


def _reasons_text(reasons: list[dict[str, Any]]) -> str:
    if not reasons:
        return "no history or features to explain it"
    return ", ".join(f"{'item ' + str(r['item']) if 'item' in r else 'feature ' + r['feature']} ({r['weight']:+.3f})"
                     for r in reasons)


def cmd_serve(args: argparse.Namespace) -> int:
    if args.follow is not None:
        from .stream_commands import follow_app  # noqa: PLC0415

        app, origin = follow_app(args)
        return _run_server(args, app, origin)
    from ..recommender import Recommender  # noqa: PLC0415
    from ..replication import Publisher, restore_latest  # noqa: PLC0415
    from ..serving import create_app  # noqa: PLC0415

    features = load_side_features(args)  # bad files fail before anything starts
    rec = restore_latest(args.snapshot_dir, num_threads=args.threads) if args.snapshot_dir else None
    origin = f"resumed from {args.snapshot_dir}" if rec is not None else ""
    if rec is None and args.model is not None:
        rec, origin = Recommender.load(args.model, num_threads=args.threads), f"loaded {args.model}"
    if rec is None:
        rec = Recommender(**model_params(args, None))  # no labels yet: auto means the family's default
        origin = f"new {rec.get_params()['model']} {rec.get_params()['loss']} model"
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
    return _run_server(args, app, origin)


def _run_server(args: argparse.Namespace, app: Any, origin: str) -> int:
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
    from ..recommender import DEFAULTS

    given = {"loss": None if args.loss == "auto" else args.loss, "model": args.family}
    given.update({key: getattr(args, key) for key in ("dim", "optimizer", "learning_rate", "l2", "negatives",
                                                      "tower", "history", "recency", "min_count", "ttl",
                                                      "max_rows")})
    out = []
    for key, value in given.items():
        if value is None and key not in ("ttl", "max_rows"):
            continue  # not asked for: the model's own setting stands
        if key in ("model", "min_count", "ttl", "max_rows") and value == DEFAULTS[key]:
            continue  # not asked for (or asked for the default)
        have = model.get(key)
        same = have == value or (isinstance(have, float) and isinstance(value, float)
                                 and math.isclose(have, value, rel_tol=1e-6))
        if not same:
            flag = "family" if key == "model" else key.replace("_", "-")
            out.append(f"--{flag} {value} (the model has {key}={have})")
    return ", ".join(out)


def cmd_consume(args: argparse.Namespace) -> int:
    from .stream_commands import cmd_consume as run  # noqa: PLC0415 - redis is imported only here

    return run(args)


def cmd_export(args: argparse.Namespace) -> int:
    from .stream_commands import cmd_export as run  # noqa: PLC0415

    return run(args)


COMMANDS = {"demo": cmd_demo, "train": cmd_train, "evaluate": cmd_evaluate, "recommend": cmd_recommend,
            "similar": cmd_similar,
            "serve": cmd_serve, "consume": cmd_consume, "export": cmd_export}


