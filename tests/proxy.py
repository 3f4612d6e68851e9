"""A real authenticating HTTP proxy (Debian's tinyproxy) and a network namespace the task can leave only through it.

Method: the task runs in a network namespace of its own (``ip netns add``), whose only links are its own
loopback and one end of a veth pair; the other end, in the host's namespace, carries a private /30
(``10.213.<n>.1``) on which tinyproxy listens, and nothing else. The stand-ins listen on the host's
127.0.0.1 as everywhere in this suite. Inside the namespace 127.0.0.1 is the namespace's own loopback, where
nothing listens, and there is no route anywhere but the /30: a direct request to a stand-in is refused
(``test_a_direct_request_fails``), and one through the proxy reaches it, because the proxy runs in the
host's namespace. Everything stays on this machine; the /30 link exists only between the two namespaces.

tinyproxy requires Basic authentication (``BasicAuth``), logs every request it serves (to prove which went
through it) and is started in the foreground and stopped by its PID. When it is missing, the session
installs it (``apt-get install tinyproxy``, root on Debian); the tests skip, saying why, only when that
is impossible. They also skip when the machine refuses network namespaces (not root).
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

INSTALL_TIMEOUT = 600


def ensure_tinyproxy() -> tuple[str, str]:
    """(path to tinyproxy, "") or ("", why it is not available)."""
    found = shutil.which("tinyproxy") or ("/usr/bin/tinyproxy" if os.path.exists("/usr/bin/tinyproxy") else "")
    if found:
        return found, ""
    if not shutil.which("apt-get") or not (hasattr(os, "geteuid") and os.geteuid() == 0):
        return "", "tinyproxy is not installed and cannot be installed here (needs apt-get as root)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "tinyproxy"]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
        if done.returncode != 0:
            return "", f"installing tinyproxy failed: {' '.join(argv)}: {done.stderr.strip()[-300:]}"
    found = shutil.which("tinyproxy") or ""
    return found, "" if found else "apt-get installed tinyproxy but it is not on PATH"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


class Namespace:
    """A network namespace joined to the host by one veth pair on a private /30."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 10000}{secrets.token_hex(2)}"
        self.name = f"oidcp-{tag}"
        self.host_if, self.ns_if = f"oph{tag}", f"opn{tag}"
        used = _ip("-o", "addr", check=False).stdout
        subnet = next(n for n in random.sample(range(1, 250), 249) if f"10.213.{n}." not in used)
        self.host_ip, self.ns_ip = f"10.213.{subnet}.1", f"10.213.{subnet}.2"
        self._up = False

    def start(self) -> Namespace:
        _ip("netns", "add", self.name)
        self._up = True
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _ip("link", "set", self.ns_if, "netns", self.name)
        _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        _ip("-n", self.name, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
        _ip("-n", self.name, "link", "set", self.ns_if, "up")
        _ip("-n", self.name, "link", "set", "lo", "up")
        return self

    def argv(self, *command: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *command]

    def stop(self) -> None:
        if self._up:
            _ip("link", "del", self.host_if, check=False)  # deletes its peer too
            _ip("netns", "del", self.name, check=False)
            self._up = False


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class TinyProxy:
    """tinyproxy on ``host``, with Basic authentication, started in the foreground and stopped by its PID."""

    def __init__(self, binary: str, host: str) -> None:
        self.binary, self.host = binary, host
        self.user = "agent-proxy-user"
        self.password = f"pw-{secrets.token_hex(12)}"  # tinyproxy's BasicAuth takes letters, digits, '-', '.', '_'
        self.dir = Path(tempfile.mkdtemp(prefix="oidc-tinyproxy-"))
        self.log = self.dir / "tinyproxy.log"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> TinyProxy:
        self.port = _free_port(self.host)
        config = self.dir / "tinyproxy.conf"
        config.write_text(
            f"Port {self.port}\nListen {self.host}\nTimeout 60\nMaxClients 100\nLogLevel Info\n"
            f'LogFile "{self.log}"\nBasicAuth {self.user} {self.password}\n'
            # no ConnectPort line: CONNECT to any port (the stand-ins' ports are random); no Allow line: any client
            + ("User root\nGroup root\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""),
            encoding="utf-8",
        )
        errors = self.dir / "stderr"
        with open(errors, "wb") as sink:
            self._proc = subprocess.Popen(
                [self.binary, "-d", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=sink
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = errors.read_text(errors="replace").strip()
                raise RuntimeError(f"tinyproxy exited with {self._proc.returncode}: {err}")
            with socket.socket() as sock:
                if sock.connect_ex((self.host, self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("tinyproxy did not start listening within 20 s")

    def requests_seen(self) -> str:
        """The proxy's log: one line per request it served, e.g. ``Request (file descriptor 7): CONNECT ...``."""
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
