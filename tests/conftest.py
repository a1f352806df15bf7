"""Test-wide settings: nothing may reach a model hub, and results must not depend on thread count."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# `.ci/run` fails the run when a test skips for a missing package (tests/skip_guard.py).
from skip_guard import pytest_collectreport, pytest_runtest_logreport, pytest_sessionfinish  # noqa: E402,F401
