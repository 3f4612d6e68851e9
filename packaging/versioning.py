"""The task's one version number, in packaging/VERSION, and the files it is stamped into.

``python packaging/versioning.py check`` lists every file whose version differs (exit 1 if any);
``python packaging/versioning.py stamp`` rewrites them in place: run it after bumping packaging/VERSION
and commit task.json (Major/Minor/Patch), vss-extension.json, pyproject.toml and the Python package's
``__version__`` with the bump (a test checks they agree). ``make package`` stamps only its staged copies
(``stamp_file``), so building never modifies a tracked file.
Each file is edited by a targeted substitution, so its formatting is kept.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VERSION_FILE = ROOT / "packaging" / "VERSION"
SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def load_toml(path: Path) -> dict[str, Any]:
    """tomllib on Python 3.11+, tomli (a dev dependency there) before."""
    try:
        toml = importlib.import_module("tomllib")
    except ModuleNotFoundError:  # Python < 3.11
        toml = importlib.import_module("tomli")
    data: dict[str, Any] = toml.loads(path.read_text(encoding="utf-8"))
    return data


def read_version(path: Path = VERSION_FILE) -> str:
    version = path.read_text(encoding="utf-8").strip()
    if not SEMVER.match(version):
        raise ValueError(f"{path}: '{version}' is not MAJOR.MINOR.PATCH (the agent and marketplace need three numbers)")
    return version


def _task_json(text: str, version: str) -> str:
    major, minor, patch = SEMVER.match(version).groups()  # type: ignore[union-attr]
    pattern = re.compile(r'("version"\s*:\s*\{)[^{}]*(\})')
    if not pattern.search(text):
        raise ValueError('task.json has no "version": {...} object')
    return pattern.sub(lambda m: f'{m[1]} "Major": {major}, "Minor": {minor}, "Patch": {patch} {m[2]}', text, count=1)


def _vss_extension(text: str, version: str) -> str:
    pattern = re.compile(r'^(\s*"version"\s*:\s*")[^"]*(")', re.MULTILINE)
    if not pattern.search(text):
        raise ValueError('vss-extension.json has no "version": "..." line')
    return pattern.sub(lambda m: m[1] + version + m[2], text, count=1)


def _pyproject(text: str, version: str) -> str:
    start = text.index("[project]")
    end = text.find("\n[", start + 1)
    end = len(text) if end < 0 else end
    section, count = re.subn(
        r'^version\s*=\s*"[^"]*"', f'version = "{version}"', text[start:end], count=1, flags=re.MULTILINE
    )
    if not count:
        raise ValueError('pyproject.toml has no version = "..." in [project]')
    return text[:start] + section + text[end:]


def _package_init(text: str, version: str) -> str:
    result, count = re.subn(
        r'^__version__\s*=\s*"[^"]*"', f'__version__ = "{version}"', text, count=1, flags=re.MULTILINE
    )
    if not count:
        raise ValueError('the package __init__.py has no __version__ = "..."')
    return result


#: file -> how to put the version in it
STAMPS: dict[str, Callable[[str, str], str]] = {
    "task.json": _task_json,
    "vss-extension.json": _vss_extension,
    "pyproject.toml": _pyproject,
    "task/oidc_credentials/__init__.py": _package_init,
}


def stamp_text(name: str, text: str, version: str) -> str:
    return STAMPS[name](text, version)


def versions_in(root: Path = ROOT) -> dict[str, str]:
    """The version each stamped file holds now, read the way its consumer reads it."""
    import ast

    task = json.loads((root / "task.json").read_text(encoding="utf-8"))["version"]
    init = ast.parse((root / "task/oidc_credentials/__init__.py").read_text(encoding="utf-8"))
    dunder = next(
        node.value.value
        for node in init.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)
        and isinstance(node.value, ast.Constant)
    )
    return {
        "task.json": f"{task['Major']}.{task['Minor']}.{task['Patch']}",
        "vss-extension.json": json.loads((root / "vss-extension.json").read_text(encoding="utf-8"))["version"],
        "pyproject.toml": load_toml(root / "pyproject.toml")["project"]["version"],
        "task/oidc_credentials/__init__.py": str(dunder),
    }


def stamp_file(path: Path, name: str, version: str) -> bool:
    """Stamp one copy of the stamped file ``name`` (a key of STAMPS) at ``path``; True when it changed."""
    text = path.read_text(encoding="utf-8")
    new = stamp_text(name, text, version)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


def stamp(root: Path = ROOT, version: str | None = None) -> list[str]:
    """Write the version into every file that differs; returns the files changed."""
    version = version or read_version()
    changed = []
    for name in STAMPS:
        path = root / name
        text = path.read_text(encoding="utf-8")
        new = stamp_text(name, text, version)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(name)
    wrong = {k: v for k, v in versions_in(root).items() if v != version}
    if wrong:
        raise ValueError(f"stamping {version} left other versions in {wrong}")
    return changed


def main(argv: list[str]) -> int:
    version = read_version()
    if argv[:1] == ["stamp"]:
        changed = stamp()
        print(
            f"version {version}: " + (f"stamped into {', '.join(changed)}" if changed else "every file already has it")
        )
        return 0
    if argv[:1] == ["check"]:
        wrong = {k: v for k, v in versions_in().items() if v != version}
        for name, found in wrong.items():
            print(f"{name}: {found}, packaging/VERSION says {version}", file=sys.stderr)
        return 1 if wrong else 0
    print(version)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
