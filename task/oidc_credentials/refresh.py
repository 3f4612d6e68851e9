"""The credential helpers' cache: when to refresh, a private cache file, and one refresh at a time.

A helper runs once per SDK process start (every ``aws`` command of a script), so it hands out cached
credentials and asks Azure DevOps and the cloud again only when they are near expiry: one exchange per
credential lifetime, however many processes start. Concurrent helpers (``make -j``) take a file lock, and
the first one refreshes while the others wait and then read what it wrote.

When to refresh (:func:`margin`): botocore calls ``credential_process`` again whenever the credentials it
holds have less than 15 minutes left (its advisory refresh window). So credentials that live long enough
are refreshed 16 minutes before they expire: every set handed out has more than 15 minutes left, and a
long-lived SDK client keeps it in memory instead of starting the helper per call. Shorter lifetimes keep
the last eighth of their life as the margin.

The cache file holds secrets: it is written 0600, by rename (a reader never sees half a file), and read
only when it is a regular file of this user with no group or other permissions. Anything else (a
symbolic link, another owner, a corrupted body) is refused with one line: a cache that is not ours is
not used and not overwritten.

Standard library only: this module is on the helpers' warm path, which must start as fast as Python.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .errors import TaskError

FORMAT = 1
#: the files of a helper's folder (see helper_setup): its config, the cache, the lock, the opted-in token
HELPER_CONFIG = "helper.json"
CACHE = "cache.json"
LOCK = "cache.lock"
TOKEN_FILE = "access-token"  # noqa: S105 - a file name
GCP_OUTPUT = "gcp-output.json"
ACCESS_TOKEN_ENV = "SYSTEM_ACCESSTOKEN"  # noqa: S105 - a variable name
ENV_MAPPING = "SYSTEM_ACCESSTOKEN: $(System.AccessToken)"
#: botocore's advisory refresh window (15 min) plus a minute for the call that uses the credentials
LONG_MARGIN = 16 * 60
#: an SDK and an agent whose clocks differ more than this cannot use the credentials (SigV4 allows 5 min)
MAX_SKEW = 300.0
LOCK_TIMEOUT = 150.0


class CacheError(TaskError):
    """The cache file or lock cannot be used safely."""

    kind = "cache"


def margin(lifetime: float) -> float:
    """Seconds before expiry at which credentials of this lifetime are refreshed."""
    if lifetime >= 2 * LONG_MARGIN:
        return float(LONG_MARGIN)
    return max(2.0, lifetime / 8)


class Entry:
    """Cached credentials: the helper's answer fields, when they expire and when they were issued (local clock)."""

    __slots__ = ("answer", "expires_at", "issued_at")

    def __init__(self, answer: dict[str, Any], expires_at: float, issued_at: float) -> None:
        self.answer = answer
        self.expires_at = expires_at
        self.issued_at = issued_at

    def fresh(self, now: float) -> bool:
        """Still worth handing out: more than the refresh margin of its lifetime left."""
        return self.expires_at - now > margin(self.expires_at - self.issued_at)

    def to_json(self) -> str:
        return json.dumps(
            {"format": FORMAT, "answer": self.answer, "expires_at": self.expires_at, "issued_at": self.issued_at}
        )


def entry_from_expiry(answer: dict[str, Any], expires_at: float, now: float, server_time: float = 0.0) -> Entry:
    """An entry for credentials just issued; refuses a clock that the credentials cannot live with.

    ``expires_at`` is the expiry the service wrote (its clock); ``server_time`` is the time its answer was
    sent (the HTTP ``Date`` header, 0 when unknown). Both are moved onto this machine's clock.
    """
    skew = now - server_time if server_time else 0.0
    if abs(skew) > MAX_SKEW:
        direction = "ahead of" if skew > 0 else "behind"
        raise CacheError(
            f"this agent's clock is about {round(abs(skew) / 10) * 10} s {direction} the service's (more than {MAX_SKEW:.0f} s), so the "
            "credentials would look expired or be refused when used: fix the agent's time sync (NTP) and run again"
        )
    local_expiry = expires_at + skew
    if local_expiry <= now:
        raise CacheError(
            "the credentials just issued are already expired by this agent's clock: the clock is ahead of real time; "
            "fix the agent's time sync (NTP) and run again"
        )
    return Entry(answer, local_expiry, now)


def _describe(path: str, why: str) -> CacheError:
    return CacheError(f"refusing the credential cache {path}: {why}; delete it (the next call refreshes it)")


def check_private(path: str, st: os.stat_result) -> None:
    """Refuse a file that is not a regular file of this user, private to it."""
    if stat.S_ISLNK(st.st_mode):
        raise _describe(path, "it is a symbolic link")
    if not stat.S_ISREG(st.st_mode):
        raise _describe(path, "it is not a regular file")
    geteuid = getattr(os, "geteuid", None)
    if geteuid is not None:
        if st.st_uid != geteuid():
            raise _describe(path, f"it belongs to user id {st.st_uid}, not to this user ({geteuid()})")
        if st.st_mode & 0o077:
            raise _describe(path, f"its mode is {stat.S_IMODE(st.st_mode):04o}; it must be private (0600)")


def read_private(path: str) -> str | None:
    """The text of a private file of ours, None when it does not exist; refuses anything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _describe(path, exc.strerror or str(exc)) from exc
    check_private(path, st)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _describe(path, exc.strerror or str(exc)) from exc
    try:
        check_private(path, os.fstat(fd))  # the file opened is the file checked
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _describe(path, "it is corrupted (not UTF-8)") from exc


def read(path: str) -> Entry | None:
    """The cached entry, None when there is none yet."""
    text = read_private(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
        if data["format"] != FORMAT or not isinstance(data["answer"], dict):
            raise ValueError("format")
        return Entry(data["answer"], float(data["expires_at"]), float(data["issued_at"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise _describe(path, "it is corrupted (not a credential cache of this version)") from exc


def write(path: str, entry: Entry) -> None:
    """Replace the cache by rename: 0600, never through a symbolic link, never half-written."""
    write_text(path, entry.to_json())


def write_text(path: str, text: str) -> None:
    """Replace ``path`` with a private file (0600) holding ``text``: :func:`files.write_private`'s rules."""
    from .errors import TaskError
    from .files import write_private

    try:
        write_private(path, text, root=os.path.dirname(os.path.abspath(path)))
    except TaskError as exc:
        raise CacheError(f"could not write the credential cache {path}: {exc.message}") from exc


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def locked(path: str, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the exclusive lock file ``path`` (created 0600, never through a symbolic link)."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise CacheError(f"could not open the credential cache lock {path}: {exc.strerror or exc}") from exc
    try:
        check_private(path, os.fstat(fd))
        deadline = time.monotonic() + timeout
        while not _try_lock(fd):
            if time.monotonic() > deadline:
                raise CacheError(
                    f"another credential helper has held the lock {path} for {timeout:.0f} s; it may be stuck: stop it "
                    "or delete the lock file"
                )
            time.sleep(0.02)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


def get(
    cache: str, lock: str, fetch: Callable[[], Entry], *, clock: Callable[[], float] = time.time
) -> tuple[Entry, bool]:
    """The cached entry while it is fresh; else one refresh under the lock. Returns (entry, refreshed)."""
    entry = read(cache)
    if entry is not None and entry.fresh(clock()):
        return entry, False
    with locked(lock):
        entry = read(cache)  # another helper may have refreshed while this one waited
        if entry is not None and entry.fresh(clock()):
            return entry, False
        entry = fetch()
        write(cache, entry)
        return entry, True
