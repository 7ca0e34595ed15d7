"""HTTP service that learns while it serves (``rtrec serve``; needs the ``[serve]`` extra).

One in-process model answers recommendations and learns from feedback: a ``POST /feedback``
is applied with ``Recommender.update`` before the response is sent, so the next request sees
it. With a snapshot directory a :class:`~rtrec_native.replication.Publisher` writes a delta
every ``snapshot_interval`` seconds (and a last one on shutdown), so at most that much
acknowledged feedback can be lost in a crash; a restart resumes from the directory.

Endpoints: ``POST /feedback``, ``GET /recommend?user=..&k=..&diversity=..``, ``POST /recommend``,
``GET /similar``, ``POST /hide``, ``POST /unhide`` (filters, anonymous visitors and hidden items:
see :mod:`rtrec_native.serving_retrieval`), ``GET /explain?user=..&item=..&n=..`` (the
reasons of ``Recommender.explain``; 404 for an unknown user or item),
``POST /features/items`` and ``POST /features/users`` (side features, e.g. a new item's
attributes: recommendable at once), ``GET /healthz``, ``GET /stats`` (the model's counters,
plus ``events_applied``: events acknowledged by ``POST /feedback`` since the start) and
``GET /metrics`` (Prometheus text format, see :mod:`rtrec_native.prometheus`).

A replica (``rtrec serve --follow``) serves a :class:`~rtrec_native.Replica` instead: it
answers recommendations from the copy it follows and forwards ``POST /feedback`` to the
trainer's stream (202, ``{"forwarded": n}``: learned by the trainer, visible here with its
next delta); it has no features of its own to set (409). Bad requests get 4xx
with a reason and change nothing. Every error body is JSON with a ``detail``; it never echoes
input that JSON cannot carry (non-finite numbers, lone surrogates, raw bytes), and a body with
a non-finite number (``NaN``, ``Infinity`` or a literal outside the float range such as
``1e400``) is refused with 422.
"""

# No `from __future__ import annotations`: FastAPI reads the request models of the
# endpoints below from their (runtime) annotations, and those classes are local.

import json
import math
import re
import threading
import time
from typing import Annotated, Any

from ._extras import install_hint
from .recommender import Recommender
from .replication import Replica
from .serving_retrieval import add_retrieval_routes

__all__ = ["create_app"]

DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_K = 1000
DEFAULT_MAX_EVENTS = 10_000

# Bounds on what an error body echoes of the input: enough to see what was wrong, never the
# whole (up to 1 MiB) body, and nothing JSON cannot encode.
_ECHO_TEXT = 200
_ECHO_ITEMS = 10
_ECHO_DEPTH = 3
_ECHO_ERRORS = 20
_INT_TEXT = re.compile(r"-?[0-9]+")


def _import_fastapi() -> None:
    try:
        import fastapi  # noqa: F401, PLC0415
        import uvicorn  # noqa: F401, PLC0415
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("rtrec serve needs FastAPI and uvicorn: " + install_hint("serve")) from exc


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
                return await _json_reply(411, send=send, detail="a Content-Length header is required")
            if length is not None and not length.isdigit():
                return await _json_reply(400, send=send, detail="the Content-Length header must be a number of bytes")
            if length is not None and int(length) > self.max_body_bytes:
                return await _json_reply(413, send=send, detail=f"request body over {self.max_body_bytes} bytes")
        await self.app(scope, receive, send)


async def _json_reply(status: int, *, send: Any, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _safe_text(text: str, limit: int = _ECHO_TEXT) -> str:
    """`text` cut to `limit` characters, with anything UTF-8 cannot encode (lone surrogates,
    which JSON escapes like "\\ud800" decode to) written as a backslash escape."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _json_safe(value: Any, depth: int = 0) -> Any:
    """A JSON-encodable stand-in for `value`, bounded in size: finite numbers, booleans,
    None and sanitised text pass; non-finite floats become their name as text ("inf"), raw
    bytes their escaped text, huge integers a description; containers are cut short."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        # JSON has no integer limit, but a client's parser may; and str() of a huge int raises.
        return value if value.bit_length() <= 64 else f"an integer of {value.bit_length()} bits"
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return _safe_text(value)
    if isinstance(value, (bytes, bytearray)):
        return _safe_text(bytes(value[: _ECHO_TEXT + 1]).decode("utf-8", "backslashreplace"))
    if depth >= _ECHO_DEPTH:
        return "..."
    if isinstance(value, dict):
        items = list(value.items())
        out = {_safe_text(str(k), 100): _json_safe(v, depth + 1) for k, v in items[:_ECHO_ITEMS]}
        if len(items) > _ECHO_ITEMS:
            out["..."] = f"{len(items) - _ECHO_ITEMS} more"
        return out
    if isinstance(value, (list, tuple)):
        out_list = [_json_safe(v, depth + 1) for v in value[:_ECHO_ITEMS]]
        if len(value) > _ECHO_ITEMS:
            out_list.append(f"... {len(value) - _ECHO_ITEMS} more")
        return out_list
    return _safe_text(repr(value))


def _validation_detail(errors: Any) -> list[dict[str, Any]]:
    """FastAPI's list of validation errors (type, loc, msg, input, ctx), made JSON-safe: its
    default handler echoes the offending input as is, and an input JSON cannot encode (a
    non-finite float, a lone surrogate in a value or a key) made the error response itself
    fail: HTTP 500 and a dropped connection instead of a 422."""
    out = []
    for err in list(errors)[:_ECHO_ERRORS]:
        if not isinstance(err, dict):
            out.append({"msg": _safe_text(str(err))})
            continue
        item: dict[str, Any] = {"type": _safe_text(str(err.get("type", "")), 100),
                                "loc": [p if isinstance(p, int) and not isinstance(p, bool) else _safe_text(str(p), 100)
                                        for p in err.get("loc", ())],
                                "msg": _safe_text(str(err.get("msg", "")))}
        if "input" in err:
            item["input"] = _json_safe(err["input"])
        if isinstance(err.get("ctx"), dict):
            item["ctx"] = {_safe_text(str(k), 100): _json_safe(v, _ECHO_DEPTH - 1) for k, v in err["ctx"].items()}
        out.append(item)
    return out


def _http_error(status: int, detail: str) -> Exception:
    from fastapi import HTTPException  # noqa: PLC0415

    return HTTPException(status_code=status, detail=detail)


def _reject_constant(name: str) -> Any:
    """json.loads hook for the NaN/Infinity/-Infinity literals (not JSON, but Python reads them)."""
    raise _http_error(422, f"JSON numbers must be finite, got {name}")


def _finite_float(text: str) -> float:
    """json.loads hook for numbers with a fraction or exponent: a literal outside the float
    range (1e400) would otherwise become inf."""
    value = float(text)
    if not math.isfinite(value):
        raise _http_error(422, f"JSON numbers must fit in a 64-bit float, got {_safe_text(text, 40)}")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads hook for objects: a key given twice is ambiguous (which value is the
    event's user?), so it is an error rather than last-one-wins."""
    out = dict(pairs)
    if len(out) == len(pairs):
        return out
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _http_error(422, f"duplicate key {_safe_text(repr(key), 80)} in a JSON object")
        seen.add(key)
    return out  # not reached


_JSON_TYPE = re.compile(r"application/(?:[\w.+-]+\+)?json")


def _parse_json(body: bytes) -> Any:
    """The request body as strict JSON (RFC 8259): UTF-8, finite numbers, unique keys;
    anything else is a 422 saying what was wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _http_error(422, f"the request body must be UTF-8 JSON; invalid byte at position {exc.start}") from None
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                          object_pairs_hook=_unique_keys)
    except RecursionError:
        raise _http_error(422, "the JSON body is nested too deeply") from None
    except json.JSONDecodeError:
        raise  # FastAPI turns it into its usual json_invalid error (position and reason)
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise _http_error(422, f"the request body is not usable JSON: {_safe_text(str(exc))}") from None


def _strict_json_route() -> type:
    """An APIRoute whose requests parse JSON bodies with `_parse_json` (FastAPI's way to
    change body parsing: a route class handing the endpoint its own Request subclass), and
    whose body-taking routes want a JSON content type (FastAPI would otherwise validate the
    raw bytes against the model and answer with a confusing error)."""
    from fastapi.routing import APIRoute  # noqa: PLC0415
    from starlette.requests import Request  # noqa: PLC0415

    class StrictJSONRequest(Request):
        async def json(self) -> Any:
            if not hasattr(self, "_json"):
                self._json = _parse_json(await self.body())
            return self._json

    class StrictJSONRoute(APIRoute):
        def get_route_handler(self) -> Any:
            handler = super().get_route_handler()
            wants_json = self.body_field is not None

            async def strict_json_handler(request: Request) -> Any:
                if wants_json:
                    ctype = request.headers.get("content-type", "")
                    if not _JSON_TYPE.fullmatch(ctype.split(";", 1)[0].strip().lower()):
                        raise _http_error(415, f"the body must be JSON (Content-Type: application/json), got "
                                               f"Content-Type {_safe_text(repr(ctype), 80) if ctype else 'none'}")
                return await handler(StrictJSONRequest(request.scope, request.receive))

            return strict_json_handler

    return StrictJSONRoute


def _metrics_for(rec: Recommender | Replica) -> Any:
    """The server's metrics, or None when prometheus-client is not installed (then
    GET /metrics says how to get it)."""
    from .prometheus import ServerMetrics  # noqa: PLC0415

    try:
        if isinstance(rec, Replica):
            return ServerMetrics(lambda: rec.model, replica=rec)
        return ServerMetrics(lambda: rec)
    except ImportError:
        return None


def create_app(rec: Recommender | Replica, *, publisher: Any = None, forward: Any = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, max_k: int = DEFAULT_MAX_K,
               max_events: int = DEFAULT_MAX_EVENTS, partition: tuple[int, int] | None = None) -> Any:
    """A FastAPI app serving `rec` (a model that learns from POST /feedback, or a
    :class:`~rtrec_native.Replica`, which needs `forward`). `publisher` (optional) is closed
    on shutdown, which writes the last delta. `forward` (a
    :class:`~rtrec_native.stream.Producer`) receives the feedback a replica cannot learn.
    `partition` ``(K, P)``: `rec` holds the users of partition P of K only (see
    :func:`~rtrec_native.stream.partition_of`); a query for another partition's user is
    answered 421 naming the partition that holds it."""
    _import_fastapi()
    from fastapi import FastAPI, HTTPException, Query, Request  # noqa: PLC0415
    from fastapi.exceptions import RequestValidationError  # noqa: PLC0415
    from fastapi.responses import JSONResponse, Response  # noqa: PLC0415

    replica = rec if isinstance(rec, Replica) else None
    if replica is not None and forward is None:
        raise ValueError("a Replica cannot learn from POST /feedback: give forward=Producer(...)")
    if replica is not None and publisher is not None:
        raise ValueError("a Replica publishes nothing: it follows a trainer's publisher")
    metrics = _metrics_for(rec)

    def model() -> Recommender:
        """The model answering now (a replica replaces its copy when it reloads a snapshot)."""
        return replica.model if replica is not None else rec
    from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr  # noqa: PLC0415
    from starlette.exceptions import HTTPException as StarletteHTTPException  # noqa: PLC0415

    Id = StrictInt | StrictStr
    # Non-finite labels and weights never reach the model (the JSON parser refuses them first).
    Number = StrictInt | Annotated[StrictFloat, Field(allow_inf_nan=False)]

    class Event(BaseModel):
        model_config = ConfigDict(extra="forbid")
        user: Id
        item: Id
        label: Number | None = None
        weight: Number | None = None

    class Feedback(BaseModel):
        model_config = ConfigDict(extra="forbid")
        events: list[Event] = Field(min_length=1, max_length=max_events)

    class Features(BaseModel):
        model_config = ConfigDict(extra="forbid")
        ids: list[Id] = Field(min_length=1, max_length=max_events)
        features: list[list[StrictStr]] = Field(min_length=1, max_length=max_events)

    app = FastAPI(title="rtrec_native", version="1")
    app.router.route_class = _strict_json_route()
    if publisher is not None:
        app.router.on_shutdown.append(publisher.close)

    app.add_middleware(_BodyLimit, max_body_bytes=max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Our own details quote IDs with repr(), but a detail must never be what breaks the reply.
        return JSONResponse({"detail": _json_safe(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    def unprocessable(exc: Exception) -> HTTPException:
        return HTTPException(status_code=422, detail=str(exc))

    def user_id(text: str, side: str = "user") -> int | str:
        """Query strings are text: unless the model's IDs on that side are strings, an ID
        written in ASCII digits is an int (int() would also take " 7", "1_000" and other
        scripts' digits, and answer for a user the client did not name). Any other text stays
        a str, which the core's ID-kind rule refuses for an integer-ID model (a 422)."""
        kind = model().user_id_kind if side == "user" else model().item_id_kind
        if kind != "str" and _INT_TEXT.fullmatch(text):
            return int(text)
        return text

    # Events acknowledged by POST /feedback since the app started, for /stats: the model's
    # "updates" counts gradient steps (one per BPR negative, none for a BPR non-positive),
    # not events. Endpoints run in a thread pool, hence the lock.
    applied_lock = threading.Lock()
    applied = [0]

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
        if forward is not None:
            return forward_feedback(events, labels, weights)
        began = time.perf_counter()
        try:
            rec.update([e.user for e in events], [e.item for e in events], labels, weights)
        except (ValueError, TypeError) as exc:  # validated whole before anything is applied
            raise unprocessable(exc) from exc
        if metrics is not None:
            metrics.update_seconds.observe(time.perf_counter() - began)
            metrics.learned(len(events))
        with applied_lock:
            applied[0] += len(events)
        return {"applied": len(events)}

    def forward_feedback(events: list, labels: list | None, weights: list) -> Any:
        """A replica's feedback goes to the trainer's stream, every event or none (one
        pipelined write); the trainer checks it as it checks any producer's."""
        try:
            entries = [forward.fields(e.user, e.item, None if labels is None else labels[k], weights[k])
                       for k, e in enumerate(events)]
        except (ValueError, TypeError) as exc:
            raise unprocessable(exc) from exc
        try:
            forward.send_fields(entries)
        except Exception as exc:  # Redis unreachable: the client should retry
            raise HTTPException(status_code=503, detail=f"cannot forward feedback to the stream: {exc}") from exc
        if metrics is not None:
            metrics.forwarded(len(events))
        with applied_lock:
            applied[0] += len(events)
        return JSONResponse({"forwarded": len(events)}, status_code=202)

    def set_features(body: Features, on_items: bool) -> dict[str, int]:
        if replica is not None:
            raise HTTPException(status_code=409, detail="this server is a replica: set features on the trainer")
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

    def named(items: list[Any]) -> dict[str, Any]:
        """{"names": [...]} aligned with the items (null where unknown) when the model has item names."""
        current = model()
        if not items or current.stats()["item_names"] == 0:
            return {}
        return {"names": current.item_names(items)}

    def own_user(uid: Any) -> None:
        """421 for a user another partition holds (this model knows nothing of them)."""
        if partition is None:
            return
        from .stream.partitions import partition_of  # noqa: PLC0415

        k, p = partition
        owner = int(partition_of(uid, k)[0])
        if owner != p:
            raise HTTPException(status_code=421, detail=f"user {uid!r} belongs to partition {owner} of {k}, not "
                                f"{p}: ask the replica of partition {owner}")

    add_retrieval_routes(app, rec=rec, replica=replica, forward=forward, metrics=metrics, max_k=max_k,
                         max_events=max_events, parse_id=user_id, unprocessable=unprocessable,
                         finite_or_none=finite_or_none, named=named, own_user=own_user)

    @app.get("/explain")
    def explain(user: str = Query(..., min_length=1, max_length=512),
                item: str = Query(..., min_length=1, max_length=512), n: int = Query(3, ge=1, le=max_k)) -> Any:
        uid, iid = user_id(user), user_id(item, "item")
        own_user(uid)
        try:
            reasons = rec.explain(uid, iid, n=n)
        except KeyError as exc:
            raise HTTPException(status_code=404, detail=str(exc.args[0]) if exc.args else "not found") from exc
        except (ValueError, TypeError) as exc:
            raise unprocessable(exc) from exc
        return {"user": uid, "item": iid, "reasons": reasons}

    @app.get("/healthz")
    def healthz() -> Any:
        # Serving works even when publishing fails, but then acknowledged feedback is not
        # being persisted: say so, with 503, so that orchestration notices.
        if publisher is not None and publisher.last_error is not None:
            return JSONResponse({"status": "degraded", "publisher_error": str(publisher.last_error)}, status_code=503)
        if replica is not None and replica.last_error is not None:
            return JSONResponse({"status": "degraded", "replica_error": _safe_text(str(replica.last_error))},
                                status_code=503)
        return {"status": "ok"}

    # Not in the OpenAPI schema: a Prometheus scrape target, text not JSON, for scrapers not clients.
    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Any:
        if metrics is None:
            raise HTTPException(status_code=501, detail="GET /metrics needs prometheus-client: "
                                                        + install_hint("serve"))
        from .prometheus import CONTENT_TYPE  # noqa: PLC0415

        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/stats")
    def stats() -> dict[str, Any]:
        out = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in rec.stats().items()}
        # acknowledged by POST /feedback since the start (forwarded to the stream, for a replica)
        out["events_forwarded" if forward is not None else "events_applied"] = applied[0]
        if publisher is not None:
            out["publisher"] = {"deltas_written": publisher.deltas_written,
                                "snapshots_written": publisher.snapshots_written, "errors": publisher.errors,
                                "last_error": None if publisher.last_error is None else str(publisher.last_error)}
        return out

    return app
