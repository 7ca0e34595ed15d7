"""The retrieval endpoints of :mod:`rtrec_native.serving`: recommendations for known users and
anonymous visitors, similar items, and hiding items.

- ``GET /recommend?user=U&k=10&items=a,b&exclude=c&tags=genre%3DComedy`` (lists are
  comma-separated; ``exclude_seen`` and ``diversity`` as in ``Recommender.recommend``).
- ``POST /recommend`` with ``{"users": [...], ...}`` or, for an anonymous visitor,
  ``{"history": [...], ...}`` and the same optional fields as JSON lists
  (``items``, ``exclude``, ``tags``, ``weights`` for a history).
- ``GET /similar?item=I&k=10`` (and the same filters): in the shape of ``/recommend``; 404
  for an unknown item.
- ``POST /hide`` and ``POST /unhide`` with ``{"items": [...]}``: 200 with
  ``{"hidden": n, "unknown": m}`` (for unhide, n is the number shown again). A replica
  forwards them to its trainer's stream (202), as it forwards feedback.

A user without a row gets the popular list, and the reply says so with
``"fallback": "popular"`` (a known user's reply has no such key): a typo in a user ID must
not look like a personal result. Bad input is a 4xx naming what was wrong; an unknown tag is a
422 naming it.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' request models from
# their runtime annotations, and those classes are local.

import time
from collections.abc import Callable
from typing import Annotated, Any

FALLBACK_POPULAR = "popular"


def add_retrieval_routes(app: Any, *, rec: Any, replica: Any, forward: Any, metrics: Any, max_k: int,
                         max_events: int, parse_id: Callable[[str, str], Any],
                         unprocessable: Callable[[Exception], Exception],
                         finite_or_none: Callable[[Any], list],
                         named: Callable[[list], dict[str, Any]],
                         own_user: Callable[[Any], None] = lambda uid: None) -> None:
    """Adds the retrieval endpoints to `app` (see the module docs). `parse_id(text, side)`
    turns query-string text into an ID of the model's kind; `named(items)` gives the reply's
    ``{"names": [...]}`` when the model has item names (else {}); `own_user(uid)` raises the
    HTTP error for a user this model does not hold (another partition's)."""
    from fastapi import HTTPException, Query  # noqa: PLC0415
    from fastapi.responses import JSONResponse  # noqa: PLC0415
    from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr  # noqa: PLC0415

    from ._retrieval import MAX_FILTER_IDS, MAX_FILTER_TAGS, MAX_QUERY_HISTORY  # noqa: PLC0415

    Id = StrictInt | StrictStr
    Number = StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)]

    class Query_(BaseModel):
        model_config = ConfigDict(extra="forbid")
        users: list[Id] | None = Field(default=None, min_length=1, max_length=max_events)
        history: list[Id] | None = Field(default=None, max_length=MAX_QUERY_HISTORY)
        weights: list[Number] | None = Field(default=None, max_length=MAX_QUERY_HISTORY)
        k: StrictInt = Field(default=10, ge=1, le=max_k)
        exclude_seen: bool = True
        diversity: Number = 0.0  # the core checks the range (422 naming it)
        items: list[Id] | None = Field(default=None, max_length=MAX_FILTER_IDS)
        exclude: list[Id] | None = Field(default=None, max_length=MAX_FILTER_IDS)
        tags: list[StrictStr] | None = Field(default=None, max_length=MAX_FILTER_TAGS)

    class Items(BaseModel):
        model_config = ConfigDict(extra="forbid")
        items: list[Id] = Field(min_length=1, max_length=MAX_FILTER_IDS)

    def id_list(text: str | None, side: str = "item") -> list | None:
        """A comma-separated query-string list ("" is an empty list)."""
        if text is None:
            return None
        return [parse_id(part, side) for part in text.split(",") if part != ""]

    def tag_list(text: str | None) -> list[str] | None:
        return None if text is None else [t for t in text.split(",") if t != ""]

    def ranked(call: Callable[[], Any]) -> Any:
        """Runs a retrieval call, mapping bad input to 422 and timing it."""
        began = time.perf_counter()
        try:
            out = call()
        except KeyError as exc:  # an unknown tag
            raise HTTPException(status_code=422, detail=str(exc.args[0]) if exc.args else "unknown") from exc
        except (ValueError, TypeError) as exc:
            raise unprocessable(exc) from exc
        if metrics is not None:
            metrics.recommend_seconds.observe(time.perf_counter() - began)
        return out

    def one_list(ids: Any, scores: Any, **head: Any) -> dict[str, Any]:
        items = ids.tolist()
        return {**head, "items": items, "scores": finite_or_none(scores.tolist()), **named(items)}

    def for_user(uid: Any, reply: dict[str, Any]) -> dict[str, Any]:
        if not rec.knows_user(uid):
            reply["fallback"] = FALLBACK_POPULAR
        return reply

    @app.get("/recommend")
    def recommend(user: str = Query(..., min_length=1, max_length=512), k: int = Query(10, ge=1, le=max_k),
                  exclude_seen: bool = True, diversity: float = 0.0, items: str | None = None,
                  exclude: str | None = None, tags: str | None = None) -> dict[str, Any]:
        """The user's top-k. `items`: comma-separated allow-list; `exclude`: comma-separated
        deny-list; `tags`: comma-separated item features an item must all carry. A user
        without a row gets the popular items and `"fallback": "popular"`."""
        uid = parse_id(user, "user")
        own_user(uid)
        ids, scores = ranked(lambda: rec.recommend(uid, k=k, exclude_seen=exclude_seen, diversity=diversity,
                                                   items=id_list(items), exclude=id_list(exclude),
                                                   tags=tag_list(tags)))
        return for_user(uid, one_list(ids, scores, user=uid))

    @app.post("/recommend")
    def recommend_many(body: Query_) -> dict[str, Any]:
        """Top-k for many known users (`users`), or for one anonymous visitor known only by
        the items of this session (`history`, oldest first; optional `weights`), with the
        same filters as GET /recommend as JSON lists. Learns nothing."""
        filters = {"items": body.items, "exclude": body.exclude, "tags": body.tags}
        if (body.users is None) == (body.history is None):
            raise HTTPException(status_code=422, detail="give either users (known users) or history (an anonymous "
                                                        "visitor's items), not both and not neither")
        if body.history is not None:
            ids, scores = ranked(lambda: rec.recommend_for_history(body.history, k=body.k, weights=body.weights,
                                                                   diversity=body.diversity, **filters))
            return {"results": [one_list(ids, scores, user=None)]}
        if body.weights is not None:
            raise HTTPException(status_code=422, detail="weights go with a history, not with users")
        for user in body.users:
            own_user(user)
        batch = ranked(lambda: rec.recommend_batch(body.users, k=body.k, exclude_seen=body.exclude_seen,
                                                   diversity=body.diversity, **filters))
        results = [for_user(user, one_list(row_ids, row_scores, user=user))
                   for user, (row_ids, row_scores) in zip(body.users, batch.rows(), strict=True)]
        return {"results": results}

    @app.get("/similar")
    def similar(item: str = Query(..., min_length=1, max_length=512), k: int = Query(10, ge=1, le=max_k),
                items: str | None = None, exclude: str | None = None, tags: str | None = None) -> dict[str, Any]:
        """The k items most similar to `item` (never itself): the model's top-k for a session
        of that one item. 404 for an unknown item; filters as in GET /recommend."""
        iid = parse_id(item, "item")
        try:
            ids, scores = rec.similar_items(iid, k=k, items=id_list(items), exclude=id_list(exclude),
                                            tags=tag_list(tags))
        except KeyError as exc:
            message = str(exc.args[0]) if exc.args else "not found"
            if message.startswith("unknown item"):
                raise HTTPException(status_code=404, detail=message) from exc
            raise HTTPException(status_code=422, detail=message) from exc
        except (ValueError, TypeError) as exc:
            raise unprocessable(exc) from exc
        return one_list(ids, scores, item=iid)

    def hide(body: Items, hidden: bool) -> Any:
        if forward is not None:
            try:
                forward.send_hide(body.items, hidden)
            except (ValueError, TypeError) as exc:
                raise unprocessable(exc) from exc
            except Exception as exc:  # Redis unreachable: the client should retry
                raise HTTPException(status_code=503, detail=f"cannot forward to the stream: {exc}") from exc
            return JSONResponse({"forwarded": len(body.items)}, status_code=202)
        if replica is not None:
            raise HTTPException(status_code=409, detail="this server is a replica: hide items on the trainer")
        try:
            out = rec.hide(body.items) if hidden else rec.unhide(body.items)
        except (ValueError, TypeError) as exc:
            raise unprocessable(exc) from exc
        return {"hidden": out["hidden"] if hidden else out["shown"], "unknown": out["unknown"]}

    @app.post("/hide")
    def hide_items(body: Items) -> Any:
        """Hide items from every retrieval call (they are still learned from and scored).
        200 with `{"hidden": newly hidden, "unknown": unknown IDs}`; a replica forwards the
        request to its trainer's stream (202)."""
        return hide(body, True)

    @app.post("/unhide")
    def unhide_items(body: Items) -> Any:
        """Show hidden items again: 200 with `{"hidden": shown again, "unknown": unknown IDs}`."""
        return hide(body, False)
