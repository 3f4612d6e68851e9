"""Run a WSGI app on 127.0.0.1 in a background thread, over HTTP or HTTPS with a throwaway CA.

Fault knob: ``Server.dribble(seconds, body_only=False)`` makes the service send its answer one byte
every ``seconds`` (status line and headers too, or only the body), as a slow or hostile service would;
``dribble(0)`` turns it off. A dribbling answer stops when the server stops.

Fault knob for every service: ``Server.fail_next(count, fault)`` answers the next ``count`` requests (whose
path contains ``fault.path``) with ``fault`` instead of the service: a status with a body and headers (429
with or without ``Retry-After``, 5xx, an HTML page, truncated JSON, a wrong content type, or an echo of the
request, credentials and all, as a hostile service might), after ``delay`` seconds, or a connection reset.
``Server.throttle(fraction, retry_after)`` answers that fraction of all requests, at random, with 429.
"""

from __future__ import annotations

import random
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

WsgiApp = Callable[..., Any]


class _Dribble:
    """A write-only stream that passes bytes on one at a time, ``delay`` seconds apart."""

    def __init__(self, target: Any, delay: float, body_only: bool, stopping: threading.Event) -> None:
        self._target = target
        self._delay = delay
        self._in_body = not body_only
        self._seen = b""
        self._stopping = stopping

    def write(self, data: bytes) -> int:
        for index in range(len(data)):
            byte = data[index : index + 1]
            if not self._in_body:
                self._seen = (self._seen + byte)[-4:]
                self._in_body = self._seen == b"\r\n\r\n"
                self._target.write(byte)
                continue
            if self._stopping.wait(self._delay):
                raise ConnectionAbortedError("server stopping")
            self._target.write(byte)
            self._target.flush()
        return len(data)

    def flush(self) -> None:
        self._target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


@dataclass
class Fault:
    """One injected answer; ``body`` may hold ``{request}``, replaced by the request (headers and body) as sent."""

    status: int = 503
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/html"
    delay: float = 0.0
    #: close the connection with a TCP reset instead of answering
    reset: bool = False
    #: only requests whose path contains this
    path: str = ""


class _Faults:
    """WSGI middleware: the next queued fault whose path matches answers instead of the app."""

    def __init__(self, app: WsgiApp, stopping: threading.Event) -> None:
        self.app = app
        self.queue: list[Fault] = []
        self.injected = 0
        self.requests = 0
        #: (fraction of requests answered 429 at random, Retry-After or "" for none, only paths holding this)
        self.throttling: tuple[float, str, str] = (0.0, "", "")
        self._lock = threading.Lock()
        self._stopping = stopping

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)  # the service's own settings (clock_offset, ...) show through

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        with self._lock:
            self.requests += 1
            fault = next((f for f in self.queue if f.path in path), None)
            if fault is not None:
                self.queue.remove(fault)
                self.injected += 1
            elif self.throttling[0] and self.throttling[2] in path and random.random() < self.throttling[0]:  # noqa: S311 - not cryptographic
                self.injected += 1
                retry = {"Retry-After": self.throttling[1]} if self.throttling[1] else {}
                fault = Fault(429, '{"error": {"code": "Throttled"}}', retry, "application/json")
        if fault is None:
            return self.app(environ, start_response)
        if fault.delay:
            self._stopping.wait(fault.delay)
        if fault.reset:
            import socket
            import struct

            sock = environ.get("werkzeug.socket")
            if sock is not None:  # the handler's files keep the socket open: shut it down under them
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
            raise ConnectionResetError("fault: reset")
        body = fault.body
        if "{request}" in body:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            sent = environ["wsgi.input"].read(length).decode("utf-8", "replace") if length else ""
            heads = "; ".join(f"{k[5:]}={v}" for k, v in environ.items() if k.startswith("HTTP_"))
            body = body.replace("{request}", f"{environ.get('QUERY_STRING', '')} {heads} {sent}")
        data = body.encode("utf-8")
        headers = {"Content-Type": fault.content_type, "Content-Length": str(len(data)), **fault.headers}
        start_response(f"{fault.status} Injected", list(headers.items()))
        return [data]


class _Quiet(WSGIRequestHandler):
    def log_request(self, *_args: object, **_kwargs: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        knob = getattr(self.server, "dribble_knob", None)
        if knob and knob[0] > 0:
            self.wfile = _Dribble(self.wfile, knob[0], knob[1], self.server.stopping)  # type: ignore[attr-defined]

    def log_error(self, *_args: Any) -> None:
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header, from the app's own clock when it runs off (``clock_offset`` seconds)."""
        offset = float(getattr(getattr(self.server, "app", None), "clock_offset", 0.0) or 0.0)
        return super().date_time_string((time.time() if timestamp is None else timestamp) + offset)


class LocalCA:
    """A throwaway certificate authority (trustme) and a bundle file clients can trust."""

    def __init__(self, directory: str | None = None) -> None:
        import trustme

        self._ca = trustme.CA()
        self._cert = self._ca.issue_cert("127.0.0.1", "localhost")
        self.dir = Path(directory or tempfile.mkdtemp(prefix="oidc-ca-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.bundle = str(self.dir / "ca.pem")
        self._ca.cert_pem.write_to_path(self.bundle)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._cert.configure_cert(ctx)
        return ctx


class Server:
    """One WSGI app listening on 127.0.0.1:<free port>; stop() shuts it down."""

    def __init__(self, app: WsgiApp, *, ca: LocalCA | None = None, port: int = 0) -> None:
        stopping = threading.Event()
        self.faults = _Faults(app, stopping)
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1",
            port,
            self.faults,
            threaded=True,
            request_handler=_Quiet,
            ssl_context=ca.server_context() if ca else None,
        )
        self._server.dribble_knob = (0.0, False)  # type: ignore[attr-defined]
        self._server.stopping = stopping  # type: ignore[attr-defined]
        self.port = self._server.server_port
        self.url = f"{'https' if ca else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name=f"standin-{self.port}", daemon=True
        )
        self._thread.start()

    def dribble(self, seconds: float, *, body_only: bool = False) -> None:
        """Send each answer one byte every ``seconds`` (0: at once); ``body_only`` sends headers at once."""
        self._server.dribble_knob = (seconds, body_only)  # type: ignore[attr-defined]

    def throttle(self, fraction: float, retry_after: str = "", path: str = "") -> None:
        """Answer ``fraction`` of the requests (whose path holds ``path``) from now on with 429
        (``Retry-After: retry_after`` when given)."""
        self.faults.throttling = (fraction, retry_after, path)

    def fail_next(self, count: int, fault: Fault | None = None) -> None:
        """Answer the next ``count`` matching requests with ``fault`` (default: 503 with an HTML page)."""
        fault = fault or Fault(body="<html><body><h1>503 Service Unavailable</h1></body></html>")
        with self.faults._lock:
            self.faults.queue.extend(Fault(**vars(fault)) for _ in range(count))

    def stop(self) -> None:
        self._server.stopping.set()  # type: ignore[attr-defined]
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
