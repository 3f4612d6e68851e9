"""Private files: written owner-only, never through a symlink, for secrets that cannot be variables."""

from __future__ import annotations

import os

from .errors import TaskError


def write_private(path: str, content: str) -> None:
    """Write ``content`` (UTF-8, exactly, no newline added) to ``path`` with mode 0600.

    The parent folder is created with mode 0700; a parent or file that is a symlink is refused, so a
    planted link cannot redirect a secret elsewhere.
    """
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if os.path.islink(directory):
            raise TaskError(f"Refusing to write a secret file into {directory}: it is a symbolic link.")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        fd = os.open(path, flags, 0o600)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)
            data = content.encode("utf-8")
            while data:
                written = os.write(fd, data)
                data = data[written:]
        finally:
            os.close(fd)
    except OSError as exc:
        raise TaskError(f"Could not write the secret file {path}: {exc.strerror or exc}.") from exc
