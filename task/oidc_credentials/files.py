"""Private files: written owner-only, never through a symlink, whole or not at all.

Every file the task or its helpers write (credential files, a Vault CA copy, the post-job state) goes
through :func:`write_private`:

- **Where**: inside ``root`` (``Agent.TempDirectory``) when it is given; a path that leaves it is refused.
  Each folder below ``root`` is created 0700, and an existing one must be a real folder (not a symbolic
  link) owned by this user.
- **Never through a link**: an existing file or folder on the way that is a symbolic link is refused, and
  the file itself is created with ``O_EXCL | O_NOFOLLOW`` under a fresh temporary name, then renamed over
  the final name (a rename replaces a name; it never writes through one).
- **Owner-only**: mode 0600 (``fchmod`` too, whatever the umask). An existing file of that name owned by
  another user is refused rather than replaced. On Windows the mode bits mean only "read-only"; there the
  file is owner-only through the access list it inherits from ``Agent.TempDirectory`` (the agent's
  ``_work/_temp``, readable by the agent's account and administrators only), which this module does not
  change.
- **Whole or nothing**: the content is written and flushed to the temporary file first; a full disk, a
  file-size limit or a read-only folder fails with one error naming the cause and the path, and leaves
  neither the temporary file nor a half-written final one behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from typing import Any

from .errors import TaskError

#: what an errno means for a user, in the one error line
_CAUSES = {
    errno.ENOSPC: "the disk is full",
    errno.EFBIG: "the file is larger than the agent allows (file size limit)",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}
if hasattr(errno, "EDQUOT"):
    _CAUSES[errno.EDQUOT] = "the disk quota is exhausted"


class UnsafePath(TaskError):
    """A path the task refuses to write a secret to (a link, another user's file, outside the temp folder)."""


def _cause(exc: OSError) -> str:
    return _CAUSES.get(exc.errno or 0) or (exc.strerror or str(exc))


def _owned_by_others(info: os.stat_result) -> bool:
    return hasattr(os, "geteuid") and info.st_uid != os.geteuid()


def _folder(path: str, created: list[str]) -> str:
    """Create ``path`` (mode 0700) unless it exists; an existing one must be our own real folder.

    Returns why it cannot hold a secret ("" when it can); a folder it made is added to ``created``."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
        created.append(path)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return f"the folder {path}: it is a symbolic link; remove it and re-run"
    if not stat.S_ISDIR(info.st_mode):
        return f"{path} is not a folder; remove it and re-run"
    if _owned_by_others(info):
        return (
            f"the folder {path} belongs to another user (uid {info.st_uid}), who could read the file; remove it "
            "and re-run"
        )
    return ""


def _folders(directory: str, root: str, created: list[str]) -> str:
    """Every folder from ``root`` (which must exist) down to ``directory``, each checked; why not, or ""."""
    if not root:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        return (
            f"the folder {directory}: it is a symbolic link; remove it and re-run" if os.path.islink(directory) else ""
        )
    if not os.path.isdir(root):
        return f"Agent.TempDirectory ({root}) does not exist"
    relative = os.path.relpath(directory, root)
    current = root
    for part in [] if relative == os.curdir else relative.split(os.sep):
        current = os.path.join(current, part)
        why = _folder(current, created)
        if why:
            return why
    return ""


def inside(path: str, root: str, paths: Any = os.path) -> bool:
    """Whether ``path`` lies strictly inside the folder ``root`` (lexically: both made absolute, compared as
    the platform compares names: without letter case on Windows). ``paths``: os.path, or ntpath/posixpath."""
    path, root = paths.normcase(paths.abspath(path)), paths.normcase(paths.abspath(root))
    try:
        return bool(paths.commonpath([path, root]) == root and path != root)
    except ValueError:  # different drives on Windows
        return False


def write_private(path: str, content: str, *, root: str = "") -> None:
    """Write ``content`` (UTF-8, exactly, no newline added) to ``path`` with mode 0600, whole or not at all.

    ``root``: the folder the file must lie in (``Agent.TempDirectory``); folders below it are created 0700.
    Raises :class:`TaskError` (:class:`UnsafePath` for a refused path) with one line naming the cause.
    """
    path = os.path.abspath(path)
    if root and not inside(path, root):
        raise UnsafePath(
            f"Could not write the secret file {path}: it is outside Agent.TempDirectory ({os.path.abspath(root)})."
        )
    directory, name = os.path.split(path)
    temp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
    fd = -1
    created: list[str] = []  # folders this call made: removed again when it fails
    try:
        why = _folders(directory, os.path.abspath(root) if root else "", created) or _unsafe_file(path)
        if why:
            raise UnsafePath(f"Could not write the secret file {path}: {why}.")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        fd = os.open(temp, flags, 0o600)
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
        data = content.encode("utf-8")
        while data:
            written = os.write(fd, data)
            data = data[written:]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(temp, path)
    except OSError as exc:
        _discard(fd, temp, created)
        raise TaskError(f"Could not write the secret file {path}: {_cause(exc)}.") from exc
    except BaseException:
        _discard(fd, temp, created)
        raise


def _unsafe_file(path: str) -> str:
    """Why an existing file at ``path`` may not be replaced ("" when it may, or there is none)."""
    try:
        existing = os.lstat(path)
    except FileNotFoundError:
        return ""
    if stat.S_ISLNK(existing.st_mode):
        return "it is a symbolic link; remove it and re-run"
    if not stat.S_ISREG(existing.st_mode):
        return "something that is not a file is in its place; remove it and re-run"
    if _owned_by_others(existing):
        return f"a file of that name belongs to another user (uid {existing.st_uid}); remove it and re-run"
    return ""


def _discard(fd: int, temp: str, created: list[str]) -> None:
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)
    with contextlib.suppress(OSError):
        os.remove(temp)
    for folder in reversed(created):  # only empty ones: a file another write put there stays
        with contextlib.suppress(OSError):
            os.rmdir(folder)
