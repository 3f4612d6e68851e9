"""Run a WSGI app on 127.0.0.1 in a background thread, over HTTP or HTTPS with a throwaway CA.

Fault knob: ``Server.dribble(seconds, body_only=False)`` makes the service send its answer one byte
every ``seconds`` (status line and headers too, or only the body), as a slow or hostile service would;
``dribble(0)`` turns it off. A dribbling answer stops when the server stops.
"""

from __future__ import annotations

import ssl
import tempfile
import threading
import time
from collections.abc import Callable
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
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1",
            port,
            app,
            threaded=True,
            request_handler=_Quiet,
            ssl_context=ca.server_context() if ca else None,
        )
        self._server.dribble_knob = (0.0, False)  # type: ignore[attr-defined]
        self._server.stopping = threading.Event()  # type: ignore[attr-defined]
        self.port = self._server.server_port
        self.url = f"{'https' if ca else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name=f"standin-{self.port}", daemon=True
        )
        self._thread.start()

    def dribble(self, seconds: float, *, body_only: bool = False) -> None:
        """Send each answer one byte every ``seconds`` (0: at once); ``body_only`` sends headers at once."""
        self._server.dribble_knob = (seconds, body_only)  # type: ignore[attr-defined]

    def stop(self) -> None:
        self._server.stopping.set()  # type: ignore[attr-defined]
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
