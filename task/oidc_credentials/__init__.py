"""OidcCredentials: trade the Azure Pipelines job's OIDC token for short-lived cloud credentials.

Where things are: ``cli.py`` dispatches the human CLI (``oidc-credentials``; subcommands in
``commands/``); ``modes/`` holds one boundary per way the package runs (``task``, ``post``, ``helper``);
``providers/`` one module per cloud; ``emit.py`` the output policy and run record; ``state.py`` the
post-job state; ``agent.py``/``vso.py`` the agent boundary in and out; ``http.py``, ``oidc.py``,
``errors.py``, ``files.py`` and ``text.py`` are shared by all of them.
"""

__version__ = "1.0.0"

#: the runtime dependencies (pyproject.toml's [project] dependencies; a test keeps them equal), for the
#: install hint when an interpreter lacks them
REQUIREMENTS = ("requests>=2.31", "pyjwt>=2.8", "azure-identity>=1.17", "jinja2>=3.1")


#: set by task/entry.py when this agent's platform has no bundled build and the task runs from the
#: platform-independent part of the bundle: {"agent", "supported", "compiled": {import: distribution},
#: "python", "problem"}; empty otherwise
LIMITED_DEPENDENCIES: dict[str, object] = {}


def missing_compiled(name: str) -> str:
    """The distribution with compiled code behind a failed import of ``name`` that this agent's platform
    has no bundled build of ("" when that is not why the import failed)."""
    compiled = LIMITED_DEPENDENCIES.get("compiled")
    if not name or not isinstance(compiled, dict):
        return ""
    return str(compiled.get(name.split(".")[0], ""))


def install_hint(python: str) -> str:
    """The command that installs the runtime dependencies into ``python``."""
    return f"{python} -m pip install " + " ".join(f'"{r}"' for r in REQUIREMENTS)
