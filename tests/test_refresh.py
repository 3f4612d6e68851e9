"""The helpers' cache: when to refresh, the private file, and one refresh shared by concurrent processes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from oidc_credentials import refresh
from oidc_credentials.text import parse_iso_utc

from tests.harness import ROOT


@pytest.mark.parametrize(
    ("lifetime", "margin"),
    [(3600, 960), (43200, 960), (1920, 960), (1800, 225), (900, 112.5), (20, 2.5), (8, 2)],
)
def test_margin(lifetime: int, margin: float) -> None:
    assert refresh.margin(lifetime) == margin


def test_long_lived_credentials_are_handed_out_with_more_than_botocores_15_minutes() -> None:
    entry = refresh.Entry({}, expires_at=1000 + 3600, issued_at=1000)
    assert entry.fresh(1000 + 3600 - 961) and not entry.fresh(1000 + 3600 - 960)
    # so botocore (advisory refresh under 15 minutes left) keeps what the helper hands out in memory
    assert 3600 - 2640 > 15 * 60


def test_short_lived_credentials_are_used_for_most_of_their_life() -> None:
    entry = refresh.Entry({}, expires_at=20, issued_at=0)
    assert entry.fresh(17.4) and not entry.fresh(17.5)


def test_entry_from_expiry_moves_onto_the_local_clock_and_refuses_skew() -> None:
    entry = refresh.entry_from_expiry({"a": 1}, expires_at=5000, now=1010, server_time=1000)
    assert (entry.expires_at, entry.issued_at) == (5010, 1010)
    with pytest.raises(refresh.CacheError, match="about 400 s ahead"):
        refresh.entry_from_expiry({}, expires_at=5000, now=1400, server_time=1000)
    with pytest.raises(refresh.CacheError, match="already expired by this agent's clock"):
        refresh.entry_from_expiry({}, expires_at=5000, now=5001)


def test_write_is_private_and_read_round_trips(tmp_path: Path) -> None:
    path = str(tmp_path / "cache.json")
    refresh.write(path, refresh.Entry({"AccessKeyId": "ASIA"}, 200.0, 100.0))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    got = refresh.read(path)
    assert got is not None and got.answer == {"AccessKeyId": "ASIA"} and (got.expires_at, got.issued_at) == (200, 100)
    assert refresh.read(str(tmp_path / "absent.json")) is None
    assert [p.name for p in tmp_path.iterdir()] == ["cache.json"]  # no temporary file left behind


def test_write_refuses_a_symbolic_link_and_never_follows_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "cache.json"
    link.symlink_to(victim)
    with pytest.raises(refresh.CacheError, match="symbolic link"):
        refresh.write(str(link), refresh.Entry({}, 2.0, 1.0))
    assert victim.read_text() == "keep" and link.is_symlink()


@pytest.mark.parametrize(
    "body", ["", "not json", "[]", '{"format": 2, "answer": {}}', '{"format": 1, "answer": {}, "expires_at": "x"}']
)
def test_corrupted_caches_are_refused(tmp_path: Path, body: str) -> None:
    path = tmp_path / "cache.json"
    path.write_text(body)
    path.chmod(0o600)
    with pytest.raises(refresh.CacheError, match="corrupted"):
        refresh.read(str(path))


def test_get_refreshes_only_when_stale(tmp_path: Path) -> None:
    cache, lock = str(tmp_path / "cache.json"), str(tmp_path / "cache.lock")
    calls: list[float] = []

    def fetch() -> refresh.Entry:
        calls.append(now[0])
        return refresh.Entry({"n": len(calls)}, now[0] + 20, now[0])

    now = [0.0]
    assert refresh.get(cache, lock, fetch, clock=lambda: now[0])[1] is True
    now[0] = 17.0
    entry, refreshed = refresh.get(cache, lock, fetch, clock=lambda: now[0])
    assert not refreshed and entry.answer == {"n": 1}
    now[0] = 17.6
    entry, refreshed = refresh.get(cache, lock, fetch, clock=lambda: now[0])
    assert refreshed and entry.answer == {"n": 2} and calls == [0.0, 17.6]


CONTENDER = """
import os, sys, time
sys.path.insert(0, {task!r})
from oidc_credentials import refresh
folder = sys.argv[1]

def fetch():
    with open(os.path.join(folder, "fetches"), "a") as f:
        f.write(str(os.getpid()) + "\\n")
    time.sleep(0.5)  # a slow exchange: the others must wait for it, not start their own
    return refresh.Entry({{"pid": os.getpid()}}, time.time() + 60, time.time())

entry, _ = refresh.get(os.path.join(folder, "cache.json"), os.path.join(folder, "cache.lock"), fetch)
print(entry.answer["pid"])
"""


def test_ten_processes_at_once_share_one_refresh(tmp_path: Path) -> None:
    code = CONTENDER.format(task=str(ROOT / "task"))
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(10)
    ]
    answers = {proc.communicate(timeout=120)[0].strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    fetches = (tmp_path / "fetches").read_text().split()
    assert len(fetches) == 1 and answers == set(fetches)
    assert json.loads((tmp_path / "cache.json").read_text())["answer"]["pid"] == int(fetches[0])


def test_lock_times_out_with_one_line(tmp_path: Path) -> None:
    lock = str(tmp_path / "cache.lock")
    with refresh.locked(lock), pytest.raises(refresh.CacheError, match="held the lock"):
        holder = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys; sys.path.insert(0, {str(ROOT / 'task')!r}); from oidc_credentials import refresh\n"
                f"with refresh.locked({lock!r}, timeout=0.3): pass",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert holder.returncode == 1
        raise refresh.CacheError(holder.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T04:23:21Z", 1795321401.0),
        ("2026-11-22T04:23:21.809691Z", 1795321401.809691),
        ("2026-11-22T04:23:21.8096912Z", 1795321401.809691),
        ("2026-11-22T05:23:21+01:00", 1795321401.0),
        ("nonsense", 0.0),
    ],
)
def test_parse_iso_utc(text: str, expected: float) -> None:
    assert parse_iso_utc(text) == pytest.approx(expected)
