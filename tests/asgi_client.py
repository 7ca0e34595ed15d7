"""An in-process ASGI client for the HTTP tests: drives the app as a server would, with no
network and no extra dependency."""

from __future__ import annotations

import asyncio
from typing import Any


class Asgi:
    """Drives the app the way an ASGI server does, in one event loop, and fails the test if
    the app raises or leaves the response incomplete (a server would drop the connection)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()

    def request(self, method: str, path: str, query: bytes = b"", body: bytes = b"",
                headers: list[tuple[bytes, bytes]] | None = None) -> tuple[int, dict[str, str], bytes]:
        if headers is None:
            headers = [(b"content-type", b"application/json")]
        if body and not any(k == b"content-length" for k, _ in headers):
            headers = [*headers, (b"content-length", str(len(body)).encode())]
        elif method == "POST" and not any(k == b"content-length" for k, _ in headers):
            headers = [*headers, (b"content-length", b"0")]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
                 "root_path": "", "headers": [(b"host", b"test"), *headers], "client": ("127.0.0.1", 5000),
                 "server": ("127.0.0.1", 80)}
        messages: list[dict] = []
        delivered = False

        async def receive() -> dict:
            nonlocal delivered
            if delivered:
                await asyncio.sleep(3600)  # a client that keeps the connection open
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict) -> None:
            messages.append(message)

        self.loop.run_until_complete(asyncio.wait_for(self.app(scope, receive, send), 60))
        assert messages and messages[0]["type"] == "http.response.start", messages
        assert not messages[-1].get("more_body", False), "response not finished"
        out_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in messages[0].get("headers", [])}
        return messages[0]["status"], out_headers, b"".join(m.get("body", b"") for m in messages[1:])
