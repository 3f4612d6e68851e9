# The launcher runs this file with whatever Python it found. It must parse on old interpreters, so it
# stays free of new syntax: it checks the version, puts the task's own folder (and the bundled runtime
# dependencies, when the package ships them) on sys.path, and runs the mode its first argument names
# (none: the task; "post": the post-job step; "helper <format>": a credential helper, which never
# prints ##vso). See oidc_credentials/modes/__init__.py.
import os
import sys

TOO_OLD = 87  # the launcher tries the next interpreter when it sees this exit code
DEFAULT_MODE = "task"


def escape(message):
    """One line of logging-command data: % escaped first, line breaks made spaces, no ## left."""
    return message.replace("%", "%AZP25").replace("\r", " ").replace("\n", " ").replace("##", "#")


def _fail(message, mode=DEFAULT_MODE):
    if mode == "helper":  # a credential helper answers its SDK: one plain line on stderr, never ##vso
        sys.stderr.write("oidc-credentials helper: error: " + escape(message) + "\n")
        sys.stderr.flush()
        sys.exit(1)
    message = escape(message)
    sys.stdout.write("##vso[task.logissue type=error]" + message + "\n")
    sys.stdout.write("##vso[task.complete result=Failed;]" + message + "\n")
    sys.stdout.flush()
    sys.exit(1)


def _bundled_deps(here):
    """(folders of bundled runtime dependencies for this interpreter, most specific first; what is missing
    when only the platform-independent part fits this agent, else {})."""
    hook = os.path.join(here, "deps", "select.py")
    if not os.path.isfile(hook):
        return [], {}
    namespace = {"__file__": hook}
    with open(hook) as handle:
        exec(compile(handle.read(), hook, "exec"), namespace)
    folders = namespace["select"](os.path.join(here, "deps"))
    return folders, dict(namespace.get("LIMITED") or {})


def main(argv=None):
    if sys.version_info < (3, 9):
        sys.exit(TOO_OLD)
    argv = sys.argv[1:] if argv is None else list(argv)
    mode = argv[0] if argv else DEFAULT_MODE
    # The agent reads task output as UTF-8; a Windows console pipe would otherwise use the ANSI code page.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(encoding="utf-8", errors="backslashreplace")
        except (AttributeError, ValueError):
            pass
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        extra, limited = _bundled_deps(here)
    except Exception as exc:  # an unsupported platform says so in one line
        _fail(str(exc), mode)
    if os.environ.get("SYSTEM_DEBUG", "").lower() == "true" and mode != "helper":
        chosen = ", ".join(os.path.basename(path) for path in extra) or "none"
        line = "Python %s at %s; bundled dependency folders: %s" % (sys.version.split()[0], sys.executable, chosen)
        if limited:
            line += " (platform-independent part only: %s)" % limited.get("problem", "")
        sys.stdout.write("##vso[task.debug]" + escape(line) + "\n")
    for path in reversed([here] + extra):
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        import oidc_credentials
        from oidc_credentials import install_hint
        from oidc_credentials.modes import run

        oidc_credentials.LIMITED_DEPENDENCIES.update(limited)
    except ImportError as exc:
        _fail(
            "OidcCredentials could not load its Python package (%s) with %s: the task folder is incomplete. "
            "Reinstall the task (the extension's .vsix carries it whole)." % (exc, sys.executable),
            mode,
        )
    try:
        code = run(argv)
    except ImportError as exc:  # a mode's own boundary reports these; this is the last resort
        _fail(
            "OidcCredentials could not load its Python dependency (%s) with %s. Use the packaged task, or install "
            "them for this interpreter: %s" % (exc, sys.executable, install_hint(sys.executable)),
            mode,
        )
    sys.exit(code)


if __name__ == "__main__":
    main()
