"""The dependency selector (packaging/selector.py, shipped as task/deps/select.py) and the bundle it reads.

Platforms this machine cannot run are checked statically: for every target in the built manifest, the
selector picks folders that exist, together they hold every bundled top-level module exactly once, and
every compiled file in them is built for that target's OS, CPU and Python (ELF/PE/Mach-O headers and
the ABI tag in the file name).
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from tests.harness import ROOT
from tests.test_package import extract_task, packaged_vsix

SELECTOR = ROOT / "packaging" / "selector.py"


def load_selector() -> dict[str, Any]:
    """The selector the way entry.py loads it: exec() of the file, no import machinery."""
    namespace: dict[str, Any] = {"__file__": str(SELECTOR)}
    exec(compile(SELECTOR.read_text(encoding="ascii"), str(SELECTOR), "exec"), namespace)  # noqa: S102 - our own file, as entry.py does
    return namespace


SEL = load_selector()


def facts(system: str, machine: str, version: tuple[int, int] = (3, 12), **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "implementation": "cpython",
        "version": list(version),
        "system": system,
        "machine": machine,
        "sysconfig_platform": {"AMD64": "win-amd64", "ARM64": "win-arm64", "x86": "win32"}.get(
            machine, f"{system}-{machine}"
        ),
        "bits": 64,
        "free_threaded": False,
        "glibc": [2, 35] if system == "linux" else None,
        "macos": [14, 5] if system == "darwin" else None,
        "executable": "/agent/python3",
    }
    base.update(extra)
    return base


#: what each supported agent reports -> the target key the bundle must have for it
AGENTS = {
    "linux_x86_64": facts("linux", "x86_64"),
    "linux_aarch64": facts("linux", "aarch64"),
    "win_amd64": facts("win32", "AMD64"),
    "macosx_arm64": facts("darwin", "arm64"),
    "macosx_x86_64": facts("darwin", "x86_64"),
}


@pytest.fixture(scope="module")
def deps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """task/deps of the built .vsix, extracted."""
    return extract_task(packaged_vsix(), tmp_path_factory.mktemp("vsix")) / "task" / "deps"


@pytest.fixture(scope="module")
def manifest(deps: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((deps / "manifest.json").read_text(encoding="utf-8"))
    return data


def fake_bundle(tmp_path: Path, targets: dict[str, dict[str, Any]], imports: list[str] | None = None) -> Path:
    for target in targets.values():
        for name in target["path"]:
            (tmp_path / name).mkdir(exist_ok=True)
    manifest = {
        "format": 1,
        "platforms": {
            "linux_x86_64": "Linux x64 (glibc 2.17+)",
            "macosx_arm64": "macOS arm64 (11.0+)",
            "win_amd64": "Windows x64",
        },
        "pythons": ["3.9", "3.12"],
        "targets": targets,
        "imports": imports if imports is not None else ["definitely_not_installed_anywhere"],
        "requirements": ["requests>=2.31"],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return tmp_path


# --------------------------------------------------------------------------------- the running machine


def test_probe_of_this_interpreter() -> None:
    import sys

    probed = SEL["probe"]()
    assert probed["implementation"] == "cpython" and probed["version"] == list(sys.version_info[:2])
    assert probed["bits"] == 64 and probed["executable"] == sys.executable
    assert probed["glibc"] is not None and probed["glibc"] >= [2, 17]  # this machine is glibc Linux
    assert SEL["target_key"](probed) == f"linux_{probed['machine']}-cp{sys.version_info[0]}{sys.version_info[1]}"


def test_selector_is_ascii_and_parses_on_python_39() -> None:
    """entry.py reads it with the locale's encoding (cp1252 on Windows) and runs it on 3.9."""
    import ast

    text = SELECTOR.read_bytes().decode("ascii")
    ast.parse(text, feature_version=(3, 9))


# ---------------------------------------------------------------------------------- with fake platforms


@pytest.mark.parametrize(
    ("facts_", "key"),
    [
        (AGENTS["linux_x86_64"], "linux_x86_64-cp312"),
        (AGENTS["linux_aarch64"], "linux_aarch64-cp312"),
        (facts("linux", "arm64"), "linux_aarch64-cp312"),
        (AGENTS["win_amd64"], "win_amd64-cp312"),
        (facts("win32", "ARM64"), "win_arm64-cp312"),
        (AGENTS["macosx_arm64"], "macosx_arm64-cp312"),
        (AGENTS["macosx_x86_64"], "macosx_x86_64-cp312"),
        (facts("linux", "x86_64", (3, 9)), "linux_x86_64-cp39"),
        (facts("linux", "x86_64", glibc=None), None),  # musl
        (facts("linux", "x86_64", bits=32), None),
        (facts("win32", "x86", bits=32), None),
        (facts("linux", "x86_64", free_threaded=True), None),
        (facts("linux", "x86_64", implementation="pypy"), None),
        (facts("freebsd14", "amd64"), None),
    ],
)
def test_target_key(facts_: dict[str, Any], key: str | None) -> None:
    assert SEL["target_key"](facts_) == key


def test_selects_the_listed_folders_in_order(tmp_path: Path) -> None:
    bundle = fake_bundle(
        tmp_path, {"linux_x86_64-cp312": {"path": ["a-cp312", "a-py3", "any"], "requires": {"glibc": [2, 17]}}}
    )
    assert SEL["select"](str(bundle), AGENTS["linux_x86_64"]) == [
        str(bundle / "a-cp312"),
        str(bundle / "a-py3"),
        str(bundle / "any"),
    ]


def test_unbundled_platform_message(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path, {"linux_x86_64-cp312": {"path": ["a"], "requires": {}}})
    with pytest.raises(SEL["UnsupportedPlatform"]) as info:
        SEL["select"](str(bundle), facts("linux", "riscv64"))
    message = str(info.value)
    assert "\n" not in message
    assert "no build of its dependencies for CPython 3.12 on Linux riscv64 (glibc 2.35)" in message
    assert (
        "It bundles them for CPython 3.9 to 3.12 on Linux x64 (glibc 2.17+), macOS arm64 (11.0+), Windows x64."
        in message
    )
    assert "Fix: " in message and "UsePythonVersion@0" in message
    assert (
        '/agent/python3 -m pip install "requests>=2.31"' in message
        and "OIDC_CREDENTIALS_PYTHON to /agent/python3" in message
    )


@pytest.mark.parametrize(
    ("facts_", "fragment"),
    [
        (facts("linux", "x86_64", glibc=None), "on Linux x86_64 (not glibc, e.g. musl on Alpine)"),
        (facts("linux", "x86_64", (3, 13), free_threaded=True), "for CPython 3.13 (free-threaded) on Linux"),
        (facts("linux", "x86_64", implementation="pypy"), "for PyPy 3.12 on Linux"),
        (facts("win32", "x86", bits=32), "for CPython 3.12 (32-bit) on Windows (win32)"),
        (facts("linux", "x86_64", (3, 16)), "for CPython 3.16 on Linux x86_64"),
    ],
)
def test_unsupported_interpreters_are_named(tmp_path: Path, facts_: dict[str, Any], fragment: str) -> None:
    bundle = fake_bundle(tmp_path, {"linux_x86_64-cp312": {"path": ["a"], "requires": {}}})
    with pytest.raises(SEL["UnsupportedPlatform"], match=re.escape(fragment)):
        SEL["select"](str(bundle), facts_)


def test_glibc_too_old(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path, {"linux_x86_64-cp312": {"path": ["a"], "requires": {"glibc": [2, 28]}}})
    assert SEL["select"](str(bundle), facts("linux", "x86_64", glibc=[2, 28])) == [str(bundle / "a")]
    with pytest.raises(
        SEL["UnsupportedPlatform"],
        match=re.escape("need glibc 2.28 or newer, and this agent runs CPython 3.12 on Linux x86_64 (glibc 2.17)"),
    ):
        SEL["select"](str(bundle), facts("linux", "x86_64", glibc=[2, 17]))


def test_macos_version(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path, {"macosx_arm64-cp312": {"path": ["m"], "requires": {"macos": [11, 0]}}})
    assert SEL["select"](str(bundle), facts("darwin", "arm64", macos=[11, 0])) == [str(bundle / "m")]
    # macOS 11+ reports 10.16 to Pythons built against an old SDK
    assert SEL["select"](str(bundle), facts("darwin", "arm64", macos=[10, 16])) == [str(bundle / "m")]
    with pytest.raises(SEL["UnsupportedPlatform"], match="need macOS 11.0 or newer"):
        SEL["select"](str(bundle), facts("darwin", "arm64", macos=[10, 15]))


def test_missing_folder_is_an_incomplete_install(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path, {"linux_x86_64-cp312": {"path": ["a", "b"], "requires": {}}})
    (bundle / "b").rmdir()
    with pytest.raises(
        SEL["UnsupportedPlatform"], match=re.escape("the task folder is incomplete: b for CPython 3.12 on Linux x86_64")
    ):
        SEL["select"](str(bundle), AGENTS["linux_x86_64"])


def test_interpreter_with_its_own_packages_is_used_as_is(tmp_path: Path) -> None:
    """No bundled build, but the interpreter has every dependency installed (pip): use those."""
    bundle = fake_bundle(tmp_path, {"linux_x86_64-cp312": {"path": ["a"], "requires": {}}}, imports=["json", "pytest"])
    assert SEL["select"](str(bundle), facts("linux", "riscv64")) == []
    (tmp_path / "partial").mkdir()
    partial = fake_bundle(tmp_path / "partial", {}, imports=["json", "surely_missing_module_xyz"])
    with pytest.raises(SEL["UnsupportedPlatform"]):
        SEL["select"](str(partial), facts("linux", "riscv64"))


# ------------------------------------------------------------------------------- the real built bundle


def test_every_supported_agent_has_a_complete_target(deps: Path, manifest: dict[str, Any]) -> None:
    assert sorted(manifest["platforms"]) == sorted(AGENTS)
    assert manifest["pythons"][0] == "3.9"
    imports = set(manifest["imports"])
    assert {"requests", "jwt", "azure", "msal", "cryptography", "_cffi_backend", "jinja2", "markupsafe"} <= imports
    for plat, agent in AGENTS.items():
        for python in manifest["pythons"]:
            major, minor = (int(x) for x in python.split("."))
            folders = [Path(p) for p in SEL["select"](str(deps), dict(agent, version=[major, minor]))]
            seen: dict[str, Path] = {}
            for folder in folders:
                assert folder.parent == deps and folder.is_dir()
                for entry in folder.iterdir():
                    name = entry.name.split(".")[0]
                    if entry.name.endswith(".dist-info"):
                        continue
                    assert name not in seen, f"{plat} {python}: {name} in {seen.get(name)} and {folder}"
                    seen[name] = folder
            assert set(seen) == imports, f"{plat} {python}: missing {imports - set(seen)}"


def test_requirements_recorded_are_the_projects(manifest: dict[str, Any]) -> None:
    import sys

    sys.path.append(str(ROOT / "packaging"))
    from bundle_deps import CLI_ONLY, task_requirements

    assert manifest["requirements"] == task_requirements()[0]
    assert not [r for r in manifest["requirements"] if any(r.startswith(name) for name in CLI_ONLY)]


def _machine_of(blob: bytes) -> set[str]:
    """CPU architectures a compiled file is built for, from its header."""
    if blob[:4] == b"\x7fELF":
        machine = struct.unpack_from("<H", blob, 18)[0]
        return {{62: "x86_64", 183: "aarch64"}.get(machine, f"elf-{machine}")}
    if blob[:2] == b"MZ":
        pe = struct.unpack_from("<I", blob, 0x3C)[0]
        assert blob[pe : pe + 4] == b"PE\0\0"
        machine = struct.unpack_from("<H", blob, pe + 4)[0]
        return {{0x8664: "x86_64", 0xAA64: "aarch64", 0x14C: "x86"}.get(machine, f"pe-{machine:x}")}
    cpu = {0x01000007: "x86_64", 0x0100000C: "aarch64"}
    if blob[:4] == b"\xcf\xfa\xed\xfe":  # thin 64-bit Mach-O, little-endian
        return {cpu.get(struct.unpack_from("<I", blob, 4)[0], "macho-?")}
    if blob[:4] == b"\xca\xfe\xba\xbe":  # universal (fat) Mach-O, big-endian header
        count = struct.unpack_from(">I", blob, 4)[0]
        return {cpu.get(struct.unpack_from(">I", blob, 8 + 20 * i)[0], "macho-?") for i in range(count)}
    return {"unknown"}


#: platform -> (binary format check, architecture the agent runs)
EXPECTED = {
    "linux_x86_64": (b"\x7fELF", "x86_64"),
    "linux_aarch64": (b"\x7fELF", "aarch64"),
    "win_amd64": (b"MZ", "x86_64"),
    "macosx_arm64": (b"", "aarch64"),
    "macosx_x86_64": (b"", "x86_64"),
}


def test_compiled_files_match_each_target(deps: Path, manifest: dict[str, Any]) -> None:
    """Every .so/.pyd a target can load is for its OS and CPU, and per-Python ones for its Python."""
    checked = 0
    for key, target in manifest["targets"].items():
        plat, cp = key.rsplit("-", 1)
        magic, arch = EXPECTED[plat]
        for name in target["path"]:
            for path in (deps / name).rglob("*"):
                if path.suffix not in (".so", ".pyd"):
                    continue
                blob = path.read_bytes()
                if magic:
                    assert blob.startswith(magic), f"{key}: {path} is not a {plat} binary"
                else:
                    assert blob[:4] in (b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe"), f"{key}: {path} is not Mach-O"
                assert arch in _machine_of(blob), f"{key}: {path.relative_to(deps)} is built for {_machine_of(blob)}"
                tag = re.search(r"\.(cpython-(\d+)|cp(\d+))-", path.name)
                if tag:  # a per-Python build: it must be this target's Python
                    assert (tag[2] or tag[3]) == cp[2:], f"{key}: {path.name}"
                else:
                    assert "abi3" in path.name or plat == "win_amd64", f"{key}: {path.name} has no ABI tag"
                checked += 1
    assert checked >= 2 * len(manifest["targets"])  # at least cryptography and _cffi_backend each


def test_elf_extensions_are_stripped_but_loadable_here(deps: Path) -> None:
    """Linux builds lose their symbol tables (size) but keep the dynamic ones (this machine loads them)."""
    so = next((deps / "linux_x86_64-py3").rglob("_rust.abi3.so"))
    blob = so.read_bytes()
    assert b".dynsym" in blob and b".symtab" not in blob
