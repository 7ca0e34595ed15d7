"""The one column-discovery rule, for event tables and feature tables alike.

A column given by name must exist. Otherwise a role's column is found among the frame's
columns by a list of common names, compared case-insensitively (surrounding spaces ignored):
exactly one match is that role's column; none is an error for a required role (else the role
is absent); **two or more is an error** naming them, never a silent first pick, since taking
``rating`` where ``label`` was meant would train on the wrong column without a word.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "COLUMN_CANDIDATES",
    "FEATURE_COLUMN_CANDIDATES",
    "discover_column",
    "resolve_event_columns",
]

#: Names tried for each column role of an event table when no explicit name is given
#: (case-insensitive; at most one may be present).
COLUMN_CANDIDATES: dict[str, tuple[str, ...]] = {
    "user": ("userId", "user_id", "user", "uid"),
    "item": ("movieId", "itemId", "item_id", "item", "iid"),
    "label": ("rating", "label", "click", "y"),
    "time": ("timestamp", "time", "ts"),
    "event": ("event", "event_type", "type"),
    "weight": ("weight", "w"),
}

#: Names tried for the features column of :func:`~rtrec_native.data.load_features` when
#: ``feature_col`` is not given (case-insensitive; at most one may be present). The ID column
#: is found by the ``"item"`` and ``"user"`` names of :data:`COLUMN_CANDIDATES` the same way.
FEATURE_COLUMN_CANDIDATES: tuple[str, ...] = (
    "features",
    "feature",
    "genres",
    "genre",
    "tags",
    "tag",
    "categories",
    "category",
)


def discover_column(
    frame_columns: Sequence[Any],
    candidates: Sequence[str],
    what: str,
    param: str,
    origin: str,
    *,
    exclude: Sequence[Any] = (),
    required: bool = True,
) -> Any:
    """The one column of ``frame_columns`` (not in ``exclude``) named like a candidate.

    Returns ``None`` when there is none and ``required`` is false. Raises ``ValueError``
    listing the columns when a required one is missing or when several match; ``param`` is
    the keyword argument that names the column explicitly, quoted in the message.
    """
    wanted = {name.lower() for name in candidates}
    matches = [c for c in frame_columns if c not in exclude and str(c).strip().lower() in wanted]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValueError(
            f"{origin}: several columns could be the {what} column: {matches}; "
            f"pass {param}=... to choose one"
        )
    if not required:
        return None
    raise ValueError(
        f"{origin}: no {what} column found; tried {list(candidates)} "
        f"(or pass {param}=...); columns are {list(frame_columns)}"
    )


def resolve_event_columns(
    frame_columns: list[Any],
    origin: str,
    explicit: Mapping[str, str | None],
    want_events: bool,
) -> dict[str, Any]:
    """The column of each event role (``None`` when absent): explicit names first, then
    :func:`discover_column` among the columns no explicit name took. User and item are
    required; the event column is looked for only when event weights are given (types
    mean nothing without them)."""
    if explicit.get("event") is not None and not want_events:
        raise ValueError(
            f"event_col={explicit['event']!r} needs event_weights, a mapping of event type "
            "-> weight such as {'view': 0.2, 'click': 1.0, 'purchase': 3.0}"
        )
    taken = [name for name in explicit.values() if name is not None]
    resolved: dict[str, Any] = {}
    for role, candidates in COLUMN_CANDIDATES.items():
        name = explicit.get(role)
        if name is not None:
            if name not in frame_columns:
                raise ValueError(
                    f"{origin}: {role} column {name!r} not found; columns are {frame_columns}"
                )
            resolved[role] = name
        elif role == "event" and not want_events:
            resolved[role] = None
        else:
            resolved[role] = discover_column(
                frame_columns, candidates, role, f"{role}_col", origin,
                exclude=taken, required=role in ("user", "item") or role == "event",
            )
    used = [c for c in resolved.values() if c is not None]
    if len(used) != len(set(used)):
        raise ValueError(f"{origin}: one column was mapped to two roles: {resolved}")
    return resolved
