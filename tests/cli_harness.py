"""Run one CLI subcommand in-process through the real dispatcher (``oidc_credentials.cli.main``), and the
organisation fixture the azure-devops paths run against."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType

import pytest
from oidc_credentials import cli

from tests.standins.ado import AzureDevOps
from tests.standins.ado_rest import Organisation
from tests.standins.server import Server

# the azure-devops SDK caches resource locations on disk (read when it is imported): keep them out of $HOME
os.environ.setdefault("AZURE_DEVOPS_CACHE_DIR", tempfile.mkdtemp(prefix="ado-sdk-cache-"))


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_command(module: ModuleType, argv: list[str]) -> Result:
    """``oidc-credentials <module's subcommand> <argv>``: exit code, stdout and stderr."""
    name = module.__name__.rsplit(".", 1)[-1]
    assert cli.SUBCOMMANDS.get(name) == module.__name__, f"{name} is not registered in cli.SUBCOMMANDS"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([name, *argv])
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture(name="org")
def org_fixture(monkeypatch: pytest.MonkeyPatch, ado: AzureDevOps) -> Iterator[Organisation]:
    """The REST stand-in for the token stand-in's organisation (same name and id), with its project, and a
    PAT for it in AZURE_DEVOPS_EXT_PAT (the other credential variables cleared)."""
    app = Organisation(name=ado.org, org_id=ado.org_id)
    app.add_project(ado.project)
    monkeypatch.delenv("AZURE_DEVOPS_TOKEN", raising=False)
    monkeypatch.delenv("AZURE_DEVOPS_PAT", raising=False)
    monkeypatch.setenv("AZURE_DEVOPS_EXT_PAT", app.pat)
    with Server(app) as server:
        app.base_url = server.url
        yield app
