"""Pick the bundled dependency folders for the running interpreter.

``make package`` copies this file to ``task/deps/select.py`` next to ``manifest.json`` and the folders
it describes; ``task/entry.py`` exec()s it and calls ``select(deps_dir)``, which returns the folders to
put on ``sys.path`` (most specific first) or raises ``UnsupportedPlatform``, whose message is the one
line the pipeline log shows. The source is named selector.py because a ``select.py`` next to the build
scripts would shadow the standard library's ``select`` module for them.

It runs on the agent with whatever Python 3.9+ the launcher found, before any dependency is
importable: standard library only, no writes, and cheap (one small JSON read and a few stat calls).

The manifest (written by ``packaging/bundle_deps.py``) holds
``targets``: ``"<platform>-cp<XY>"`` -> ``{"path": [folder, ...], "requires": {"glibc": [2, 17]} or
{"macos": [11, 0]} or {}}``; ``platforms``: ``<platform>`` -> label; ``pythons``: ``["3.9", ...]``;
``imports``: the top-level import names of every bundled distribution; ``requirements``: the task's
dependency specifiers; ``portable``: ``"3.X"`` -> the groups every platform of that Python shares
(platform-independent, pure-Python code); ``compiled``: import name -> distribution, for what only the
platform builds hold.

An agent with no bundled build (musl/Alpine, 32-bit ARM, a Python newer than the bundle, an old glibc)
runs from the ``portable`` groups of the nearest bundled Python: every provider that needs no compiled
code works there. :data:`LIMITED` then describes what is missing, and the task names it in the one error
of a provider that needs it (Azure and Key Vault: azure-identity needs cryptography and cffi).
"""

from __future__ import annotations

import json
import os
import platform as _platform
import struct
import sys
import sysconfig
from typing import Any

MANIFEST = "manifest.json"

Facts = dict[str, Any]


#: set by select() when it falls back to the portable groups: {"agent", "supported", "compiled", "python"}
LIMITED: dict[str, Any] = {}


class UnsupportedPlatform(RuntimeError):
    """No bundled build fits this interpreter; the message says which platform and what to do."""


def probe() -> Facts:
    """Facts about the running interpreter and machine that decide which bundled builds can load."""
    facts: Facts = {
        "implementation": sys.implementation.name,
        "version": [sys.version_info[0], sys.version_info[1]],
        "system": sys.platform,
        "machine": _platform.machine(),
        "sysconfig_platform": sysconfig.get_platform(),
        "bits": struct.calcsize("P") * 8,
        "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "glibc": None,
        "macos": None,
        "executable": sys.executable,
    }
    if sys.platform.startswith("linux"):
        facts["glibc"] = _glibc_version()
    elif sys.platform == "darwin":
        release = _platform.mac_ver()[0]
        facts["macos"] = _numbers(release) if release else None
    return facts


def _glibc_version() -> list[int] | None:
    """[major, minor] of the C library when it is glibc, else None (musl, e.g. Alpine)."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, OSError, ValueError):
        text = ""
    name, _, number = text.partition(" ")
    return _numbers(number) if name == "glibc" else None


def _numbers(text: str) -> list[int]:
    parts = []
    for piece in text.split(".")[:2]:
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        parts.append(int(digits) if digits else 0)
    return [*parts, 0, 0][:2]


def platform_id(facts: Facts) -> str | None:
    """Our platform id (``linux_x86_64``, ``win_amd64``, ...) for these facts, or None when unknown."""
    system = str(facts["system"])
    if facts["bits"] != 64:
        return None
    if system == "win32":
        arch = {"win-amd64": "amd64", "win-arm64": "arm64"}.get(str(facts["sysconfig_platform"]))
        return "win_" + arch if arch else None
    machine = str(facts["machine"] or "").lower()
    machine = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if system.startswith("linux"):
        return "linux_" + machine if facts["glibc"] else None
    if system == "darwin":
        return "macosx_" + ("arm64" if machine == "aarch64" else machine)
    return None


def describe(facts: Facts) -> str:
    """The interpreter and machine in words, e.g. 'CPython 3.12 on Linux x86_64 (glibc 2.35)'."""
    name = {"cpython": "CPython", "pypy": "PyPy"}.get(facts["implementation"], str(facts["implementation"]))
    version = "{}.{}".format(*facts["version"]) + (" (free-threaded)" if facts["free_threaded"] else "")
    system = str(facts["system"])
    if system.startswith("linux"):
        libc = "glibc {}.{}".format(*facts["glibc"]) if facts["glibc"] else "not glibc, e.g. musl on Alpine"
        where = f"Linux {facts['machine']} ({libc})"
    elif system == "darwin":
        release = "{}.{}".format(*facts["macos"]) if facts["macos"] else "unknown version"
        where = f"macOS {release} on {facts['machine']}"
    elif system == "win32":
        where = f"Windows ({facts['sysconfig_platform']})"
    else:
        where = f"{system} {facts['machine']}"
    bits = "" if facts["bits"] == 64 else f" ({facts['bits']}-bit)"
    return f"{name} {version}{bits} on {where}"


def target_key(facts: Facts) -> str | None:
    """``<platform>-cp<XY>`` for a CPython interpreter on a known platform, else None."""
    plat = platform_id(facts)
    if plat is None or facts["implementation"] != "cpython" or facts["free_threaded"]:
        return None
    return "{}-cp{}{}".format(plat, *facts["version"])


def _too_old(requires: dict[str, list[int]], facts: Facts) -> str | None:
    """Why this machine cannot load builds with these requirements, or None when it can."""
    glibc = requires.get("glibc")
    if glibc and (facts["glibc"] is None or list(facts["glibc"]) < list(glibc)):
        return "the bundled builds need glibc {}.{} or newer".format(*glibc)
    macos = requires.get("macos")
    if macos and facts["macos"] is not None:
        release = list(facts["macos"])
        if release == [10, 16]:  # what macOS 11+ reports to a Python built against an old SDK
            release = [11, 0]
        if release < list(macos):
            return "the bundled builds need macOS {}.{} or newer".format(*macos)
    return None


def supported(manifest: dict[str, Any]) -> str:
    """What the bundle covers, in words."""
    pythons = manifest.get("pythons") or []
    span = f"{pythons[0]} to {pythons[-1]}" if len(pythons) > 1 else "".join(pythons)
    labels = [manifest["platforms"][key] for key in sorted(manifest.get("platforms", {}))]
    return f"CPython {span} on {', '.join(labels)}"


def _own_packages(manifest: dict[str, Any]) -> bool:
    """True when this interpreter can import every bundled top-level name by itself (pip-installed)."""
    import importlib.util

    names = manifest.get("imports") or []
    try:
        return bool(names) and all(importlib.util.find_spec(name) is not None for name in names)
    except (ImportError, ValueError):
        return False


def select(deps_dir: str, facts: Facts | None = None) -> list[str]:
    """Folders to put on sys.path for this interpreter, most specific first.

    Raises UnsupportedPlatform, with the one-line message for the pipeline log, when no bundled build
    fits and the interpreter does not have the dependencies installed itself.
    """
    with open(os.path.join(deps_dir, MANIFEST), encoding="utf-8") as handle:
        manifest: dict[str, Any] = json.load(handle)
    if facts is None:
        facts = probe()
    key = target_key(facts)
    target = manifest["targets"].get(key) if key else None
    if target is None:
        problem = f"the task has no build of its dependencies for {describe(facts)}"
    else:
        folders = [os.path.join(deps_dir, name) for name in target["path"]]
        missing = [name for name, folder in zip(target["path"], folders) if not os.path.isdir(folder)]
        reason = _too_old(target.get("requires") or {}, facts)
        if reason:
            problem = f"{reason}, and this agent runs {describe(facts)}"
        elif missing:
            problem = (
                f"the task folder is incomplete: {', '.join(missing)} for {describe(facts)} "
                f"is missing from {deps_dir}; reinstall the extension"
            )
        else:
            return folders
    if _own_packages(manifest):
        return []
    python = facts.get("executable") or "python"
    portable = _portable(deps_dir, manifest, facts)
    if portable and (target is None or _too_old(target.get("requires") or {}, facts)):
        LIMITED.clear()
        LIMITED.update(
            agent=describe(facts),
            supported=supported(manifest),
            compiled=dict(manifest.get("compiled") or {}),
            python=python,
            problem=problem,
        )
        return portable
    requirements = " ".join(f'"{r}"' for r in manifest.get("requirements", []))
    raise UnsupportedPlatform(
        f"OidcCredentials cannot load its Python dependencies: {problem}. It bundles them for "
        f"{supported(manifest)}. Fix: run this step on one of those (on a hosted agent, add a "
        f"UsePythonVersion@0 step with versionSpec '3.12' before it), or install them into this Python "
        f"({python} -m pip install {requirements}) and set the pipeline variable OIDC_CREDENTIALS_PYTHON "
        f"to {python}."
    )


def _portable(deps_dir: str, manifest: dict[str, Any], facts: Facts) -> list[str]:
    """The platform-independent folders for the nearest bundled Python (the newest not newer than this one,
    else the oldest), or [] when the manifest has none or they are missing."""
    table: dict[str, list[str]] = manifest.get("portable") or {}
    if not table:
        return []
    running = list(facts["version"])
    versions = sorted(table, key=lambda v: [int(x) for x in v.split(".")])
    fitting = [v for v in versions if [int(x) for x in v.split(".")] <= running]
    chosen = fitting[-1] if fitting else versions[0]
    folders = [os.path.join(deps_dir, name) for name in table[chosen]]
    return folders if folders and all(os.path.isdir(f) for f in folders) else []
