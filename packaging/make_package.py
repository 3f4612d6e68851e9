"""``make package``: the marketplace .vsix and the Python sdist and wheel, in dist/.

1. Read packaging/VERSION; it is stamped into the staged copies only (task.json, vss-extension.json,
   pyproject.toml, ``__version__``), never into tracked files: the working tree stays clean.
2. Bundle the runtime dependencies for every supported agent (packaging/bundle_deps.py; cached).
3. Stage the extension in build/extension/ (vss-extension.json, overview.md) with the task folder
   build/extension/OidcCredentials/: task.json at its root, task/launcher.js,
   task/entry.py, task/oidc_credentials/ and task/deps/ (select.py, manifest.json, the groups), and
   the icon drawn by packaging/icon.py (images/icon.png for the marketplace, icon.png for the task).
4. ``tfx extension create`` (tfx-cli from node_modules, pinned in package.json): any line of its
   output with ``warning:`` fails the build, since tfx reports task.json problems as warnings only.
   ``--publisher``/``--extension-id`` (or PUBLISHER=/EXTENSION_ID= from make) build it for an
   organisation's own marketplace publisher; the sources keep theirs.
5. Print the .vsix size against the 40 MB budget and Azure DevOps Server's 25 MiB upload cap; over
   the budget fails the build.
6. ``python -m build`` (sdist + wheel of the CLI package) from a stamped copy of its sources in
   build/python-src/, and ``twine check --strict``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import bundle_deps
import icon
import versioning

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
DIST = ROOT / "dist"
TASK_NAME = "OidcCredentials"
#: the extension's root as tfx sees it: vss-extension.json, overview.md and the task folder
EXTENSION = BUILD / "extension"
STAGE = EXTENSION / TASK_NAME
#: files of the extension besides the task folder (vss-extension.json "content" and "icons")
EXTENSION_FILES = ("vss-extension.json", "overview.md")
#: drawn by packaging/icon.py at build time: the marketplace icon (vss-extension.json) and the task's
EXTENSION_ICON = "images/icon.png"
TASK_ICON = "icon.png"
#: an extension's id (manifest reference: letters, digits and hyphens, starting with a letter or digit); a
#: publisher's id is checked the same way, with underscores also let through for the marketplace to judge
MARKETPLACE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")
PUBLISHER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
BUDGET = 40_000_000  # bytes: the budget ("at most 40 MB")
SERVER_CAP = 25 * 1024 * 1024  # Azure DevOps Server rejects extension uploads above 25 MiB

#: what the agent needs from task/, besides the bundled dependencies
TASK_FILES = ("launcher.js", "post.js", "entry.py")
PACKAGE = "oidc_credentials"


class PackageError(RuntimeError):
    pass


#: Parts of the package that only the human CLI and library users import (``pip install`` has them):
#: the task never loads them, so the .vsix leaves them out.
CLI_ONLY = ("cli.py", "commands", "ado_admin.py", "verify.py")


def _ignore(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".pyo", ".egg-info")) or n.startswith(".")}


def _ignore_in_task(directory: str, names: list[str]) -> set[str]:
    """What the task folder leaves out: build litter, and the CLI-only modules at the package's top."""
    left_out = _ignore(directory, names)
    if Path(directory).name == PACKAGE:
        left_out |= {n for n in names if n in CLI_ONLY}
    return left_out


def stage(deps: Path, dest: Path = STAGE, version: str | None = None) -> Path:
    """The extension folder for tfx, whose task folder is exactly what the agent downloads and unzips."""
    version = version or versioning.read_version()
    if dest.parent.exists():
        shutil.rmtree(dest.parent)
    (dest / "task").mkdir(parents=True)
    for name in EXTENSION_FILES:
        shutil.copy2(ROOT / name, dest.parent / name)
    shutil.copy2(ROOT / "task.json", dest / "task.json")
    icon.write(dest.parent / EXTENSION_ICON, dest / TASK_ICON)
    for name in TASK_FILES:
        shutil.copy2(ROOT / "task" / name, dest / "task" / name)
    shutil.copytree(ROOT / "task" / PACKAGE, dest / "task" / PACKAGE, ignore=_ignore_in_task)
    shutil.copytree(deps, dest / "task" / "deps", ignore=lambda _d, names: {n for n in names if n == "lock.txt"})
    shutil.copy2(ROOT / "packaging" / "selector.py", dest / "task" / "deps" / "select.py")
    versioning.stamp_file(dest.parent / "vss-extension.json", "vss-extension.json", version)
    versioning.stamp_file(dest / "task.json", "task.json", version)
    init = f"task/{PACKAGE}/__init__.py"
    versioning.stamp_file(dest / init, init, version)
    check_stage(dest)
    return dest


def check_stage(folder: Path) -> None:
    """What tfx does not check but the agent needs."""
    task = json.loads((folder / "task.json").read_text(encoding="utf-8"))
    for phase in ("prejobexecution", "execution", "postjobexecution"):
        for handler, spec in task.get(phase, {}).items():
            if not (folder / spec["target"]).is_file():
                raise PackageError(f"task.json {phase}.{handler}.target {spec['target']} is not in the task folder")
    for required in (
        "task/entry.py",
        "task/deps/select.py",
        "task/deps/manifest.json",
        f"task/{PACKAGE}/__main__.py",
        f"task/{PACKAGE}/templates/summary.md.j2",  # package data the task reads at run time
        f"task/{PACKAGE}/audit.schema.json",
    ):
        if not (folder / required).is_file():
            raise PackageError(f"the staged task folder has no {required}")
    manifest = json.loads((folder / "task/deps/manifest.json").read_text(encoding="utf-8"))
    for key, target in manifest["targets"].items():
        for group in target["path"]:
            if not (folder / "task/deps" / group).is_dir():
                raise PackageError(f"manifest target {key} names a missing folder {group}")
    longest = max((len(p.relative_to(folder).as_posix()) for p in folder.rglob("*")), default=0)
    # _work/_tasks/OidcCredentials_<guid>/<version>/ is ~75 characters on a hosted Windows agent
    if longest > 170:
        raise PackageError(
            f"a staged path is {longest} characters long; Windows agents without long paths fail past 260"
        )


def tfx(output: Path, root: Path = EXTENSION, *, publisher: str = "", extension_id: str = "") -> Path:
    """``tfx extension create`` on the staged extension, every warning an error; returns the .vsix.

    ``publisher`` and ``extension_id`` replace vss-extension.json's, for an organisation's own publisher."""
    for what, value, pattern in (
        ("publisher", publisher, PUBLISHER_ID),
        ("extension id", extension_id, MARKETPLACE_ID),
    ):
        if value and not pattern.match(value):
            raise PackageError(
                f"the {what} '{value}' is not a marketplace id: letters, digits and hyphens, starting with a "
                "letter or digit (the ID shown on your publisher's page, not its display name)"
            )
    tool = ROOT / "node_modules" / ".bin" / ("tfx.cmd" if os.name == "nt" else "tfx")
    if not tool.exists():
        raise PackageError("tfx-cli is not installed: run `make setup` (npm ci)")
    output.mkdir(parents=True, exist_ok=True)
    for old in output.glob("*.vsix"):
        old.unlink()
    argv = [
        str(tool),
        "extension",
        "create",
        "--root",
        str(root),
        "--manifest-globs",
        "vss-extension.json",
        "--output-path",
        str(output),
        "--no-prompt",
        "--no-color",
    ]
    argv += ["--publisher", publisher] if publisher else []
    argv += ["--extension-id", extension_id] if extension_id else []
    proc = subprocess.run(argv, cwd=root, capture_output=True, text=True, check=False)
    text = (proc.stdout + proc.stderr).strip()
    print("\n".join("  tfx: " + line for line in text.splitlines() if line.strip()))
    warnings = [line for line in text.splitlines() if re.search(r"\bwarning:", line, re.IGNORECASE)]
    if proc.returncode != 0 or warnings:
        raise PackageError(
            f"tfx extension create failed (exit {proc.returncode}, {len(warnings)} warning(s) treated as errors)"
        )
    made = sorted(output.glob("*.vsix"))
    if len(made) != 1:
        raise PackageError(f"expected one .vsix in {output}, found {[p.name for p in made]}")
    return made[0]


def size_report(vsix: Path) -> str:
    size = vsix.stat().st_size
    verdict = "within" if size <= BUDGET else "OVER"
    server = "fits" if size <= SERVER_CAP else "does NOT fit"
    return (
        f"{vsix.relative_to(ROOT) if vsix.is_relative_to(ROOT) else vsix}: {size / 1e6:.1f} MB ({size:,} bytes); {verdict} the 40 MB budget; "
        f"{server} Azure DevOps Server's 25 MiB ({SERVER_CAP:,} bytes) upload limit"
    )


#: what the sdist is built from (MANIFEST.in and pyproject.toml say what of it goes in)
PYTHON_SOURCES = ("pyproject.toml", "README.md", "MANIFEST.in")


def python_source(version: str, dest: Path = BUILD / "python-src") -> Path:
    """A copy of the Python package's sources with the version stamped in, to build the dists from."""
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "task").mkdir(parents=True)
    for name in PYTHON_SOURCES:
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "task" / PACKAGE, dest / "task" / PACKAGE, ignore=_ignore)
    versioning.stamp_file(dest / "pyproject.toml", "pyproject.toml", version)
    init = f"task/{PACKAGE}/__init__.py"
    versioning.stamp_file(dest / init, init, version)
    return dest


def python_dists(output: Path, version: str) -> list[Path]:
    """sdist and wheel of the Python package, checked by twine."""
    for old in [
        *output.glob("oidc_credentials-*.whl"),
        *output.glob("oidc_credentials-*.tar.gz"),
        *output.glob("oidc-credentials-*.tar.gz"),
    ]:
        old.unlink()
    argv = [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(output)]
    if shutil.which("uv") or _has_module("uv"):
        argv += ["--installer", "uv"]
    source = python_source(version)
    argv.append(str(source))
    env = dict(os.environ, UV_CACHE_DIR=str(BUILD / "uv-cache"))
    proc = subprocess.run(argv, cwd=source, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise PackageError(f"python -m build failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    made = sorted(
        [*output.glob(f"oidc_credentials-{version}-*.whl"), *output.glob(f"oidc_credentials-{version}.tar.gz")]
    )
    if len(made) != 2:
        raise PackageError(f"python -m build made {[p.name for p in made]}, expected an sdist and a wheel of {version}")
    check = subprocess.run(
        [sys.executable, "-m", "twine", "--no-color", "check", "--strict", *map(str, made)],
        capture_output=True,
        text=True,
        check=False,
    )
    print("\n".join("  twine: " + line for line in check.stdout.strip().splitlines()))
    if check.returncode != 0:
        raise PackageError(f"twine check failed:\n{check.stdout}{check.stderr}")
    return made


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build dist/*.vsix, the sdist and the wheel.")
    parser.add_argument("--skip-python", action="store_true", help="only the .vsix")
    parser.add_argument(
        "--publisher",
        default=os.environ.get("PUBLISHER", ""),
        help="your marketplace publisher id (default: $PUBLISHER, else vss-extension.json's)",
    )
    parser.add_argument(
        "--extension-id",
        default=os.environ.get("EXTENSION_ID", ""),
        help="the extension's id under that publisher (default: $EXTENSION_ID, else vss-extension.json's)",
    )
    parser.add_argument("--output", type=Path, default=DIST, help="where the .vsix goes (default: dist/)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        version = versioning.read_version()
        drift = {k: v for k, v in versioning.versions_in().items() if v != version}
        print(f"version {version} (stamped into the staged copies)")
        if drift:
            print(
                "  note: tracked files hold other versions ("
                + ", ".join(f"{k}: {v}" for k, v in drift.items())
                + "); run `python packaging/versioning.py stamp` and commit them"
            )
        deps = bundle_deps.bundle(BUILD)
        folder = stage(deps, version=version)
        print(f"staged {folder.relative_to(ROOT)}")
        if args.publisher or args.extension_id:
            print(
                f"publisher {args.publisher or '(vss-extension.json)'}, extension id {args.extension_id or '(vss-extension.json)'}"
            )
        vsix = tfx(args.output, publisher=args.publisher, extension_id=args.extension_id)
        size = vsix.stat().st_size
        print(size_report(vsix))
        if size > BUDGET:
            raise PackageError("the .vsix is over its size budget")
        if not args.skip_python:
            for made in python_dists(DIST, version):
                print(f"{made.relative_to(ROOT)}: {made.stat().st_size / 1e3:.0f} kB")
    except (PackageError, bundle_deps.BundleError, ValueError) as exc:
        print(f"make package: error: {exc}", file=sys.stderr)
        return 1
    print(f"make package: done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
