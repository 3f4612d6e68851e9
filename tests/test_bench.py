"""The benchmark framework's own parts: verdicts, the table and JSON, the proxy, the keep-alive server.

No timing is asserted here (figures live in bench/); these check that the suite cannot report a
target met that was not, cannot skip a case silently, and measures what it says it measures.
"""

from __future__ import annotations

import json
import socket
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import requests

import bench.__main__ as bench_main
from bench import report
from bench.helper import helper_command
from bench.keepalive import KeepAliveServer
from bench.proxy import ConnectProxy
from bench.suite import Case, RunFailed, interleaved, slope, table, timed_run, write_json
from tests.standins.server import LocalCA, Server


def test_verdicts_follow_the_target_kind() -> None:
    ratio = Case("r", [0.1, 0.2, 0.3], "base", [0.4, 0.4, 0.5], target=0.5)
    assert ratio.median == pytest.approx(200) and ratio.baseline == pytest.approx(400)
    assert ratio.ratio == pytest.approx(0.5) and ratio.met is True
    assert Case("r", [0.3], "base", [0.4], target=0.5).met is False
    assert Case("m", [0.151], target=150, target_on="median").met is False
    extra = Case("e", [2.0], "second", [0.4], target=1500, target_on="extra")
    assert extra.measured == pytest.approx(1600) and extra.met is False
    assert Case("n", [0.1], target_on="none").met is None
    failed = Case("f", error="boom", target=1.0)
    assert failed.met is False and failed.median is None


def test_json_and_table_carry_every_field(tmp_path: Path) -> None:
    cases = [Case("a", [0.1, 0.3], "b", [0.2, 0.2], target=1.2), Case("broken", error="no helper", target=50)]
    out = tmp_path / "r.json"
    write_json(cases, out)
    body = json.loads(out.read_text())
    first = body["cases"][0]
    for key in ("case", "median", "min", "max", "runs", "baseline", "ratio", "target", "met"):
        assert key in first
    assert (first["median"], first["min"], first["max"], first["runs"], first["ratio"]) == (200.0, 100.0, 300.0, 2, 1.0)
    assert body["cases"][1]["met"] is False and body["cases"][1]["error"] == "no helper"
    text = table(cases)
    assert "FAILED TO RUN" in text and "<= 1.2x" in text
    md = report.markdown(body)
    assert "**could not run**" in md and "| a | 200 ms |" in md


def test_interleaving_alternates_subject_and_baseline() -> None:
    order: list[str] = []
    interleaved(2, a=lambda: order.append("a") or 0.0, b=lambda: order.append("b") or 0.0)
    assert order == ["a", "b", "a", "b", "a", "b"]  # one warm-up each, then alternating


def test_slope_is_the_cost_of_one_more() -> None:
    assert slope([(1, 12.0), (10, 30.0), (50, 110.0)])[0] == pytest.approx(2.0)


def test_a_failing_run_raises_instead_of_being_timed() -> None:
    with pytest.raises(RunFailed):
        timed_run([sys.executable, "-c", "print('##vso[task.complete result=Failed;]no')"], {})
    with pytest.raises(RunFailed):
        timed_run([sys.executable, "-c", "raise SystemExit(3)"], {})
    with pytest.raises(RunFailed):
        timed_run([sys.executable, "-c", "print('hello')"], {}, expect="AWS_SESSION_TOKEN")


def test_a_case_that_cannot_run_fails_the_suite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def ok() -> list[Case]:
        return [Case("fine", [0.01], "base", [0.02], target=1.0)]

    def broken() -> list[Case]:
        raise RunFailed("the thing under test does not exist yet")

    monkeypatch.setitem(sys.modules, "bench_fake_ok", types.SimpleNamespace(run=ok))
    monkeypatch.setitem(sys.modules, "bench_fake_broken", types.SimpleNamespace(run=broken))
    monkeypatch.setattr(bench_main, "BENCHES", {"ok": "bench_fake_ok", "broken": "bench_fake_broken"})
    monkeypatch.setattr(bench_main, "RESULTS", tmp_path / "results.json")
    monkeypatch.setattr(bench_main, "CHART", tmp_path / "results.png")
    assert bench_main.main(["ok", "broken"]) == 1
    body = json.loads((tmp_path / "results-partial.json").read_text())
    assert [c["met"] for c in body["cases"]] == [True, False]
    assert "does not exist yet" in body["cases"][1]["error"]
    assert (tmp_path / "results-partial.png").stat().st_size > 0


def test_a_module_with_only_main_is_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    legacy = types.SimpleNamespace(main=lambda: print("verify: 20000 /s"))
    monkeypatch.setitem(sys.modules, "bench_fake_legacy", legacy)
    monkeypatch.setattr(bench_main, "BENCHES", {"legacy": "bench_fake_legacy"})
    monkeypatch.setattr(bench_main, "RESULTS", tmp_path / "results.json")
    monkeypatch.setattr(bench_main, "CHART", tmp_path / "results.png")
    assert bench_main.main(["legacy"]) == 0
    case = json.loads((tmp_path / "results-partial.json").read_text())["cases"][0]
    assert case["detail"]["output"] == ["verify: 20000 /s"] and case["met"] is None


def _echo_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = json.dumps({"port": environ["REMOTE_PORT"], "path": environ["PATH_INFO"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def test_proxy_tunnels_to_loopback_only(tmp_path: Path) -> None:
    ca = LocalCA(str(tmp_path / "ca"))
    proxy = ConnectProxy()
    try:
        with Server(_echo_app, ca=ca) as server:
            resp = requests.get(f"{server.url}/x", proxies={"https": proxy.url}, verify=ca.bundle, timeout=10)
            assert resp.json()["path"] == "/x" and proxy.tunnels == 1
        for request, status in (
            (b"CONNECT 10.1.2.3:443 HTTP/1.1\r\n\r\n", b"403"),
            (b"GET / HTTP/1.1\r\n\r\n", b"405"),
        ):
            with socket.create_connection(("127.0.0.1", int(proxy.url.rsplit(":", 1)[1])), timeout=10) as sock:
                sock.sendall(request)
                assert sock.recv(100).split()[1] == status
        assert proxy.tunnels == 1
    finally:
        proxy.stop()


def test_keepalive_server_keeps_the_connection(tmp_path: Path) -> None:
    ca = LocalCA(str(tmp_path / "ca"))
    server = KeepAliveServer(_echo_app, ca=ca)
    try:
        with requests.Session() as session:
            ports = {session.get(f"{server.url}/s/{i}", verify=ca.bundle, timeout=10).json()["port"] for i in range(5)}
        assert len(ports) == 1
    finally:
        server.stop()


def test_helper_command_is_read_like_botocore(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(
        '[profile oidc]\ncredential_process = "/usr/bin/python3" "/t/entry.py" helper aws --profile \'x y\'\n'
    )
    argv = helper_command({"AWS_CONFIG_FILE": str(config), "AWS_PROFILE": "oidc"})
    assert argv == ["/usr/bin/python3", "/t/entry.py", "helper", "aws", "--profile", "x y"]
    with pytest.raises(RunFailed, match="does not exist yet"):
        helper_command({})
