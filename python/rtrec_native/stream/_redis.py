"""Connecting to Redis: the one place that imports the ``redis`` client (lazily, so that
``import rtrec_native`` never needs it) and turns its errors into the library's."""

from __future__ import annotations

from typing import Any

from .._extras import install_hint

__all__ = ["RedisUnavailable", "connect", "redis_errors", "stream_ids"]


class RedisUnavailable(ConnectionError):
    """Redis could not be reached (or stopped answering). A ``ConnectionError``, so an
    ``OSError``: the command line prints it as one line."""


def _client_module() -> Any:
    try:
        import redis  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError("streaming through Redis needs the redis client: " + install_hint("stream")) \
            from exc
    return redis


def redis_errors() -> tuple[type[BaseException], ...]:
    """The client's exception classes for a lost or refused connection."""
    redis = _client_module()
    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def connect(target: Any, *, check: bool = True) -> Any:
    """A ``redis.Redis`` client for ``target``: a URL such as ``redis://127.0.0.1:6379/0``
    or an existing client (returned as it is). Replies stay bytes (the stream values are
    decoded where they are checked). With ``check``, a PING proves Redis answers now;
    an unreachable server raises :class:`RedisUnavailable` naming the URL."""
    redis = _client_module()
    if isinstance(target, redis.Redis):
        return target
    if not isinstance(target, str):
        raise TypeError(f"redis: expected a URL such as 'redis://127.0.0.1:6379/0' or a redis.Redis client, "
                        f"got {type(target).__name__}")
    try:
        client = redis.Redis.from_url(target, socket_connect_timeout=5, health_check_interval=30)
    except ValueError as exc:
        raise ValueError(f"not a Redis URL: {target!r} ({exc}); expected e.g. redis://127.0.0.1:6379/0") from None
    if check:
        try:
            client.ping()
        except redis.exceptions.RedisError as exc:
            raise RedisUnavailable(f"cannot reach Redis at {target}: {exc}") from None
    return client


def stream_ids(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry ID ("1700000000000-3") as (milliseconds, sequence), for ordering."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)
