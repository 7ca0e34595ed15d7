"""What the commands print and write: the demo's table and plot, run descriptions, JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

# =========================================================================== output


def fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _refresh_text(name: str, result: Any, config: dict[str, Any]) -> str:
    if name == "realtime":
        size = config["batch_size"]
        return f"{result.update_latency_ms:.3f} ms per update of {size} event{'s' if size != 1 else ''}"
    if name == "periodic":
        return f"{result.update_latency_ms:,.1f} ms per refit ({result.n_updates} refits)"
    if name == "hybrid":
        refits = result.refit_seconds  # the refits, then the update calls between them
        refit_ms = 1e3 * sum(refits) / len(refits) if refits else 0.0
        update_ms = (result.update_latency_ms * result.n_updates - 1e3 * sum(refits)) / max(1, result.n_updates
                                                                                              - len(refits))
        return f"{refit_ms:,.1f} ms per refit ({len(refits)} refits) + {update_ms:.3f} ms per update"
    return "never updated"


def format_table(report: Any) -> str:
    """The demo's table: one row per policy."""
    k = report.config["k"]
    pointwise = "rmse" if "rmse" in report.metric_names else "auc" if "auc" in report.metric_names else None
    headers = ["policy", f"HitRate@{k}", f"NDCG@{k}"]
    if pointwise is not None:
        headers.append(pointwise.upper())
    # Beyond accuracy (when the report has them): intra-list diversity, novelty (bits), coverage.
    beyond = [(f"ild@{k}", f"ILD@{k}"), (f"novelty@{k}", "novelty"), (f"coverage@{k}", "coverage")]
    beyond = [(key, title) for key, title in beyond if key in report.metric_names]
    headers += [title for _, title in beyond]
    headers += ["events/s", "update latency"]
    rows = []
    for name, result in report.policies.items():
        row = [name, fmt(result.metrics[f"hitrate@{k}"]), fmt(result.metrics[f"ndcg@{k}"])]
        if pointwise is not None:
            row.append(fmt(result.metrics[pointwise]))
        row += [fmt(result.metrics[key]) for key, _ in beyond]
        row += [f"{result.events_per_s:,.0f}", _refresh_text(name, result, report.config)]
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        middle = [c.rjust(w) for c, w in zip(cells[1:-1], widths[1:-1], strict=True)]
        return "  ".join([first, *middle, cells[-1]])

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def describe_run(report: Any, data_info: dict[str, Any]) -> str:
    s, c = report.stream, report.config
    source = "synthetic stream (taste drift, new items)" if data_info["source"] == "synthetic" else data_info["source"]
    source += dropped_text(data_info)
    if c["retrain_period"] is not None and c["retrain_every"] is None:
        schedule = f"every {c['retrain_period'] / 3600:g} h of event time"
    elif c["retrain_period"] is None:
        schedule = f"every {c['retrain_every']:,} events"
    else:
        schedule = f"every {c['retrain_every']:,} events or {c['retrain_period'] / 3600:g} h"
    from ..recommender import DEFAULTS

    model = c["model"]
    extras = "".join(f", {key}={model[key]}" for key in ("min_count", "ttl", "max_rows")
                     if key in model and model[key] != DEFAULTS[key])
    for side in ("item", "user"):
        info = data_info.get(f"{side}_features")
        if info is not None:
            extras += f"; {info['n_features']:,} {side} features ({info['path']})"
    return (
        f"data: {source}: {s['n_events']:,} events, {s['n_users']:,} users, {s['n_items']:,} items; "
        f"model={model['model']}, loss={s['loss']}, dim={model['dim']}{extras}\n"
        f"protocol: {c['protocol']}; warm-up fit on the first {c['n_warmup']:,} events "
        f"({c['epochs']} epochs); periodic refit {schedule}; {s['n_scored']:,} events scored, "
        f"{s['n_ranked']:,} new positives ranked (label >= {c['positive_threshold']:g})\n"
        f"ranked events: a new positive is an event with label >= {c['positive_threshold']:g} on an item the user "
        "had not consumed; runs compare only under the same rule (--positive-threshold)"
    )


def write_plot(report: Any, path: Path, data_info: dict[str, Any] | None = None) -> None:
    """PNG of the ranking metrics per window for each policy (matplotlib, no display needed):
    the headline's HitRate@k, then NDCG@k; periodic refits are marked; the title names the
    data, the family and the loss, and a caption says which events were ranked."""
    from matplotlib.figure import Figure  # the object API: no pyplot, no global backend

    k = report.config["k"]
    names = [m for m in (report.primary_metric, f"ndcg@{k}") if m in report.metric_names]
    fig = Figure(figsize=(9, 3.0 * len(names) + 0.9), layout="constrained")
    axes = fig.subplots(len(names), 1, squeeze=False, sharex=True)[:, 0]
    spans = report.windows
    x: np.ndarray
    middles = np.array([(w.start + w.end) / 2 for w in spans], dtype=np.float64)
    if spans and spans[0].t_start is not None:
        seconds = np.array([(w.t_start + w.t_end) / 2 for w in spans], dtype=np.float64)
        x = seconds.astype("datetime64[s]")
        xlabel = "event time (middle of each window of equal event counts)"

        def at(positions: list[int]) -> np.ndarray:
            return np.interp(positions, middles, seconds).astype("datetime64[s]")
    else:
        x = middles
        xlabel = "event position in the stream (middle of each window)"

        def at(positions: list[int]) -> np.ndarray:
            return np.asarray(positions, dtype=np.float64)
    styles = {"realtime": "-o", "periodic": "-s", "static": "-^", "hybrid": "-D"}
    refitting = [name for name in ("periodic", "hybrid") if name in report.policies]
    refits = report.policies[refitting[0]].refits_at if refitting else []
    for ax, metric in zip(axes, names, strict=True):
        for name, result in report.policies.items():
            y = np.array([w[metric] for w in result.windows], dtype=np.float64)
            ax.plot(x, y, styles.get(name, "-"), markersize=3, label=name)
        for i, when in enumerate(at(refits) if refits else []):
            ax.axvline(when, color="dimgrey", alpha=0.7, linewidth=1.0, linestyle="--",
                       label=f"refit ({', '.join(refitting)})" if i == 0 else None)
        ax.set_ylabel(metric.replace("hitrate", "HitRate").replace("ndcg", "NDCG"))
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    axes[-1].set_xlabel(xlabel)
    if x.dtype.kind == "M":
        for label in axes[-1].get_xticklabels():
            label.set_rotation(20)
            label.set_horizontalalignment("right")
    model = report.config["model"]
    source = "synthetic stream" if not data_info or data_info.get("source") == "synthetic" \
        else Path(str(data_info["source"])).name
    axes[0].set_title(f"{source}: model={model['model']}, loss={report.stream['loss']} — "
                      + " vs ".join(report.policies) + " learning", fontsize=10)
    fig.text(0.01, 0.0, _caption(report), fontsize=7.5, ha="left", va="bottom", wrap=True)
    fig.get_layout_engine().set(rect=(0, 0.05, 1, 0.95))
    fig.savefig(path, dpi=110)


def _caption(report: Any) -> str:
    k, threshold = report.config["k"], report.config["positive_threshold"]
    return (f"Ranked events: each new positive (label >= {threshold:g}) after the warm-up, "
            f"{report.stream['n_ranked']:,} in all; a hit when its item is in the policy's top-{k} "
            "at that moment (items the user already consumed left out). Test-then-train: scored before learned.")


def print_json(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, indent=2, allow_nan=False, default=json_default))


def json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")




def nan_low(value: float) -> float:
    return -math.inf if value is None or math.isnan(value) else value



def dropped_text(data_info: dict[str, Any]) -> str:
    """" (56 of 20,056 rows dropped by cleaning, see stderr)" when cleaning dropped rows."""
    cleaning = data_info.get("cleaning")
    if not cleaning or not cleaning["n_dropped"]:
        return ""
    return f" ({cleaning['n_dropped']:,} of {cleaning['n_input']:,} rows dropped by cleaning, see stderr)"


def eviction_text(params: dict[str, Any]) -> str:
    ttl = "never" if params["ttl"] is None else f"{params['ttl']:g} s"
    cap = "none" if params["max_rows"] is None else f"{params['max_rows']:,} rows"
    return f"ttl {ttl}, cap {cap}"


