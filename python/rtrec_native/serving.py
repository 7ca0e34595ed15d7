"""HTTP service that learns while it serves (``rtrec serve``; needs the ``[serve]`` extra).

One in-process model answers recommendations and learns from feedback: a ``POST /feedback``
is applied with ``Recommender.update`` before the response is sent, so the next request sees
it. With a snapshot directory a :class:`~rtrec_native.replication.Publisher` writes a delta
every ``snapshot_interval`` seconds (and a last one on shutdown), so at most that much
acknowledged feedback can be lost in a crash; a restart resumes from the directory.

Endpoints: ``POST /feedback``, ``GET /recommend?user=..&k=..``, ``POST /recommend``,
``POST /features/items`` and ``POST /features/users`` (side features, e.g. a new item's
attributes: recommendable at once), ``GET /healthz``, ``GET /stats``. Bad requests get 4xx
with a reason and change nothing.
"""

# No `from __future__ import annotations`: FastAPI reads the request models of the
# endpoints below from their (runtime) annotations, and those classes are local.

import json
import math
from typing import Any, Union

from .recommender import Recommender

__all__ = ["create_app"]

DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_K = 1000
DEFAULT_MAX_EVENTS = 10_000


def _import_fastapi() -> None:
    try:
        import fastapi  # noqa: F401, PLC0415
        import uvicorn  # noqa: F401, PLC0415
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("rtrec serve needs FastAPI and uvicorn: pip install 'rtrec_native[serve]'") from exc


class _BodyLimit:
    """Refuses a request body over the limit from its Content-Length header, before reading
    it; a body without a length (chunked) could be any size, so bodies must declare one.
    A plain ASGI middleware: Starlette's @app.middleware("http") wraps every request in
    extra tasks and costs more than the recommendation itself."""

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or ())
            length = headers.get(b"content-length")
            if length is None and scope["method"] in ("POST", "PUT", "PATCH"):
                return await _json_reply(send, 411, "a Content-Length header is required")
            if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
                return await _json_reply(send, 413, f"request body over {self.max_body_bytes} bytes")
        await self.app(scope, receive, send)


async def _json_reply(send: Any, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def create_app(rec: Recommender, *, publisher: Any = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               max_k: int = DEFAULT_MAX_K, max_events: int = DEFAULT_MAX_EVENTS) -> Any:
    """A FastAPI app serving `rec`. `publisher` (optional) is closed on shutdown, which
    writes the last delta."""
    _import_fastapi()
    from fastapi import FastAPI, HTTPException, Query  # noqa: PLC0415
    from fastapi.responses import JSONResponse  # noqa: PLC0415
    from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr  # noqa: PLC0415

    Id = Union[StrictInt, StrictStr]
    Number = Union[StrictInt, StrictFloat]

    class Event(BaseModel):
        model_config = ConfigDict(extra="forbid")
        user: Id
        item: Id
        label: Union[Number, None] = None
        weight: Union[Number, None] = None

    class Feedback(BaseModel):
        model_config = ConfigDict(extra="forbid")
        events: list[Event] = Field(min_length=1, max_length=max_events)

    class BatchQuery(BaseModel):
        model_config = ConfigDict(extra="forbid")
        users: list[Id] = Field(min_length=1, max_length=max_events)
        k: StrictInt = Field(default=10, ge=1, le=max_k)
        exclude_seen: bool = True

    class Features(BaseModel):
        model_config = ConfigDict(extra="forbid")
        ids: list[Id] = Field(min_length=1, max_length=max_events)
        features: list[list[StrictStr]] = Field(min_length=1, max_length=max_events)

    app = FastAPI(title="rtrec_native", version="1")
    if publisher is not None:
        app.router.on_shutdown.append(publisher.close)

    app.add_middleware(_BodyLimit, max_body_bytes=max_body_bytes)

    def unprocessable(exc: Exception) -> HTTPException:
        return HTTPException(status_code=422, detail=str(exc))

    def user_id(text: str) -> int | str:
        """Query strings are text: an integer-ID model reads the user as an int."""
        kind = rec._model.user_id_kind
        if kind == "str":
            return text
        try:
            return int(text)
        except ValueError:
            if kind == "int":
                raise HTTPException(status_code=422, detail=f"user IDs are integers here, got {text!r}") from None
            return text

    def finite_or_none(values: Any) -> list:
        return [None if isinstance(v, float) and not math.isfinite(v) else v for v in values]

    @app.post("/feedback")
    def feedback(body: Feedback) -> dict[str, int]:
        events = body.events
        labels = [e.label for e in events]
        if all(v is None for v in labels):
            labels = None
        elif any(v is None for v in labels):
            raise HTTPException(status_code=422, detail="give a label for every event or for none")
        weights = [1.0 if e.weight is None else e.weight for e in events]
        try:
            rec.update([e.user for e in events], [e.item for e in events], labels, weights)
        except (ValueError, TypeError) as exc:  # validated whole before anything is applied
            raise unprocessable(exc) from exc
        return {"applied": len(events)}

    def set_features(body: Features, on_items: bool) -> dict[str, int]:
        try:
            if on_items:
                rec.set_item_features(body.ids, body.features)
            else:
                rec.set_user_features(body.ids, body.features)
        except (ValueError, TypeError) as exc:  # the batch is checked whole first
            raise unprocessable(exc) from exc
        return {"updated": len(body.ids)}

    @app.post("/features/items")
    def item_features(body: Features) -> dict[str, int]:
        return set_features(body, True)

    @app.post("/features/users")
    def user_features(body: Features) -> dict[str, int]:
        return set_features(body, False)

    @app.get("/recommend")
    def recommend(user: str = Query(..., min_length=1, max_length=512), k: int = Query(10, ge=1, le=max_k),
                  exclude_seen: bool = True) -> dict[str, Any]:
        uid = user_id(user)
        try:
            ids, scores = rec.recommend(uid, k=k, exclude_seen=exclude_seen)
        except (ValueError, TypeError) as exc:
            raise unprocessable(exc) from exc
        return {"user": uid, "items": ids.tolist(), "scores": finite_or_none(scores.tolist())}

    @app.post("/recommend")
    def recommend_many(body: BatchQuery) -> dict[str, Any]:
        try:
            ids, scores = rec.recommend_batch(body.users, k=body.k, exclude_seen=body.exclude_seen)
        except (ValueError, TypeError) as exc:
            raise unprocessable(exc) from exc
        results = []
        for user, row_ids, row_scores in zip(body.users, ids.tolist(), scores.tolist()):
            keep = [j for j, s in enumerate(row_scores) if math.isfinite(s)]  # drop padding
            results.append({"user": user, "items": [row_ids[j] for j in keep], "scores": [row_scores[j] for j in keep]})
        return {"results": results}

    @app.get("/healthz")
    def healthz() -> Any:
        # Serving works even when publishing fails, but then acknowledged feedback is not
        # being persisted: say so, with 503, so that orchestration notices.
        if publisher is not None and publisher.last_error is not None:
            return JSONResponse({"status": "degraded", "publisher_error": str(publisher.last_error)}, status_code=503)
        return {"status": "ok"}

    @app.get("/stats")
    def stats() -> dict[str, Any]:
        out = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in rec.stats().items()}
        if publisher is not None:
            out["publisher"] = {"deltas_written": publisher.deltas_written, "snapshots_written": publisher.snapshots_written,
                                "errors": publisher.errors,
                                "last_error": None if publisher.last_error is None else str(publisher.last_error)}
        return out

    return app
