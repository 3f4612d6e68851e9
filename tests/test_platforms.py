"""Every agent the task may land on: the platforms with no bundled build run from the portable part.

Simulated, since only Linux x64 runs here:
- the selector (packaging/selector.py, shipped as task/deps/select.py) is given the facts musl/Alpine,
  32-bit ARM, a Python newer than the bundle, an old glibc, PyPy, Windows and macOS report, against a
  manifest shaped like the one ``make package`` writes;
- end to end, the real launcher runs the task from a task folder whose bundle has no build for this
  machine (its manifest lists other platforms only) and whose portable group holds only pure-Python
  code, with an interpreter that sees no site-packages (``-S``): AWS, Google Cloud and Vault succeed;
  Azure and Key Vault fail at once with one error naming the missing compiled distribution.
"""

from __future__ import annotations

import json
import shutil
import stat
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Vaulted
from tests.harness import ROOT, AgentJob, TaskRun
from tests.openbao import OpenBao
from tests.standins.ado import AzureDevOps
from tests.standins.entra import AzureWorld
from tests.test_aws_e2e import aws_job
from tests.test_gcp import GcpWorld, gcp  # noqa: F401 - the Google Cloud stand-in fixture
from tests.test_package_select import facts, load_selector
from tests.test_vault import make_world as vault_world

PY = ["3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15"]
PLATFORMS = ["linux_x86_64", "linux_aarch64", "win_amd64", "macosx_arm64", "macosx_x86_64"]
#: the pure-Python distributions of the task's dependency set, by top-level import name
PURE = [
    "requests",
    "urllib3",
    "idna",
    "certifi",
    "charset_normalizer",
    "jwt",
    "azure",
    "msal",
    "msal_extensions",
    "jinja2",
]
COMPILED = {"cryptography": "cryptography", "_cffi_backend": "cffi", "cffi": "cffi", "markupsafe": "markupsafe"}


def manifest(platforms: list[str]) -> dict[str, Any]:
    """A manifest shaped like bundle_deps' for ``platforms``; portable: ``any-py3`` for every Python."""
    targets = {
        f"{p}-cp{v.replace('.', '')}": {"path": [f"{p}-cp{v.replace('.', '')}", "any-py3"], "requires": {}}
        for p in platforms
        for v in PY
    }
    return {
        "format": 1,
        "platforms": {p: p for p in platforms},
        "pythons": PY,
        "targets": targets,
        "imports": sorted([*PURE, *COMPILED]),
        "requirements": ["requests>=2.31", "azure-identity>=1.17"],
        "portable": {v: ["any-py3"] for v in PY},
        "compiled": COMPILED,
    }


def deps_dir(tmp_path: Path, platforms: list[str]) -> Path:
    folder = tmp_path / "deps"
    for name in ["any-py3", *(f"{p}-cp{v.replace('.', '')}" for p in platforms for v in PY)]:
        (folder / name).mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(manifest(platforms)), encoding="utf-8")
    return folder


# --------------------------------------------------------------------------------------- the selector


def selector() -> dict[str, Any]:
    """The selector as entry.py loads it, on an agent whose Python has none of the dependencies itself."""
    sel = load_selector()
    sel["_own_packages"] = lambda _manifest: False
    return sel


@pytest.mark.parametrize(
    ("agent", "described"),
    [
        (facts("linux", "x86_64", glibc=None), "Linux x86_64 (not glibc, e.g. musl on Alpine)"),
        (facts("linux", "armv7l", bits=32), "(32-bit) on Linux armv7l"),
        (facts("linux", "x86_64", (3, 16)), "CPython 3.16 on Linux x86_64"),
        (facts("linux", "riscv64"), "Linux riscv64"),
        (facts("linux", "x86_64", implementation="pypy"), "PyPy 3.12"),
        (facts("linux", "x86_64", glibc=[2, 12]), "glibc 2.12"),
    ],
    ids=["musl", "arm32", "python-3.16", "riscv64", "pypy", "old-glibc"],
)
def test_an_agent_with_no_bundled_build_gets_the_portable_part(
    tmp_path: Path, agent: dict[str, Any], described: str
) -> None:
    sel = selector()
    deps = deps_dir(tmp_path, PLATFORMS)
    if agent["glibc"] == [2, 12]:  # builds that need glibc 2.17
        data = json.loads((deps / "manifest.json").read_text())
        for target in data["targets"].values():
            target["requires"] = {"glibc": [2, 17]}
        (deps / "manifest.json").write_text(json.dumps(data))
    assert sel["select"](str(deps), agent) == [str(deps / "any-py3")]
    limited = sel["LIMITED"]
    assert described in limited["agent"] and limited["compiled"]["cryptography"] == "cryptography"
    assert limited["python"] == "/agent/python3"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_supported_agent_gets_its_build_and_no_limit(tmp_path: Path, platform: str) -> None:
    sel = selector()
    agent = {
        "linux_x86_64": facts("linux", "x86_64"),
        "linux_aarch64": facts("linux", "aarch64"),
        "win_amd64": facts("win32", "AMD64"),
        "macosx_arm64": facts("darwin", "arm64"),
        "macosx_x86_64": facts("darwin", "x86_64"),
    }[platform]
    deps = deps_dir(tmp_path, PLATFORMS)
    assert sel["select"](str(deps), agent) == [str(deps / f"{platform}-cp312"), str(deps / "any-py3")]
    assert sel["LIMITED"] == {}


def test_the_nearest_bundled_python_decides_the_portable_part(tmp_path: Path) -> None:
    sel = selector()
    deps = deps_dir(tmp_path, PLATFORMS)
    data = json.loads((deps / "manifest.json").read_text())
    data["portable"] = {"3.9": ["any-cp39", "any-py3"], "3.10": ["any-cp310", "any-py3"]}
    (deps / "manifest.json").write_text(json.dumps(data))
    for name in ("any-cp39", "any-cp310"):
        (deps / name).mkdir()
    musl = {"glibc": None}
    assert sel["select"](str(deps), facts("linux", "x86_64", (3, 16), **musl))[0].endswith("any-cp310")
    assert sel["select"](str(deps), facts("linux", "x86_64", (3, 9), **musl))[0].endswith("any-cp39")


def test_without_a_portable_part_the_old_one_line_error_stays(tmp_path: Path) -> None:
    sel = selector()
    deps = deps_dir(tmp_path, PLATFORMS)
    data = json.loads((deps / "manifest.json").read_text())
    del data["portable"]
    (deps / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(sel["UnsupportedPlatform"], match="has no build of its dependencies for CPython 3.12"):
        sel["select"](str(deps), facts("linux", "x86_64", glibc=None))


def test_bundle_deps_computes_the_portable_groups() -> None:
    sys.path.insert(0, str(ROOT / "packaging"))
    try:
        import bundle_deps as bd
    finally:
        sys.path.remove(str(ROOT / "packaging"))
    targets = bd.all_targets()
    everyone = frozenset(targets)
    groups = {
        "any-py3": everyone,
        "any-cp39": frozenset(t for t in targets if t.python == "3.9"),
        "linux_x86_64-cp39": frozenset(t for t in targets if t.key == "linux_x86_64-cp39"),
        "win_amd64-py3": frozenset(t for t in targets if t.platform == "win_amd64"),
    }
    portable = bd.portable_paths(groups, targets)
    assert portable["3.9"] == ["any-cp39", "any-py3"]
    assert portable["3.15"] == ["any-py3"]


# ---------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def portable_task(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A task folder whose bundle has no build for this machine, and an interpreter without site-packages."""
    root = tmp_path_factory.mktemp("portable-task")
    task = root / "task"
    task.mkdir()
    for name in ("launcher.js", "post.js", "entry.py"):
        shutil.copy2(ROOT / "task" / name, task / name)
    shutil.copytree(
        ROOT / "task" / "oidc_credentials", task / "oidc_credentials", ignore=shutil.ignore_patterns("__pycache__")
    )
    deps = task / "deps"
    deps.mkdir()
    shutil.copy2(ROOT / "packaging" / "selector.py", deps / "select.py")
    others = ["win_amd64", "macosx_arm64"]  # not this machine
    (deps / "manifest.json").write_text(json.dumps(manifest(others)), encoding="utf-8")
    for p in others:
        for v in PY:
            (deps / f"{p}-cp{v.replace('.', '')}").mkdir()
    group = deps / "any-py3"
    site = Path(sysconfig.get_paths()["purelib"])
    compiled = (".so", ".pyd", ".dylib")
    for name in PURE:
        source = site / name
        shutil.copytree(
            source,
            group / name,
            ignore=lambda _d, names: [n for n in names if n.endswith(compiled) or n == "__pycache__"],
        )
    shutil.copy2(site / "typing_extensions.py", group / "typing_extensions.py")
    assert not list(group.rglob("*.so"))
    wrapper = root / "python-no-site"
    # not a shell script: sh drops the agent's variables whose names hold '-' (ENDPOINT_URL_<guid>)
    wrapper.write_text(
        f"#!{sys.executable} -S\nimport os, sys\nos.execv(sys.executable, [sys.executable, '-S', *sys.argv[1:]])\n",
        encoding="utf-8",
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return task, str(wrapper)


def run_portable(portable: tuple[Path, str], job: AgentJob) -> TaskRun:
    import subprocess

    task, python = portable
    env = dict(job.env, OIDC_CREDENTIALS_PYTHON=python, SYSTEM_DEBUG="true")
    proc = subprocess.run(
        ["node", str(task / "launcher.js")], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    return TaskRun.from_output(proc.returncode, proc.stdout, proc.stderr)


def test_the_interpreter_really_lacks_the_compiled_parts(portable_task: tuple[Path, str]) -> None:
    import subprocess

    _task, python = portable_task
    done = subprocess.run([python, "-c", "import requests"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "No module named 'requests'" in done.stderr


def test_aws_runs_from_the_portable_part(
    portable_task: tuple[Path, str], ado: AzureDevOps, job: AgentJob, moto_url: str
) -> None:
    run = run_portable(portable_task, aws_job(job, ado, moto_url))
    assert not run.failed, run.stdout + run.stderr
    assert run.variables["AWS_ACCESS_KEY_ID"] and run.warnings == []
    assert "platform-independent part only" in run.text  # the debug line says which part runs
    assert "No run summary: it needs markupsafe" in run.text  # jinja2's compiled dependency: debug only


def test_google_cloud_runs_from_the_portable_part(
    portable_task: tuple[Path, str],
    gcp: GcpWorld,  # noqa: F811
    job: AgentJob,
) -> None:
    run = run_portable(portable_task, gcp.job(job))
    assert not run.failed, run.stdout + run.stderr
    assert run.variables["GOOGLE_OAUTH_ACCESS_TOKEN"]


def test_vault_runs_from_the_portable_part(
    portable_task: tuple[Path, str], openbao: OpenBao, ado: AzureDevOps, job: AgentJob
) -> None:
    run = run_portable(portable_task, vault_world(openbao, ado).job(job))
    assert not run.failed, run.stdout + run.stderr
    assert run.variables["VAULT_TOKEN"]


def _assert_names_the_missing_piece(run: TaskRun) -> None:
    assert run.failed and run.variables == {} and run.task_variables == {}
    assert len(run.errors) == 1, run.errors
    error = run.errors[0]
    assert error.startswith("This provider needs cryptography, which has compiled code"), error
    assert "Windows" not in error or "win_amd64" in error  # the supported list comes from the manifest
    assert "AWS, Google Cloud, Vault" in error and "OIDC_CREDENTIALS_PYTHON" in error
    assert "Traceback" not in run.stdout + run.stderr


def test_azure_names_the_one_missing_piece_before_any_request(
    portable_task: tuple[Path, str], world: AzureWorld, ado: AzureDevOps, job: AgentJob
) -> None:
    world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id))
    run = run_portable(portable_task, job)
    _assert_names_the_missing_piece(run)
    assert ado.issued == []  # failed before asking Azure DevOps for a token


def test_key_vault_names_the_one_missing_piece(portable_task: tuple[Path, str], kv: Vaulted, job: AgentJob) -> None:
    run = run_portable(portable_task, kv.job(job))
    _assert_names_the_missing_piece(run)


# --------------------------------------------------------------------------- Windows and macOS, simulated


def test_windows_paths_inside_the_temp_directory() -> None:
    """Agent.TempDirectory on Windows: drive letters, either separator, names compared without case."""
    import ntpath

    from oidc_credentials.files import inside

    temp = r"D:\a\_work\_temp"
    assert inside(r"D:\a\_work\_temp\oidc-credentials\gcp.json", temp, ntpath)
    assert inside("d:/A/_WORK/_temp/oidc-credentials/gcp.json", temp, ntpath)
    assert not inside(r"D:\a\_work\_temp\..\s\gcp.json", temp, ntpath)
    assert not inside(r"C:\a\_work\_temp\gcp.json", temp, ntpath)  # another drive
    assert not inside(r"D:\a\_work\_temp2\gcp.json", temp, ntpath)
    assert not inside(temp, temp, ntpath)


def test_files_are_written_where_the_platform_has_no_nofollow_fchmod_or_uids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows has no O_NOFOLLOW, fchmod or geteuid: the write still happens whole, links are still refused
    (lstat), and the owner-only protection is the folder's inherited access list (README, Security notes)."""
    import os

    from oidc_credentials.files import UnsafePath, write_private

    for name in ("O_NOFOLLOW", "fchmod", "geteuid"):
        monkeypatch.delattr(os, name, raising=False)
    path = tmp_path / "oidc-credentials" / "gcp.json"
    write_private(str(path), "{}\r\n", root=str(tmp_path))
    assert path.read_bytes() == b"{}\r\n"
    monkeypatch.undo()
    link = tmp_path / "oidc-credentials" / "link.json"
    link.symlink_to(path)
    for name in ("O_NOFOLLOW", "fchmod", "geteuid"):
        monkeypatch.delattr(os, name, raising=False)
    with pytest.raises(UnsafePath, match="it is a symbolic link"):
        write_private(str(link), "x", root=str(tmp_path))


@pytest.mark.parametrize(
    ("platform", "tried"),
    [("win32", ["python3", "python", "py -3"]), ("darwin", ["python3", "python"]), ("linux", ["python3", "python"])],
)
def test_interpreter_discovery_per_platform(platform: str, tried: list[str]) -> None:
    """What the launcher tries on each platform, in order (their behaviour with fake interpreters, Windows
    Store stubs included: tests/test_launcher.py)."""
    import subprocess

    script = (
        "const l = require(process.argv[1]);"
        "console.log(JSON.stringify(l.candidates({}, process.argv[2]).map(c => c[2])));"
    )
    done = subprocess.run(
        ["node", "-e", script, str(ROOT / "task" / "launcher.js"), platform],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(done.stdout) == tried


def windows_argv(line: str) -> list[str]:
    """How a Windows program's C runtime (CommandLineToArgvW) splits a command line: the program name up to
    its closing quote; then backslashes are literal unless they precede a quote (2n: n backslashes and the
    quote delimits; 2n+1: n backslashes and a literal quote), and "" inside quotes is a literal quote."""
    i, n, args = 0, len(line), []
    while i < n and line[i] in " \t":
        i += 1
    if line[i] == '"':
        end = line.index('"', i + 1)
        args.append(line[i + 1 : end])
        i = end + 1
    else:
        end = i
        while end < n and line[end] not in " \t":
            end += 1
        args.append(line[i:end])
        i = end
    while True:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            return args
        current, quoted = "", False
        while i < n:
            c = line[i]
            if c == "\\":
                k = i
                while k < n and line[k] == "\\":
                    k += 1
                count = k - i
                if k < n and line[k] == '"':
                    current += "\\" * (count // 2)
                    if count % 2:
                        current += '"'
                        k += 1
                    i = k
                else:
                    current += "\\" * count
                    i = k
                continue
            if c == '"':
                if quoted and i + 1 < n and line[i + 1] == '"':
                    current += '"'
                    i += 2
                    continue
                quoted = not quoted
                i += 1
                continue
            if c in " \t" and not quoted:
                break
            current += c
            i += 1
        args.append(current)


@pytest.mark.parametrize(
    "argv",
    [
        [
            r"C:\hostedtoolcache\windows\Python\3.12.7\x64\python.exe",
            r"D:\a\_work\_tasks\OidcCredentials_0b2f\1.0.0\task\entry.py",
            "helper",
            "aws",
            r"D:\a\_work\_temp\oidc-credentials\helper-41e2\helper.json",
        ],
        [
            r"C:\Program Files\Python312\python.exe",
            r"E:\agent work (x86)\_tasks\a&b^c\task\entry.py",
            "helper",
            "aws",
            r"E:\agent work (x86)\_temp\oidc-credentials\hélper 1\helper.json",
        ],
    ],
    ids=["hosted", "spaces-and-cmd-characters"],
)
def test_the_windows_helper_command_line_reads_back_as_windows_splits_it(argv: list[str]) -> None:
    """The AWS helper's credential_process on a Windows agent (helper_setup.command_line, windows=True):
    the C runtime of python.exe gets back exactly the arguments, spaces, parentheses, & and ^ included."""
    from oidc_credentials import helper_setup

    line = helper_setup.command_line(argv, windows=True)
    assert windows_argv(line) == argv
    assert windows_argv('"C:\\p q\\python.exe" "a\\\\" b\\"c "x""y"') == ["C:\\p q\\python.exe", "a\\", 'b"c', 'x"y']
