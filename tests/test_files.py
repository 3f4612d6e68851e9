"""Private files: 0600, never through a link, inside Agent.TempDirectory, whole or not at all, cleaned up.

The hostile cases are real, not simulated: symbolic links planted where the task will write (a file and a
folder), a file and a folder owned by another user (``chown`` to uid 65534: the suite runs as root here;
without root those tests skip and say so), a read-only temp folder and a full disk. A read-only folder
does not stop root (it bypasses permission bits), so the read-only case mounts a read-only tmpfs, and the
full disk is a 64 KiB tmpfs filled to the last byte; both need the right to mount (root, not in an
unprivileged container). Where mounting is refused, the full-disk case falls back to ``RLIMIT_FSIZE`` set
in the child process (``preexec_fn``), which makes the same writes fail with EFBIG, and says so.
End to end, the Google Cloud task (which writes two files and the post-job state) runs as the agent runs
it against each, and must fail with one error, set no variable and leave no file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from oidc_credentials.errors import TaskError
from oidc_credentials.files import UnsafePath, write_private

from tests.harness import AgentJob, TaskRun
from tests.test_gcp import GcpWorld, gcp  # noqa: F401 - the Google Cloud stand-in fixture

ROOT = Path(__file__).resolve().parent.parent
POST_JS = ROOT / "task" / "post.js"
OTHER_UID = 65534  # nobody
is_root = hasattr(os, "geteuid") and os.geteuid() == 0
needs_root = pytest.mark.skipif(not is_root, reason="needs root to chown a file to another user")


def everything(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def records(folder: Path) -> list[Path]:
    """The run summary and audit record, written on success and failure alike for the agent to upload
    (redacted, never a secret: tests/test_run_records.py); not credentials, so not the post-job step's."""
    return [p for p in folder.iterdir() if p.name.startswith("oidc-credentials-")]


def left_behind(folder: Path) -> list[str]:
    """Everything in ``folder`` except the run summary and audit record."""
    kept = records(folder)
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if not any(p == r or r in p.parents for r in kept)
    )


# ------------------------------------------------------------------------------------------ unit


def test_written_0600_in_0700_folders_exactly(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # a permissive umask: the modes must not depend on it
    try:
        path = tmp_path / "oidc-credentials" / "deep" / "secret.json"
        write_private(str(path), "line1\r\nline2\u2028", root=str(tmp_path))
    finally:
        os.umask(previous)
    assert path.read_bytes() == "line1\r\nline2\u2028".encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert everything(tmp_path) == ["oidc-credentials", "oidc-credentials/deep", "oidc-credentials/deep/secret.json"]


def test_rewriting_replaces_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_private(str(path), "a much longer first content", root=str(tmp_path))
    path.chmod(0o644)
    write_private(str(path), "short", root=str(tmp_path))
    assert path.read_text() == "short" and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_planted_symlink_file_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    link = tmp_path / "temp" / "secret.json"
    link.parent.mkdir()
    link.symlink_to(victim)
    with pytest.raises(UnsafePath, match=r"secret\.json: it is a symbolic link; remove it and re-run\.$"):
        write_private(str(link), "SECRET", root=str(tmp_path / "temp"))
    assert victim.read_text() == "keep me" and link.is_symlink()
    assert everything(tmp_path / "temp") == ["secret.json"]  # no temporary file left either


def test_a_planted_symlink_folder_is_refused_and_nothing_lands_behind_it(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    temp = tmp_path / "temp"
    temp.mkdir()
    (temp / "oidc-credentials").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UnsafePath, match=r"the folder .*oidc-credentials: it is a symbolic link"):
        write_private(str(temp / "oidc-credentials" / "gcp.json"), "SECRET", root=str(temp))
    assert everything(elsewhere) == []


def test_a_path_outside_the_temp_directory_is_refused(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    for path in (tmp_path / "outside.json", temp / ".." / "outside.json", temp):
        with pytest.raises(UnsafePath, match="outside Agent.TempDirectory"):
            write_private(str(path), "SECRET", root=str(temp))
    assert everything(tmp_path) == ["temp"]


@needs_root
def test_a_file_owned_by_another_user_is_refused_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "secret.json"
    path.write_text("theirs")
    os.chown(path, OTHER_UID, OTHER_UID)
    with pytest.raises(UnsafePath, match=rf"a file of that name belongs to another user \(uid {OTHER_UID}\)"):
        write_private(str(path), "SECRET", root=str(tmp_path))
    assert path.read_text() == "theirs" and path.stat().st_uid == OTHER_UID
    assert everything(tmp_path) == ["secret.json"]


@needs_root
def test_a_folder_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "oidc-credentials"
    folder.mkdir(mode=0o777)
    os.chown(folder, OTHER_UID, OTHER_UID)
    with pytest.raises(UnsafePath, match=r"the folder .*oidc-credentials belongs to another user"):
        write_private(str(folder / "secret.json"), "SECRET", root=str(tmp_path))
    assert everything(folder) == []


def _mount(where: Path, options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True, check=False
    )
    return done.returncode == 0


@contextlib.contextmanager
def mounted(where: Path, options: str) -> Iterator[bool]:
    """A tmpfs at ``where`` with ``options`` (True), or False when this machine refuses to mount."""
    ok = _mount(where, options)
    try:
        yield ok
    finally:
        if ok:
            subprocess.run(["umount", str(where)], capture_output=True, check=False)


def fill(folder: Path) -> None:
    """Fill the file system of ``folder`` to the last byte."""
    with open(folder / "filler", "wb", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 4096)
    # the last few bytes a 4 KiB write could not take
    with open(folder / "filler", "ab", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0")


def test_a_read_only_temp_directory_gives_one_clear_error(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    with mounted(temp, "ro,size=64k") as ok:
        if not ok:
            pytest.skip("this machine refuses to mount a tmpfs (not root, or a restricted container)")
        with pytest.raises(TaskError, match=r"Could not write the secret file .*: the file system is read-only\.$"):
            write_private(str(temp / "oidc-credentials" / "s.json"), "SECRET", root=str(temp))
        assert everything(temp) == []


def test_a_full_disk_gives_one_clear_error_and_leaves_no_partial_file(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    with mounted(temp, "size=64k") as ok:
        if not ok:
            pytest.skip("this machine refuses to mount a tmpfs; see test_a_file_size_limit_gives_one_clear_error")
        (temp / "oidc-credentials").mkdir()
        fill(temp)
        with pytest.raises(TaskError, match=r"Could not write the secret file .*: the disk is full\.$"):
            write_private(str(temp / "oidc-credentials" / "s.json"), "S" * 100_000, root=str(temp))
        assert everything(temp) == ["filler", "oidc-credentials"]


def test_a_file_size_limit_gives_one_clear_error(tmp_path: Path) -> None:
    """Where no tmpfs can be mounted, RLIMIT_FSIZE makes the write fail the same way (EFBIG)."""
    script = (
        "import sys\nfrom oidc_credentials.files import write_private\nfrom oidc_credentials.errors import TaskError\n"
        "try:\n    write_private(sys.argv[1], 'S' * 100000, root=sys.argv[2])\n"
        "except TaskError as exc:\n    print(exc.message)\n"
    )

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    target = tmp_path / "oidc-credentials" / "s.json"
    done = subprocess.run(
        [sys.executable, "-c", script, str(target), str(tmp_path)],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip()
        == f"Could not write the secret file {target}: the file is larger than the agent allows (file size limit)."
    )
    assert everything(tmp_path) == []  # nor the folder the failed write had created


# ------------------------------------------------------------------------------------- end to end


def run_gcp(world: GcpWorld, job: AgentJob) -> TaskRun:
    return world.job(job).run(timeout=120)


def assert_failed_cleanly(run: TaskRun, temp: Path, expected: str, left: list[str]) -> None:
    assert run.failed, run.text
    assert len(run.errors) == 1 and expected in run.errors[0], run.errors
    assert "Traceback" not in run.stdout + run.stderr
    assert run.variables == {} and run.output_variables == {} and run.task_variables == {}
    assert left_behind(temp) == left


def test_task_with_a_planted_symlink_folder_fails_cleanly(gcp: GcpWorld, job: AgentJob, tmp_path: Path) -> None:  # noqa: F811
    temp = Path(job.env["AGENT_TEMPDIRECTORY"])
    elsewhere = tmp_path / "attacker"
    elsewhere.mkdir()
    (temp / "oidc-credentials").symlink_to(elsewhere, target_is_directory=True)
    run = run_gcp(gcp, job)
    assert_failed_cleanly(run, temp, "oidc-credentials: it is a symbolic link", ["oidc-credentials"])
    assert everything(elsewhere) == []


@needs_root
def test_task_with_a_foreign_owned_folder_fails_cleanly(gcp: GcpWorld, job: AgentJob) -> None:  # noqa: F811
    temp = Path(job.env["AGENT_TEMPDIRECTORY"])
    (temp / "oidc-credentials").mkdir(mode=0o777)
    os.chown(temp / "oidc-credentials", OTHER_UID, OTHER_UID)
    run = run_gcp(gcp, job)
    assert_failed_cleanly(run, temp, "oidc-credentials belongs to another user", ["oidc-credentials"])


def test_task_on_a_read_only_temp_directory_fails_cleanly(gcp: GcpWorld, job: AgentJob) -> None:  # noqa: F811
    temp = Path(job.env["AGENT_TEMPDIRECTORY"])
    with mounted(temp, "ro,size=64k") as ok:
        if not ok:
            pytest.skip("this machine refuses to mount a tmpfs (not root, or a restricted container)")
        run = run_gcp(gcp, job)
        assert_failed_cleanly(run, temp, "the file system is read-only", [])


def test_task_on_a_full_disk_fails_cleanly(gcp: GcpWorld, job: AgentJob) -> None:  # noqa: F811
    temp = Path(job.env["AGENT_TEMPDIRECTORY"])
    with mounted(temp, "size=64k") as ok:
        if not ok:
            pytest.skip("this machine refuses to mount a tmpfs (not root, or a restricted container)")
        (temp / "oidc-credentials").mkdir()
        fill(temp)
        run = run_gcp(gcp, job)
        assert_failed_cleanly(run, temp, "the disk is full", ["filler", "oidc-credentials"])


def test_every_file_is_0600_inside_the_temp_directory_and_the_post_job_step_removes_all(
    gcp: GcpWorld,  # noqa: F811
    job: AgentJob,
) -> None:
    temp = Path(job.env["AGENT_TEMPDIRECTORY"])
    run = run_gcp(gcp, job)
    assert not run.failed, run.text
    files = [p for p in temp.rglob("*") if p.is_file()]
    # the token and credentials files, the credential helper's files, the post-job state, summary and audit record
    assert len(files) >= 5
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and not path.is_symlink()
    for folder in (p for p in temp.rglob("*") if p.is_dir()):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    state = run.task_variables["OIDC_CREDENTIALS_STATE"]
    credentials = {
        str(p) for p in files if p.name != "state.json" and not any(r in p.parents or r == p for r in records(temp))
    }
    recorded = json.loads(Path(state).read_text())["files"]
    assert recorded and set(recorded) <= credentials
    env = dict(job.env, VSTS_TASKVARIABLE_OIDC_CREDENTIALS_STATE=state)
    proc = subprocess.run(["node", str(POST_JS)], env=env, capture_output=True, text=True, timeout=60, check=False)
    post = TaskRun.from_output(proc.returncode, proc.stdout, proc.stderr)
    assert not post.failed, post.text
    assert [p for p in left_behind(temp) if (temp / p).is_file()] == []  # every credential file and the state gone


def test_the_post_job_step_deletes_nothing_outside_the_temp_directory(tmp_path: Path) -> None:
    from oidc_credentials.state import PostState, new_state_path, save

    temp = tmp_path / "temp"
    temp.mkdir()
    outside = tmp_path / "precious"
    outside.write_text("keep")
    path = new_state_path(str(temp))
    save(PostState(files=[str(outside)]), path, root=str(temp))
    env = {
        "PATH": os.environ["PATH"],
        "AGENT_TEMPDIRECTORY": str(temp),
        "VSTS_TASKVARIABLE_OIDC_CREDENTIALS_STATE": path,
        "OIDC_CREDENTIALS_PYTHON": sys.executable,
    }
    proc = subprocess.run(["node", str(POST_JS)], env=env, capture_output=True, text=True, timeout=60, check=False)
    post = TaskRun.from_output(proc.returncode, proc.stdout, proc.stderr)
    assert outside.read_text() == "keep"
    assert any("outside Agent.TempDirectory" in w for w in post.warnings), post.text


def test_uuid_is_not_predictable_enough_to_plant() -> None:
    """The state folder's name is random (uuid4): a planted link cannot be placed ahead of it."""
    from oidc_credentials.state import new_state_path

    a, b = new_state_path("/t"), new_state_path("/t")
    assert a != b and uuid.UUID(Path(a).parent.name).version == 4
