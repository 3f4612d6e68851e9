"""Local stand-ins for services that have no local peer. They behave like the real services, errors
included, and their fidelity is checked with the vendors' own clients (tests/test_standins_*.py)."""
