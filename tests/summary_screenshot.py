"""The run summary as a browser shows it: Markdown -> HTML (python-markdown) -> PNG (headless Chromium).

``python -m tests.summary_screenshot OUT_DIR`` renders a success and a failure summary from sample run
records and writes ``summary-success.png`` and ``summary-failure.png`` to OUT_DIR. ``make summary-screenshot`` installs Chromium (Debian package ``chromium``) and runs this into
``docs/``; ``tests/test_summary_screenshot.py`` runs it into a temporary folder when Chromium is there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from oidc_credentials import summary
from oidc_credentials.emit import RunRecord
from oidc_credentials.errors import ExchangeError

#: close to how Azure DevOps styles Markdown in the Extensions tab
STYLE = """
body { font-family: "Segoe UI", -apple-system, "Helvetica Neue", Helvetica, Arial, sans-serif; font-size: 14px;
       color: #201f1e; background: #fff; margin: 16px 24px; max-width: 960px; line-height: 1.45; }
h3 { font-size: 18px; font-weight: 600; margin: 4px 0 12px; }
h4 { font-size: 15px; font-weight: 600; margin: 18px 0 6px; }
table { border-collapse: collapse; margin: 6px 0; }
td, th { border: 1px solid #e1dfdd; padding: 5px 10px; text-align: left; vertical-align: top; }
th { font-weight: 600; }
td:first-child, th:first-child { color: #605e5c; white-space: nowrap; }
code { font-family: Consolas, "SF Mono", Menlo, monospace; font-size: 12.5px; background: #f3f2f1; padding: 1px 4px;
       border-radius: 2px; }
pre { background: #f3f2f1; padding: 10px 12px; border-radius: 2px; white-space: pre-wrap; }
pre code { background: none; padding: 0; }
"""


def success_record() -> RunRecord:
    return RunRecord(
        version="1.0.0",
        provider="aws",
        connection_id="3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
        identity="arn:aws:sts::123456789012:assumed-role/ado-deploy/ado-4242-1",
        expires="2026-11-30T03:14:07Z",
        token_iss="https://vstoken.dev.azure.com/7a1f3c2e-0d4b-4c8a-9e6f-2b5d8c1a0f3e",
        token_sub="sc://fabrikam/Payments/aws-prod",
        token_jti="9b2e4f60-3c1d-4a7b-8e5f-0d6c2a1b9e84",
        secret_names=["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"],
        variable_names=["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CREDENTIAL_EXPIRATION"],
        timings={"configure": 0.004, "exchange": 0.212, "emit": 0.002},
    )


def failure_record() -> RunRecord:
    record = RunRecord(
        version="1.0.0",
        provider="azure",
        connection_id="3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
        token_iss="https://vstoken.dev.azure.com/7a1f3c2e-0d4b-4c8a-9e6f-2b5d8c1a0f3e",
        token_sub="sc://fabrikam/Payments/azure-prod",
        token_jti="1e0c9a7b-5d3f-4b2a-8c6e-4f2d0b9a7c51",
        timings={"configure": 0.003, "exchange": 0.481},
        failed_phase="exchange",
    )
    record.fail(
        ExchangeError(
            "Microsoft Entra ID refused the token exchange for app 0f1e2d3c-4b5a-4697-8877-665544332211 in tenant "
            "72f988bf-86f1-41af-91ab-2d7cd011db47: AADSTS700213: No matching federated identity record found for "
            "presented assertion subject 'sc://fabrikam/Payments/azure-prod'.\n"
            "Federated credentials with this issuer and audience exist, but none has this token's subject.\n"
            "The token presented:\n"
            "  issuer    https://vstoken.dev.azure.com/7a1f3c2e-0d4b-4c8a-9e6f-2b5d8c1a0f3e\n"
            "  subject   sc://fabrikam/Payments/azure-prod\n"
            "  audience  api://AzureADTokenExchange",
            service="Microsoft Entra ID",
            status=400,
            code="AADSTS700213",
        )
    )
    record.notices.append(
        "This Azure connection still uses the Azure DevOps issuer, which Microsoft retires for Azure public-cloud "
        "connections on 2027-07-01."
    )
    return record


def html(markdown_text: str, title: str) -> str:
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables", "fenced_code"])
    return f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>{STYLE}</style></head><body>{body}</body></html>'


def chromium() -> str:
    return next((found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), "")


def screenshot(page: Path, png: Path, *, width: int = 1000, height: int = 640) -> None:
    browser = chromium()
    if not browser:
        raise RuntimeError("Chromium is not installed: run `make summary-screenshot`, which installs it.")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--hide-scrollbars",
                f"--window-size={width},{height}",
                f"--screenshot={png}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def render_all(out: Path) -> list[Path]:
    """Write ``summary-success.png`` and ``summary-failure.png`` to ``out`` (the pages are made in a temp folder)."""
    out.mkdir(parents=True, exist_ok=True)
    made = []
    with tempfile.TemporaryDirectory() as pages:
        for name, record, height in (("success", success_record(), 470), ("failure", failure_record(), 700)):
            page = Path(pages) / f"summary-{name}.html"
            page.write_text(html(summary.render(record), f"OidcCredentials summary ({name})"), encoding="utf-8")
            png = out.resolve() / f"summary-{name}.png"
            screenshot(page, png, height=height)
            made.append(png)
    return made


if __name__ == "__main__":
    for path in render_all(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")):
        print(path)
