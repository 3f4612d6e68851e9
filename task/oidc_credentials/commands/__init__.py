"""Subcommands of the oidc-credentials CLI: one module each, with HELP, add_arguments(parser) and run(args) -> int."""
