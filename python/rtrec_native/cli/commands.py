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

import numpy as np

from .errors import PROG, CliError
from .model_source import start_model
from .names import load_catalog
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
from .retrieval import cli_id, cmd_history, cmd_similar, filters, load_model, print_ranked, ranked
from .steps import (
    features_for,
    fit_epochs,
    fit_model,
    load_data,
    load_saved_model,
    load_side_features,
    model_params,
    run_prequential,
)

# =========================================================================== commands


def cmd_demo(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    catalog = load_catalog(args)  # a bad file fails before the replay
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
    write_plot(report, plot_path, data_info)
    seconds = time.perf_counter() - began  # everything: loading, replay, plot
    payload["wall_seconds"] = seconds
    if catalog is not None:
        payload["now"] = _recommended_now(report, catalog, data_info["last_user"])
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
    if catalog is not None:
        now = payload["now"]
        print(f"what each policy recommends user {now['user']} (the stream's last) at the end:")
        for name, top in now["policies"].items():
            print(f"  {name:<9} " + "; ".join(entry["name"] or str(entry["item"]) for entry in top))
    print(f"wrote {report_path} and {plot_path}")
    return 0




def _recommended_now(report: Any, catalog: Any, user: Any, k: int = 5) -> dict[str, Any]:
    """Each policy's final top-k for ``user``, named from the catalogue."""
    out: dict[str, Any] = {"user": user, "policies": {}}
    for name, result in report.policies.items():
        catalog.apply(result.model)
        ids, _ = result.model.recommend(user, k=k)
        items = [v.item() if isinstance(v, np.generic) else v for v in ids]
        names = result.model.item_names(items) if items else []
        out["policies"][name] = [{"item": i, "name": n} for i, n in zip(items, names, strict=True)]
    return out


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
    if args.model is not None:  # the saved model scores the test part as it is: no fit, no fine-tuning
        rec = load_saved_model(args.model, args.threads)
        for side_features in features:
            side_features.apply(rec)  # only IDs without features before get them; known ones are replaced
        params, fit_seconds = rec.get_params(), 0.0
        data_info["model_file"] = str(args.model)
    else:
        rec, params, fit_seconds = fit_model(args, split.train, features)
    result = evaluate_split(rec, split, k=args.k, positive_threshold=args.positive_threshold,
                            diversity=args.diversity)
    if args.json:
        print_json({**result.to_dict(), "data": data_info, "model": params, "fit_seconds": fit_seconds})
        return 0
    info = result.split
    fitted = f"saved model {args.model}, not refitted" if args.model is not None else f"fit {fit_seconds:.2f} s"
    print(f"temporal split ({info['by']}): {info['n_train']:,} train / {info['n_test']:,} test events; "
          f"model={params['model']}, loss={params['loss']}, {fitted}; {result.n_ranked_users:,} test users ranked "
          f"(positives: label >= {result.positive_threshold:g})")
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
    catalog = load_catalog(args)
    rec, params, fit_seconds = fit_model(args, events, features, catalog)
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
    if catalog is not None:
        notes.append(f"{rec.stats()['item_names']:,} item names from {catalog.path}")
    for note in notes:
        print(f"  {note}")
    return 0


TRAIN_COUNTERS = ("item_names", "not_admitted", "evicted_users", "evicted_items", "n_item_features", "n_user_features")



def cmd_recommend(args: argparse.Namespace) -> int:
    rec = load_model(args.model)
    if args.history is not None:
        return cmd_history(args, rec)
    user = cli_id(rec, args.user, "user")
    items, scores = ranked(lambda: rec.recommend(user, k=args.k, exclude_seen=not args.include_seen,
                                                 diversity=args.diversity, **filters(rec, args)))
    # An unknown user's list is the popularity ranking: said, never passed off as personal.
    known = rec.knows_user(user)
    # The reasons come from the model itself (Recommender.explain); a user the model does
    # not know has none.
    reasons = [rec.explain(user, item, n=3) if known else [] for item in items] if args.explain else None
    names = rec.item_names(items) if items else []
    if args.json:
        payload = {"user": args.user, "k": args.k, "diversity": args.diversity, "items": items,
                   "names": names, "scores": [float(s) for s in scores]}
        if not known:
            payload["fallback"] = "popular"
        if reasons is not None:
            payload["explanations"] = [_named_reasons(rec, r) for r in reasons]
        print_json(payload)
        return 0
    print(f"top {len(items)} for user {args.user}" + (f" (diversity {args.diversity:g})" if args.diversity else "")
          + ("" if known else " (unknown user: the popular items)") + ":")

    def because(i: int, indent: int) -> None:
        if reasons is not None:
            text = _reasons_text(_named_reasons(rec, reasons[i])) if known else "unknown user: popular items"
            print(f"{'':>{indent}}because: {text}")

    print_ranked(items, names, scores, after_row=because)
    return 0


def _named_reasons(rec: Any, reasons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """explain()'s reasons with the cited items' names where the model knows them."""
    cited = [r["item"] for r in reasons if "item" in r]
    if not cited:
        return reasons
    names = iter(rec.item_names(cited))
    out = []
    for r in reasons:
        name = next(names) if "item" in r else None
        out.append({**r, "name": name} if name is not None else r)
    return out


def _reasons_text(reasons: list[dict[str, Any]]) -> str:
    if not reasons:
        return "no history or features to explain it"
    def cited(r: dict[str, Any]) -> str:
        if "item" not in r:
            return f"feature {r['feature']}"
        return f"item {r['item']}" + (f" {r['name']!r}" if r.get("name") else "")

    return ", ".join(f"{cited(r)} ({r['weight']:+.3f})" for r in reasons)


def cmd_serve(args: argparse.Namespace) -> int:
    sock = _bind(args)  # a busy port fails before anything is loaded or announced
    try:
        app, origin = _follow_app(args) if args.follow is not None else _serving_app(args)
    except BaseException:
        sock.close()
        raise
    return _run_server(args, app, origin, sock)


def _follow_app(args: argparse.Namespace) -> tuple[Any, str]:
    from .stream_commands import follow_app  # noqa: PLC0415

    return follow_app(args)


def _serving_app(args: argparse.Namespace) -> tuple[Any, str]:
    if args.partitions != 1 or args.partition is not None:
        raise CliError("--partitions and --partition go with --follow: a replica of one partition's trainer")
    from ..recommender import Recommender  # noqa: PLC0415
    from ..replication import Publisher  # noqa: PLC0415
    from ..serving import create_app  # noqa: PLC0415

    features = load_side_features(args)  # bad files fail before anything starts
    catalog = load_catalog(args)
    started = start_model(args.model, args.snapshot_dir, args.threads)
    if started is None:
        rec = Recommender(**model_params(args, None))  # no labels yet: auto means the family's default
        origin = f"new {rec.get_params()['model']} {rec.get_params()['loss']} model"
    else:
        rec, origin = started
        ignored = _ignored_model_options(args, rec.get_params())
        if ignored:
            print(f"{PROG} serve: note: the model keeps its own settings; ignoring {ignored}",
                  file=sys.stderr, flush=True)
    for side_features in features:
        side_features.apply(rec)
        origin += f"; {side_features.describe()}"
    if catalog is not None:
        catalog.apply(rec)
        origin += f"; {catalog.describe()}"
    publisher = Publisher(rec, args.snapshot_dir, interval=args.snapshot_interval) if args.snapshot_dir else None
    app = create_app(rec, publisher=publisher, max_body_bytes=args.max_body_bytes, max_k=args.max_k)
    return app, origin


def _bind(args: argparse.Namespace) -> Any:
    """The listening socket, bound before anything is loaded: a busy port is one line."""
    import socket  # noqa: PLC0415

    try:
        infos = socket.getaddrinfo(args.host, args.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise CliError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise CliError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _run_server(args: argparse.Namespace, app: Any, origin: str, sock: Any) -> int:
    import uvicorn  # noqa: PLC0415

    port = sock.getsockname()[1]
    print(f"{PROG} serve: {origin}; http://{args.host}:{port}", file=sys.stderr, flush=True)
    # uvicorn turns SIGTERM/SIGINT into a graceful shutdown, which closes the publisher and
    # so writes the last delta; afterwards it re-raises the signal with the handler that was
    # installed before it started. A no-op handler there makes a requested shutdown exit 0.
    import signal  # noqa: PLC0415

    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    server = uvicorn.Server(uvicorn.Config(app, log_level=args.log_level))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
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
        if key in ("min_count", "ttl", "max_rows") and value == DEFAULTS[key]:
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


