"""Every invalid input value gets its message, and the README's validation table is the generated one."""

from __future__ import annotations

import io

import pytest
from oidc_credentials import __main__ as entry

from tests.harness import TaskRun
from tests.inputs_table import ROOT, ROWS, env_for, messages, render, section


@pytest.mark.parametrize(
    ("provider", "name", "valid", "invalid", "fragment"), ROWS, ids=[f"{r[1]}={r[3]}" for r in ROWS]
)
def test_invalid_value_is_refused_with_its_message(
    provider: str, name: str, valid: str, invalid: str, fragment: str
) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = entry.main(env_for(provider, name, invalid), out, err)
    run = TaskRun.from_output(code, out.getvalue(), err.getvalue())
    assert run.failed and len(run.errors) == 1, run.text
    assert f"'{name}'" in run.errors[0] and fragment in run.errors[0], run.errors[0]
    assert run.variables == {} and "Traceback" not in run.stdout + run.stderr


def test_readme_table_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert section(readme) == render(messages()), "run `python -m tests.inputs_table` and commit README.md"
