"""The .vsix alone is enough: extract it into an empty folder and run the task from there as the agent does.

``node <extracted>/<execution target>`` with a fresh venv's Python that has no packages at all (the
bundle must provide every dependency), a fresh HOME and temp dir, and every non-loopback request sent
to a dead proxy, against the local stand-ins (Azure DevOps, moto STS, Entra). Then the same with every
bundled folder this machine does not need removed, which shows the selection picks the right ones,
and with this machine's own folders removed or unlisted, which must fail with one clear line.

The .vsix is built by ``make package`` (``make test`` does it first); run alone, the ``vsix`` fixture
builds it when it is missing or older than its sources.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import requests

from tests.harness import ROOT, AgentJob, TaskRun, caller_arn, find_python
from tests.standins.ado import AzureDevOps
from tests.standins.entra import AzureWorld
from tests.standins.server import LocalCA

DIST = ROOT / "dist"
TASK = "OidcCredentials"
ROLE = "arn:aws:iam::123456789012:role/ado-deploy"
#: what the package is built from: a newer file here means the .vsix is stale
SOURCES = ["task", "packaging", "task.json", "vss-extension.json", "overview.md", "pyproject.toml"]


def _newest_source() -> float:
    """The newest mtime of what goes into the .vsix (not build byproducts such as egg-info or bytecode)."""
    newest = 0.0
    for name in SOURCES:
        path = ROOT / name
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            parts = file.relative_to(ROOT).parts
            if (
                "__pycache__" in parts
                or parts[:2] == ("task", "deps")
                or any(part.endswith(".egg-info") for part in parts)
            ):
                continue
            newest = max(newest, file.stat().st_mtime)
    return newest


def packaged_vsix() -> Path:
    """dist/*.vsix, built first if missing or stale (one builder at a time across xdist workers)."""
    (ROOT / "build").mkdir(exist_ok=True)
    with open(ROOT / "build" / ".package.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = sorted(DIST.glob("*.vsix"))
        if len(found) != 1 or found[0].stat().st_mtime < _newest_source():
            proc = subprocess.run(
                [sys.executable, str(ROOT / "packaging" / "make_package.py"), "--skip-python"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr
            found = sorted(DIST.glob("*.vsix"))
        assert len(found) == 1, found
        return found[0]


@pytest.fixture(scope="session")
def vsix() -> Path:
    return packaged_vsix()


def extract_task(vsix: Path, into: Path) -> Path:
    """What the agent has after downloading the task: the contributed folder, unzipped (no exec bits)."""
    with zipfile.ZipFile(vsix) as archive:
        members = [n for n in archive.namelist() if n.startswith(TASK + "/")]
        archive.extractall(into, members)
    return into / TASK


def bare_python(version: str, where: Path) -> Path:
    """A fresh venv of that CPython with no packages (not even pip)."""
    if version == "current":
        base = Path(sys.executable)
    else:
        found = find_python(version)
        if not found:
            pytest.skip(f"no CPython {version} found on this machine (set OIDC_CREDENTIALS_PYTHONS to one)")
        base = Path(found)
    venv = where / f"venv-{version}"
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import requests"], capture_output=True, text=True, check=False)
    assert probe.returncode != 0, "the bare venv must not be able to import the task's dependencies"
    return python


class Agent:
    """A fresh agent machine: an extracted task folder, a bare Python on PATH, fresh HOME and temp."""

    def __init__(self, vsix: Path, root: Path, python: Path) -> None:
        self.root = root
        self.task_dir = extract_task(vsix, root / "_tasks")
        self.python = python
        self.home = root / "home"
        self.tmp = root / "tmp"
        for folder in (self.home, self.tmp):
            folder.mkdir()
        task = json.loads((self.task_dir / "task.json").read_text(encoding="utf-8"))
        self.target = self.task_dir / task["execution"]["Node20_1"]["target"]
        assert task["execution"]["Node24"]["target"] == task["execution"]["Node20_1"]["target"]

    @property
    def deps(self) -> Path:
        return self.task_dir / "task" / "deps"

    def run(self, job: AgentJob, *, debug: bool = True) -> TaskRun:
        env = dict(job.env)
        env.pop("OIDC_CREDENTIALS_PYTHON", None)  # found on PATH, as UsePythonVersion@0 leaves it
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # the agent does not set it: first run compiles
        env.update(
            {
                "PATH": f"{self.python.parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
                "HOME": str(self.home),
                "TMPDIR": str(self.tmp),
                "TEMP": str(self.tmp),
                "TMP": str(self.tmp),
                # no network but the local stand-ins: anything else goes to a port nobody listens on
                "HTTPS_PROXY": "http://127.0.0.1:9",
                "HTTP_PROXY": "http://127.0.0.1:9",
                "NO_PROXY": "127.0.0.1,localhost",
                "PIP_NO_INDEX": "1",
                "SYSTEM_DEBUG": "true" if debug else "false",
            }
        )
        node = shutil.which("node")
        assert node
        proc = subprocess.run(
            [node, str(self.target)], env=env, cwd=self.root, capture_output=True, text=True, timeout=120, check=False
        )
        return TaskRun.from_output(proc.returncode, proc.stdout, proc.stderr)

    def folders_used(self, run: TaskRun) -> list[str]:
        line = next(line for line in run.log if "bundled dependency folders:" in line)
        assert f"at {self.python}" in line, line  # the bare venv's Python ran the task
        return line.split("bundled dependency folders: ", 1)[1].split(", ")

    def target_key(self) -> str:
        out = subprocess.run(
            [
                str(self.python),
                "-c",
                "import sys; ns={}; exec(open(sys.argv[1]).read(), ns); print(ns['target_key'](ns['probe']()))",
                str(self.deps / "select.py"),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def manifest(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.deps / "manifest.json").read_text(encoding="utf-8"))
        return data


def aws_flow(agent: Agent, job: AgentJob, ado: AzureDevOps, moto_url: str) -> TaskRun:
    conn = ado.add_connection("aws-prod")
    job.inputs(provider="aws", awsConnection=conn.id, awsRegion="eu-west-1", awsSessionDuration="900")
    job.endpoint(conn.id, url=moto_url, scheme="None", params={"roleArn": ROLE})
    run = agent.run(job)
    assert run.returncode == 0 and not run.failed, run.stdout + run.stderr
    assert run.secret_names == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
    assert caller_arn(run, moto_url) == "arn:aws:sts::123456789012:assumed-role/ado-deploy/ado-4242-1"
    return run


def azure_flow(agent: Agent, job: AgentJob, world: AzureWorld, ca: LocalCA) -> TaskRun:
    world.endpoint(job.inputs(provider="azure", azureConnection=world.connection_id))
    run = agent.run(job)
    assert run.returncode == 0 and not run.failed, run.stdout + run.stderr
    assert "AZURE_ACCESS_TOKEN" in run.secret_names
    token = run.variables["AZURE_ACCESS_TOKEN"]
    resp = requests.get(
        f"{world.url}/subscriptions?api-version=2022-12-01",
        headers={"Authorization": f"Bearer {token}"},
        verify=ca.bundle,
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["value"][0]["subscriptionId"] == world.tenant.subscriptions[0]
    return run


def check_binary_imports(agent: Agent) -> dict[str, str]:
    """The compiled dependencies load from the bundle with the bare Python: module -> folder it came from."""
    code = """
import json, os, sys
ns = {"__file__": sys.argv[1]}
exec(open(sys.argv[1]).read(), ns)
folders = ns["select"](os.path.dirname(sys.argv[1]))
sys.path[:0] = folders
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import hashes
key = ec.generate_private_key(ec.SECP256R1())
key.public_key().verify(key.sign(b"x", ec.ECDSA(hashes.SHA256())), b"x", ec.ECDSA(hashes.SHA256()))
import _cffi_backend, markupsafe, jinja2, azure.identity, msal, requests, jwt
from cryptography.hazmat.bindings import _rust
assert markupsafe.escape("<") == "&lt;"
mods = {"_rust": _rust, "_cffi_backend": _cffi_backend, "markupsafe._speedups": sys.modules.get("markupsafe._speedups"),
        "azure.identity": azure.identity, "requests": requests}
print(json.dumps({k: os.path.basename(os.path.relpath(m.__file__, os.path.dirname(sys.argv[1])).split(os.sep)[0]) if m else None for k, m in mods.items()}))
"""
    proc = subprocess.run(
        [str(agent.python), "-I", "-c", code, str(agent.deps / "select.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, str] = json.loads(proc.stdout)
    return result


# ---------------------------------------------------------------------------------------------- tests


def test_vsix_layout(vsix: Path) -> None:
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
        manifest = archive.read("extension.vsomanifest").decode("utf-8")
    assert {"extension.vsixmanifest", "extension.vsomanifest", "overview.md", f"{TASK}/task.json"} <= names
    for required in ("launcher.js", "entry.py", "oidc_credentials/__main__.py", "deps/select.py", "deps/manifest.json"):
        assert f"{TASK}/task/{required}" in names, required
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".egg-info"))]
    assert not [n for n in names if n.startswith(f"{TASK}/task/deps/") and n.endswith("RECORD")]
    assert '"name":"OidcCredentials"' in manifest.replace(" ", "")
    assert vsix.stat().st_size <= 40_000_000
    # the human CLI and the verifier library are for `pip install`; the task never imports them
    package = f"{TASK}/task/oidc_credentials/"
    for left_out in ("cli.py", "commands/__init__.py", "ado_admin.py", "verify.py"):
        assert package + left_out not in names, left_out
    assert package + "modes/helper.py" in names and package + "claims.py" in names


def test_a_package_for_another_publisher(vsix: Path, tmp_path: Path) -> None:
    """`make package PUBLISHER=contoso-devops EXTENSION_ID=oidc-contoso`, as an admin builds it for their own
    publisher: the .vsix is that publisher's, and holds the same task as the default build."""
    (ROOT / "build").mkdir(exist_ok=True)
    with open(ROOT / "build" / ".package.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the stage folder is shared with the default build
        proc = subprocess.run(
            [sys.executable, str(ROOT / "packaging" / "make_package.py"), "--skip-python", "--output", str(tmp_path)],
            cwd=ROOT,
            env=dict(os.environ, PUBLISHER="contoso-devops", EXTENSION_ID="oidc-contoso"),
            capture_output=True,
            text=True,
            check=False,
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built = sorted(tmp_path.glob("*.vsix"))
    assert [p.name for p in built] == [
        vsix.name.replace("oidc-credentials.oidc-credentials-", "contoso-devops.oidc-contoso-")
    ]
    with zipfile.ZipFile(built[0]) as mine, zipfile.ZipFile(vsix) as default:
        identity = re.search(r"<Identity [^>]*>", mine.read("extension.vsixmanifest").decode("utf-8"))
        assert identity and 'Id="oidc-contoso"' in identity[0] and 'Publisher="contoso-devops"' in identity[0]
        task_files = sorted(n for n in mine.namelist() if n.startswith(TASK + "/"))
        assert task_files == sorted(n for n in default.namelist() if n.startswith(TASK + "/"))
        assert mine.read(f"{TASK}/task.json") == default.read(f"{TASK}/task.json")
        assert {"images/icon.png", f"{TASK}/icon.png"} <= set(mine.namelist())


@pytest.mark.parametrize("version", ["3.9", "3.10", "current", "3.12", "3.13"])
def test_aws_from_the_extracted_package(
    vsix: Path, tmp_path: Path, ado: AzureDevOps, job: AgentJob, moto_url: str, version: str
) -> None:
    agent = Agent(vsix, tmp_path, bare_python(version, tmp_path))
    run = aws_flow(agent, job, ado, moto_url)
    key = agent.target_key()
    manifest = agent.manifest()
    assert agent.folders_used(run) == manifest["targets"][key]["path"]  # type: ignore[index]
    assert any((agent.task_dir / "task" / "oidc_credentials").rglob("*.pyc")), (
        "the first run compiles into the task folder"
    )


def test_aws_helper_from_the_extracted_package(
    vsix: Path, tmp_path: Path, ado: AzureDevOps, job: AgentJob, moto_url: str
) -> None:
    """The profile's credential_process runs the extracted task with the agent's bare Python: warm, then cold."""
    import configparser
    import shlex

    agent = Agent(vsix, tmp_path, bare_python("current", tmp_path))
    run = aws_flow(agent, job, ado, moto_url)
    parser = configparser.RawConfigParser()
    parser.read(run.variables["AWS_CONFIG_FILE"])
    argv = shlex.split(parser.get("profile " + run.variables["AWS_PROFILE"], "credential_process"))
    assert Path(argv[0]).parent == agent.python.parent and Path(argv[1]).is_relative_to(agent.task_dir), argv
    env = {
        "PATH": f"{agent.python.parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(agent.home),
        "SYSTEM_ACCESSTOKEN": ado.access_token,
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
        "REQUESTS_CA_BUNDLE": job.env["REQUESTS_CA_BUNDLE"],
    }
    keys = []
    for _ in ("warm: the cache the task seeded", "cold: a fresh token and a new exchange"):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        answer = json.loads(proc.stdout)
        assert answer["Version"] == 1 and answer["SessionToken"] and answer["Expiration"]
        keys.append(answer["AccessKeyId"])
        (Path(argv[-1]).parent / "cache.json").unlink()
    assert keys[0] == run.variables["AWS_ACCESS_KEY_ID"] and keys[1] != keys[0]


@pytest.mark.parametrize("version", ["3.9", "current", "3.13"])
def test_azure_from_the_extracted_package(
    vsix: Path, tmp_path: Path, ca: LocalCA, job: AgentJob, world: AzureWorld, version: str
) -> None:
    agent = Agent(vsix, tmp_path, bare_python(version, tmp_path))
    run = azure_flow(agent, job, world, ca)
    key = agent.target_key()
    assert agent.folders_used(run) == agent.manifest()["targets"][key]["path"]  # type: ignore[index]


@pytest.mark.parametrize("version", ["3.9", "3.10", "current", "3.12", "3.13"])
def test_compiled_dependencies_load_from_this_platforms_folders(vsix: Path, tmp_path: Path, version: str) -> None:
    agent = Agent(vsix, tmp_path, bare_python(version, tmp_path))
    key = agent.target_key()
    plat = key.rsplit("-", 1)[0]
    origin = check_binary_imports(agent)
    # cryptography's abi3 build serves every Python of the platform; cffi and MarkupSafe are per Python
    assert origin["_rust"].startswith(plat + "-") or origin["_rust"].startswith(plat + "+"), origin
    assert origin["_cffi_backend"] == key and origin["markupsafe._speedups"] == key, origin
    assert origin["azure.identity"].startswith("any-"), origin


def test_only_this_machines_folders(
    vsix: Path, tmp_path: Path, ado: AzureDevOps, job: AgentJob, moto_url: str, ca: LocalCA, world: AzureWorld
) -> None:
    """Every folder this interpreter does not need removed (other platforms and other Pythons): both flows work."""
    agent = Agent(vsix, tmp_path, bare_python("current", tmp_path))
    key = agent.target_key()
    manifest = agent.manifest()
    keep = set(manifest["targets"][key]["path"])  # type: ignore[index]
    removed = sorted(p.name for p in agent.deps.iterdir() if p.is_dir() and p.name not in keep)
    for name in removed:
        shutil.rmtree(agent.deps / name)
    plat = key.rsplit("-", 1)[0]
    others = {p for p in manifest["platforms"] if p != plat}  # type: ignore[attr-defined]
    assert others and all(any(name.startswith(other) for name in removed) for other in others)
    assert any(re.fullmatch(rf"{plat}-cp\d+", name) for name in removed)  # other Pythons of this platform
    aws_flow(agent, job, ado, moto_url)
    job2 = AgentJob(
        collection_uri=ado.collection_uri,
        oidc_request_uri=ado.oidc_request_uri,
        access_token=ado.access_token,
        project_id=ado.project_id,
        temp=tmp_path / "tmp",
    )
    job2.env["REQUESTS_CA_BUNDLE"] = ca.bundle
    run = azure_flow(agent, job2, world, ca)
    assert agent.folders_used(run) == manifest["targets"][key]["path"]  # type: ignore[index]


def test_this_machines_folder_missing_fails_in_one_line(
    vsix: Path, tmp_path: Path, ado: AzureDevOps, job: AgentJob, moto_url: str
) -> None:
    agent = Agent(vsix, tmp_path, bare_python("current", tmp_path))
    key = agent.target_key()
    shutil.rmtree(agent.deps / key)
    conn = ado.add_connection("aws-prod")
    job.inputs(provider="aws", awsConnection=conn.id).endpoint(
        conn.id, url=moto_url, scheme="None", params={"roleArn": ROLE}
    )
    run = agent.run(job)
    assert run.returncode == 0 and run.failed and len(run.errors) == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert (
        f"the task folder is incomplete: {key} for CPython {sys.version_info[0]}.{sys.version_info[1]} on Linux"
        in run.errors[0]
    )
    assert run.variables == {}


def test_platform_not_bundled_names_platform_and_fix(
    vsix: Path, tmp_path: Path, ado: AzureDevOps, job: AgentJob, moto_url: str
) -> None:
    """A bundle without this platform (the manifest lists no build for it) and without a portable part: one
    line, the platform, the fix. (With the portable part, see tests/test_package_platforms.py.)"""
    agent = Agent(vsix, tmp_path, bare_python("current", tmp_path))
    key = agent.target_key()
    manifest = agent.manifest()
    del manifest["targets"][key]  # type: ignore[attr-defined]
    del manifest["portable"]
    (agent.deps / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    conn = ado.add_connection("aws-prod")
    job.inputs(provider="aws", awsConnection=conn.id).endpoint(
        conn.id, url=moto_url, scheme="None", params={"roleArn": ROLE}
    )
    run = agent.run(job)
    assert run.returncode == 0 and run.failed and len(run.errors) == 1
    error = run.errors[0]
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert f"has no build of its dependencies for CPython {version} on Linux {platform.machine()} (glibc " in error, (
        error
    )
    assert "It bundles them for CPython 3.9 to 3.15 on Linux arm64 (glibc 2.17+), Linux x64 (glibc 2.17+)" in error
    assert (
        "UsePythonVersion@0" in error
        and "OIDC_CREDENTIALS_PYTHON" in error
        and f'{agent.python.parent / "python3"} -m pip install "requests>=2.31"' in error
    )
    assert run.variables == {} and "Traceback" not in run.stdout + run.stderr


def test_wheel_and_sdist_of_the_cli() -> None:
    """`make package` also builds the CLI's wheel and sdist: the package, its entry point, its dependencies."""
    from email.parser import HeaderParser

    sys.path.append(str(ROOT / "packaging"))
    from bundle_deps import project_requirements
    from versioning import read_version

    version = read_version()
    wheels = sorted(DIST.glob(f"oidc_credentials-{version}-py3-none-any.whl"))
    sdists = sorted(DIST.glob(f"oidc_credentials-{version}.tar.gz"))
    if not wheels or not sdists:
        pytest.skip("run `make package` (make test does) to build the wheel and sdist")
    sources = {p.relative_to(ROOT / "task").as_posix() for p in (ROOT / "task" / "oidc_credentials").rglob("*.py")}
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = set(wheel.namelist())
        info = f"oidc_credentials-{version}.dist-info"
        meta = HeaderParser().parsestr(wheel.read(f"{info}/METADATA").decode("utf-8"))
        entry_points = wheel.read(f"{info}/entry_points.txt").decode("utf-8")
    assert sources <= names, sources - names
    assert not [n for n in names if n.startswith(("tests/", "task/", "packaging/"))]
    assert meta["Name"] == "oidc-credentials" and meta["Version"] == version
    assert meta["Requires-Python"] == ">=3.9"
    runtime = sorted(r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r)
    assert runtime == sorted(r.replace(" ", "") for r in project_requirements()[0])
    assert "oidc-credentials = oidc_credentials.cli:main" in entry_points
    import tarfile

    with tarfile.open(sdists[0]) as sdist:
        members = sdist.getnames()
    assert f"oidc_credentials-{version}/pyproject.toml" in members
    assert f"oidc_credentials-{version}/task/oidc_credentials/__main__.py" in members
    assert not [m for m in members if "/tests/" in m]


def test_readme_says_which_size_limit_the_vsix_fits(vsix: Path) -> None:
    """The README's claim about Azure DevOps Server's 25 MiB upload limit stays true as dependencies change."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Packaging and installation", 1)[1].split("\n## ", 1)[0]
    size = vsix.stat().st_size
    if size <= 25 * 1024 * 1024:
        assert "within Azure DevOps Server's 25 MiB" in section
    else:
        assert "does not fit Azure DevOps Server's 25 MiB" in section
    stated = re.search(r"The \.vsix is \*\*([\d.]+) MB\*\*", section)
    assert stated, "the README states the size"
    assert abs(float(stated[1]) * 1e6 - size) < 1e6, f"README says {stated[1]} MB, the .vsix is {size / 1e6:.1f} MB"
