"""Loaded at start-up by every Python process whose PYTHONPATH has this directory (the tracing
tests put it there): configures the OpenTelemetry SDK when REDLINE_TEST_SPANS names a file."""

from tests.integrations.spans import install_from_env

install_from_env()
