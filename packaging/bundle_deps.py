"""Bundle the task's runtime dependencies for every supported agent platform and Python (build time only).

Output: ``build/deps/<key>/layout/``, a folder of *groups* plus ``manifest.json`` (format described in
``packaging/selector.py``), copied into the task folder as ``task/deps/``. ``<key>`` hashes the
dependency specifiers, the target list and this file, so an unchanged dependency set is never
resolved or downloaded again (``make package`` then needs no network).

How:
1. ``uv pip compile --universal --fork-strategy fewest`` resolves one version of each dependency that
   serves every Python from 3.9 up (Python-version forks would bundle two cryptography builds per
   platform).
2. ``uv pip install --target`` installs that set once per target (platform x Python), wheels only.
   Distributions whose wheels are built per Python version (cffi, MarkupSafe) may float to the newest
   version that has a wheel for that Python; a compiled wheel with a pure-Python twin of the same
   version (charset-normalizer) is replaced by the twin; an abi3 wheel is taken from the oldest Python
   of each platform so that one build serves them all.
3. Every top-level entry of every target (a package folder, a module, a ``.dist-info``) is hashed;
   identical entries are stored once, in the group named after the set of targets that use it, so a
   target's ``sys.path`` is a handful of folders and no package is ever split across two of them.
4. The manifest names, per Python, the platform-independent groups (``portable``): an agent with no
   bundled build (musl, 32-bit ARM, a newer Python) runs the providers that need no compiled code from
   them, and ``compiled`` names the distributions it then lacks, for the one error of those that do.
5. Checks: every ``Requires-Dist`` of every bundled distribution (markers evaluated for the target)
   is met inside that target, and no target sees two copies of a top-level name.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path

from versioning import load_toml

ROOT = Path(__file__).resolve().parent.parent

#: our platform id -> (uv --python-platform, label for messages)
PLATFORMS: dict[str, tuple[str, str]] = {
    "linux_x86_64": ("x86_64-manylinux_2_17", "Linux x64 (glibc 2.17+)"),
    "linux_aarch64": ("aarch64-manylinux_2_17", "Linux arm64 (glibc 2.17+)"),
    "win_amd64": ("x86_64-pc-windows-msvc", "Windows x64"),
    "macosx_arm64": ("aarch64-apple-darwin", "macOS arm64 (11.0+)"),
    "macosx_x86_64": ("x86_64-apple-darwin", "macOS x64 (11.0+)"),
}
PYTHONS: tuple[str, ...] = ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15")
#: the oldest macOS the bundled macOS wheels may require (uv's default is the oldest non-EOL release)
MACOS_TARGET = "11.0"

#: dist-info files that only matter to installers; dropped so identical distributions dedupe
INSTALLER_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json", "uv_cache.json", "uv_build.json"}
#: top-level entries of a --target install that are never imported
NOT_IMPORTED = {"bin", "Scripts", "include", "share", "etc"}

#: marker environment per platform, for checking Requires-Dist inside each target
MARKER_ENV: dict[str, dict[str, str]] = {
    "linux_x86_64": {
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": "x86_64",
    },
    "linux_aarch64": {
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": "aarch64",
    },
    "win_amd64": {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt", "platform_machine": "AMD64"},
    "macosx_arm64": {
        "sys_platform": "darwin",
        "platform_system": "Darwin",
        "os_name": "posix",
        "platform_machine": "arm64",
    },
    "macosx_x86_64": {
        "sys_platform": "darwin",
        "platform_system": "Darwin",
        "os_name": "posix",
        "platform_machine": "x86_64",
    },
}


class BundleError(RuntimeError):
    pass


@dataclass(frozen=True)
class Target:
    platform: str
    python: str

    @property
    def key(self) -> str:
        return f"{self.platform}-cp{self.python.replace('.', '')}"

    @property
    def version(self) -> tuple[int, int]:
        major, minor = self.python.split(".")
        return int(major), int(minor)


@dataclass
class Dist:
    """One installed distribution in a target folder."""

    name: str  # normalised
    version: str
    tags: list[str]
    info_dir: str
    files: list[str]  # relative paths, from RECORD, without the installer-only files
    requires: list[str] = field(default_factory=list)

    @property
    def pure(self) -> bool:
        return all(tag.endswith("-none-any") for tag in self.tags)

    @property
    def abi3(self) -> bool:
        return all(tag.split("-")[1] == "abi3" for tag in self.tags)


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def all_targets() -> list[Target]:
    return [Target(p, v) for p in PLATFORMS for v in PYTHONS]


# ---------------------------------------------------------------------------------------------- inputs


def project_requirements(pyproject: Path = ROOT / "pyproject.toml") -> tuple[list[str], str]:
    """([project].dependencies, requires-python) of the project."""
    project = load_toml(pyproject)["project"]
    return list(project.get("dependencies", [])), str(project.get("requires-python", ""))


#: Dependencies of the oidc-credentials CLI only (trust, connection, doctor): the task never imports them,
#: so they stay out of the .vsix. Resolving without them also drops what only they pull in (msrest,
#: requests-oauthlib, oauthlib, isodate); what the task needs as well (requests, ...) stays.
CLI_ONLY = {"azure-devops"}


def task_requirements(pyproject: Path = ROOT / "pyproject.toml") -> tuple[list[str], str]:
    """The project's dependencies less the CLI-only ones: what the task's bundle is resolved from."""
    from packaging.requirements import Requirement

    requirements, requires_python = project_requirements(pyproject)
    return [r for r in requirements if normalise(Requirement(r).name) not in CLI_ONLY], requires_python


def elf_strip_tool() -> str | None:
    """llvm-strip handles ELF files of every architecture (GNU strip only the host's)."""
    return shutil.which("llvm-strip")


def strip_elf(folder: Path, tool: str) -> int:
    """Drop the symbol tables of Linux extension modules, as distributions do; returns bytes saved.

    Only ELF files: a Mach-O file's code signature would no longer match (macOS refuses to load it)
    and Windows DLLs carry no symbols. ``--strip-unneeded`` keeps what the dynamic loader uses.
    """
    saved = 0
    for path in folder.rglob("*"):
        if not path.is_file() or path.suffix != ".so":
            continue
        with path.open("rb") as handle:
            if handle.read(4) != b"\x7fELF":
                continue
        before = path.stat().st_size
        _run([tool, "--strip-unneeded", str(path)], dict(os.environ), f"{tool} {path.name}")
        saved += before - path.stat().st_size
    return saved


def cache_key(requirements: list[str], requires_python: str) -> str:
    blob = json.dumps(
        {
            "strip": elf_strip_tool() is not None,
            "requirements": sorted(requirements),
            "requires_python": requires_python,
            "platforms": PLATFORMS,
            "pythons": PYTHONS,
            "macos": MACOS_TARGET,
            "bundler": Path(__file__).read_bytes().decode("utf-8"),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------- uv, pip


def _uv() -> str:
    try:
        from uv import find_uv_bin  # type: ignore[import-untyped,unused-ignore]

        return str(find_uv_bin())
    except ImportError:
        found = shutil.which("uv")
        if not found:
            raise BundleError("uv is not installed: run `make setup` (it is a dev dependency)") from None
        return found


def _run(argv: list[str], env: dict[str, str], what: str) -> str:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BundleError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "UV_CACHE_DIR": str(cache / "uv-cache"),
            "UV_PYTHON_DOWNLOADS": "never",
            "MACOSX_DEPLOYMENT_TARGET": MACOS_TARGET,
            "UV_NO_PROGRESS": "1",
        }
    )
    return env


def lock(work: Path, env: dict[str, str]) -> Path:
    """One version per dependency for all Pythons: ``uv pip compile --universal --fork-strategy fewest``."""
    out = work / "lock.txt"
    _run(
        [
            _uv(),
            "pip",
            "compile",
            str(work / "requirements.in"),
            "--universal",
            "--fork-strategy",
            "fewest",
            "--python-version",
            PYTHONS[0],
            "--only-binary",
            ":all:",
            "--no-header",
            "--no-annotate",
            "--quiet",
            "-o",
            str(out),
        ],
        env,
        "uv pip compile",
    )
    return out


def install(target: Target, into: Path, constraints: Path, env: dict[str, str]) -> None:
    """Install the task's requirements (``requirements.in`` beside the constraints) for one target."""
    uv_platform = PLATFORMS[target.platform][0]
    _run(
        [
            _uv(),
            "pip",
            "install",
            "--quiet",
            "--target",
            str(into),
            "--python-platform",
            uv_platform,
            "--python-version",
            target.python,
            "--only-binary",
            ":all:",
            "--no-compile",
            "-r",
            str(constraints.parent / "requirements.in"),
            "-c",
            str(constraints),
        ],
        env,
        f"uv pip install for {target.key}",
    )


def pure_twin(dist: Dist, wheels: Path) -> Path | None:
    """The py3-none-any wheel of the same version, if the project publishes one."""
    marker = wheels / f"{dist.name}-{dist.version}.none"
    for path in wheels.glob("*.whl"):
        parts = path.name[:-4].split("-")
        if normalise(parts[0]) == dist.name and parts[1] == dist.version and path.name.endswith("-none-any.whl"):
            return path
    if marker.exists():
        return None
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--platform",
            "any",
            "--implementation",
            "py",
            "--abi",
            "none",
            "--python-version",
            PYTHONS[0],
            "-d",
            str(wheels),
            f"{dist.name}=={dist.version}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        marker.touch()
        return None
    return pure_twin(dist, wheels)


# -------------------------------------------------------------------------------- reading an install


def read_dists(folder: Path) -> dict[str, Dist]:
    dists: dict[str, Dist] = {}
    for info in sorted(folder.glob("*.dist-info")):
        meta = HeaderParser().parsestr((info / "METADATA").read_text(encoding="utf-8"))
        wheel = HeaderParser().parsestr((info / "WHEEL").read_text(encoding="utf-8"))
        files = []
        for line in (info / "RECORD").read_text(encoding="utf-8").splitlines():
            path = line.rsplit(",", 2)[0] if line.count(",") >= 2 else line
            if not path or path.startswith("..") or path.split("/")[0] in NOT_IMPORTED:
                continue
            if path.startswith(info.name + "/") and path.split("/")[-1] in INSTALLER_FILES:
                continue
            files.append(path)
        name = normalise(meta["Name"])
        dists[name] = Dist(
            name=name,
            version=meta["Version"],
            tags=list(wheel.get_all("Tag") or []),
            info_dir=info.name,
            files=files,
            requires=list(meta.get_all("Requires-Dist") or []),
        )
    return dists


def _remove_dist(folder: Path, dist: Dist) -> None:
    for rel in dist.files:
        (folder / rel).unlink(missing_ok=True)
    shutil.rmtree(folder / dist.info_dir, ignore_errors=True)
    for rel in sorted({str(Path(f).parent) for f in dist.files}, key=len, reverse=True):
        path = folder / rel
        while path != folder and path.is_dir() and not any(path.iterdir()):
            path.rmdir()
            path = path.parent


def _unpack_wheel(wheel: Path, folder: Path) -> None:
    """Install a pure wheel's importable files (purelib/platlib data folded into the root)."""
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            name = member.filename
            if member.is_dir():
                continue
            parts = name.split("/")
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            dest = folder.joinpath(*parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(archive.read(member))


def _copy_dist(source: Path, dist: Dist, folder: Path) -> None:
    for rel in dist.files:
        dest = folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / rel, dest)
    shutil.copytree(source / dist.info_dir, folder / dist.info_dir, dirs_exist_ok=True)


def _strip_installer_files(folder: Path) -> None:
    for info in folder.glob("*.dist-info"):
        for name in INSTALLER_FILES:
            (info / name).unlink(missing_ok=True)
    for name in NOT_IMPORTED:
        shutil.rmtree(folder / name, ignore_errors=True)
    for cache in folder.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


# ---------------------------------------------------------------------------------------- requirements


def platform_requires(dists: Iterable[Dist]) -> dict[str, list[int]]:
    """The newest glibc / macOS any of these wheels needs (each wheel needs the oldest of its tags)."""
    needs: dict[str, list[int]] = {}
    for dist in dists:
        per_kind: dict[str, list[list[int]]] = defaultdict(list)
        for tag in dist.tags:
            plat = tag.split("-")[2]
            if m := re.match(r"manylinux_(\d+)_(\d+)_", plat):
                per_kind["glibc"].append([int(m[1]), int(m[2])])
            elif plat.startswith("manylinux2014_"):
                per_kind["glibc"].append([2, 17])
            elif plat.startswith("manylinux2010_"):
                per_kind["glibc"].append([2, 12])
            elif plat.startswith("manylinux1_"):
                per_kind["glibc"].append([2, 5])
            elif m := re.match(r"macosx_(\d+)_(\d+)_", plat):
                per_kind["macos"].append([int(m[1]), int(m[2])])
        for kind, versions in per_kind.items():
            needed = min(versions)
            if needed > needs.get(kind, [0, 0]):
                needs[kind] = needed
    return needs


def check_closure(target: Target, dists: dict[str, Dist]) -> list[str]:
    """Requirements of the bundled distributions that the bundle does not meet for this target."""
    from packaging.requirements import Requirement

    env = dict(MARKER_ENV[target.platform])
    env.update(
        {
            "python_version": target.python,
            "python_full_version": target.python + ".0",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "extra": "",
        }
    )
    problems = []
    for dist in dists.values():
        for text in dist.requires:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            have = dists.get(normalise(req.name))
            if have is None:
                problems.append(f"{target.key}: {dist.name} needs {text}, which is not bundled")
            elif req.specifier and not req.specifier.contains(have.version, prereleases=True):
                problems.append(f"{target.key}: {dist.name} needs {text}, bundled {have.version}")
    return problems


# ------------------------------------------------------------------------------------------- grouping


def _entry_digest(path: Path) -> str:
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        rel = file.relative_to(path.parent).as_posix()
        digest.update(rel.encode() + b"\0" + hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def group_name(targets: frozenset[Target]) -> str:
    """A short, readable folder name for the set of targets that share a group."""
    plats = sorted({t.platform for t in targets})
    pys = sorted({t.python for t in targets}, key=lambda v: tuple(int(x) for x in v.split(".")))
    if len(targets) == len(plats) * len(pys):
        plat_part = "any" if len(plats) == len(PLATFORMS) else "+".join(plats)
        tags = ["cp" + v.replace(".", "") for v in pys]
        indexes = [PYTHONS.index(v) for v in pys]
        if len(pys) == len(PYTHONS):
            py_part = "py3"
        elif indexes == list(range(indexes[0], indexes[-1] + 1)) and len(tags) > 2:
            py_part = f"{tags[0]}-{tags[-1]}"
        else:
            py_part = "+".join(tags)
        name = f"{plat_part}-{py_part}"
        if len(name) <= 40:
            return name
    blob = ",".join(sorted(t.key for t in targets))
    return "g-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass
class Layout:
    folder: Path
    manifest: dict[str, object]


def import_owners(installs: Iterable[Path]) -> dict[str, str]:
    """Top-level import name -> the distribution that installs it (read before the RECORDs are dropped)."""
    owners: dict[str, str] = {}
    for folder in installs:
        for dist in read_dists(folder).values():
            for rel in dist.files:
                top = rel.split("/")[0]
                if top != dist.info_dir and not top.endswith(".dist-info"):
                    owners.setdefault(top.split(".")[0], dist.name)
    return owners


def portable_paths(groups: dict[str, frozenset[Target]], targets: Iterable[Target]) -> dict[str, list[str]]:
    """Per Python: the groups every platform's target of that Python uses, i.e. platform-independent code.

    An agent whose platform has no bundled build runs from these (``portable`` in the manifest)."""
    by_python: dict[str, set[Target]] = defaultdict(set)
    for target in targets:
        by_python[target.python].add(target)
    return {
        python: sorted((n for n, ts in groups.items() if members <= ts), key=lambda n: (len(groups[n]), n))
        for python, members in sorted(by_python.items())
    }


def build_layout(
    installs: dict[Target, Path],
    out: Path,
    requirements: list[str],
    requires: dict[Target, dict[str, list[int]]],
    owners: dict[str, str] | None = None,
) -> Layout:
    """Store every distinct top-level entry once, in the group of the targets that use it.

    The manifest also says, per Python, which groups are platform-independent (``portable``) and which
    top-level imports exist only in platform builds (``compiled``: import name -> distribution)."""
    users: dict[tuple[str, str], set[Target]] = defaultdict(set)  # (entry name, digest) -> targets
    source: dict[tuple[str, str], Path] = {}
    imports: set[str] = set()
    for target, folder in installs.items():
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith("."):  # uv's lock file, never imported
                continue
            key = (entry.name, _entry_digest(entry))
            users[key].add(target)
            source.setdefault(key, entry)
            if not entry.name.endswith(".dist-info"):
                imports.add(entry.name.split(".")[0])
    groups: dict[str, frozenset[Target]] = {}
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for key, targets in users.items():
        frozen = frozenset(targets)
        name = group_name(frozen)
        if groups.setdefault(name, frozen) != frozen:
            raise BundleError(f"group name clash: {name}")
        dest = out / name / key[0]
        if dest.exists():
            raise BundleError(f"two different copies of {key[0]} for the same targets ({name})")
        if source[key].is_dir():
            shutil.copytree(source[key], dest)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source[key], dest)
    manifest_targets = {}
    for target in installs:
        names = sorted((n for n, ts in groups.items() if target in ts), key=lambda n: (len(groups[n]), n))
        manifest_targets[target.key] = {"path": names, "requires": requires.get(target, {})}
        seen: set[str] = set()
        for name in names:
            for entry in (out / name).iterdir():
                if entry.name in seen:
                    raise BundleError(f"{target.key} would see two copies of {entry.name}")
                seen.add(entry.name)
    portable = portable_paths(groups, installs)
    everywhere = {
        entry.name.split(".")[0] for names in portable.values() for n in names for entry in (out / n).iterdir()
    }
    compiled = sorted(i for i in imports if i not in everywhere)
    manifest: dict[str, object] = {
        "format": 1,
        "portable": portable,
        "compiled": {name: (owners or {}).get(name, name) for name in compiled},
        "platforms": {p: label for p, (_, label) in PLATFORMS.items()},
        "pythons": list(PYTHONS),
        "targets": manifest_targets,
        "imports": sorted(imports),
        "requirements": requirements,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return Layout(out, manifest)


# ---------------------------------------------------------------------------------------------- main


def bundle(build_dir: Path = ROOT / "build", say: Callable[[str], None] = print) -> Path:
    """The layout folder for the current dependency set, built (or taken from the cache)."""
    requirements, requires_python = task_requirements()
    key = cache_key(requirements, requires_python)
    cache = build_dir / "deps"
    final = cache / key / "layout"
    if (final / "manifest.json").exists():
        say(f"deps: cached bundle {key} ({_size(final) / 1e6:.1f} MB unpacked)")
        return final
    env = _env(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"bundle-{key}-", dir=build_dir))
    try:
        say(
            f"deps: resolving {', '.join(requirements)} for {len(PLATFORMS)} platforms x Python {PYTHONS[0]}-{PYTHONS[-1]}"
        )
        (work / "requirements.in").write_text("".join(r + "\n" for r in requirements), encoding="utf-8")
        locked = lock(work, env)
        targets = all_targets()
        reference = targets[0]
        ref_dir = work / "reference"
        install(reference, ref_dir, locked, env)
        floating = {d.name for d in read_dists(ref_dir).values() if not d.pure and not d.abi3}
        wheels = build_dir / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        twins = {n: pure_twin(d, wheels) for n, d in read_dists(ref_dir).items() if n in floating}
        floating -= {n for n, twin in twins.items() if twin is not None}
        constraints = work / "constraints.txt"
        constraints.write_text(
            "".join(
                line + "\n"
                for line in locked.read_text().splitlines()
                if normalise(re.split(r"[=<>!~ ;]", line)[0]) not in floating
            ),
            encoding="utf-8",
        )
        installs: dict[Target, Path] = {}
        for target in targets:
            folder = work / "targets" / target.key
            install(target, folder, constraints, env)
            installs[target] = folder
        say(f"deps: installed {len(targets)} targets; per-Python builds: {', '.join(sorted(floating)) or 'none'}")
        # compiled wheels with a pure twin of the same version -> the twin
        for folder in installs.values():
            for name, dist in read_dists(folder).items():
                twin = twins.get(name)
                if twin is not None and not dist.pure:
                    _remove_dist(folder, dist)
                    _unpack_wheel(twin, folder)
        # abi3 wheels: the oldest Python's build serves every Python of the platform
        for plat in PLATFORMS:
            plat_targets = [t for t in targets if t.platform == plat]
            oldest = plat_targets[0]
            for name, dist in read_dists(installs[oldest]).items():
                if not dist.abi3:
                    continue
                for target in plat_targets[1:]:
                    other = read_dists(installs[target]).get(name)
                    if other is not None and other.version == dist.version and other.tags != dist.tags:
                        _remove_dist(installs[target], other)
                        _copy_dist(installs[oldest], dist, installs[target])
        owners = import_owners(installs.values())
        requires: dict[Target, dict[str, list[int]]] = {}
        problems: list[str] = []
        for target, folder in installs.items():
            dists = read_dists(folder)
            problems += check_closure(target, dists)
            requires[target] = platform_requires(d for d in dists.values() if not d.pure)
            _strip_installer_files(folder)
        if problems:
            raise BundleError("the bundle is incomplete:\n  " + "\n  ".join(problems))
        tool = elf_strip_tool()
        if tool:
            saved = sum(
                strip_elf(folder, tool) for target, folder in installs.items() if target.platform.startswith("linux")
            )
            say(f"deps: stripped symbol tables from Linux extension modules ({saved / 1e6:.1f} MB unpacked)")
        else:
            say("deps: llvm-strip not found; Linux extension modules keep their symbol tables (a larger .vsix)")
        layout = build_layout(installs, work / "layout", requirements, requires, owners)
        (work / "layout" / "lock.txt").write_text(locked.read_text(), encoding="utf-8")
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(final.parent / "layout", ignore_errors=True)
        os.replace(layout.folder, final)
        for old in cache.iterdir():
            if old.name != key and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
        say(
            f"deps: bundle {key}: {len(list(p for p in final.iterdir() if p.is_dir()))} groups, {_size(final) / 1e6:.1f} MB unpacked"
        )
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build")
    args = parser.parse_args(argv)
    try:
        print(bundle(args.build_dir))
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
