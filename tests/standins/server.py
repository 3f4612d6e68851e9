"""Run a WSGI app on 127.0.0.1 in a background thread, over HTTP or HTTPS with a throwaway CA."""

from __future__ import annotations

import ssl
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

WsgiApp = Callable[..., Any]


class _Quiet(WSGIRequestHandler):
    def log_request(self, *_args: object, **_kwargs: object) -> None:
        pass


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
        self.port = self._server.server_port
        self.url = f"{'https' if ca else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name=f"standin-{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
