"""Fail the run when a test is skipped because a package is missing (`.ci/run` sets
VISUALCRITIC_REQUIRE_ALL_PACKAGES=1): every package a test imports is in requirements-dev.txt,
so such a skip means the requirements are incomplete, not that the test may be left out.

Loaded by tests/conftest.py; usable alone as `pytest -p skip_guard`.
"""
from __future__ import annotations

import os

import pytest

ENV_VAR = "VISUALCRITIC_REQUIRE_ALL_PACKAGES"
# pytest.importorskip's reason ("could not import 'x': No module named 'x'") and a bare ImportError skip
_MISSING_PACKAGE = ("could not import", "no module named")

_missing: list[str] = []


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # (path, line, reason)
        return str(longrepr[2])
    return str(longrepr)


def _note(report: pytest.CollectReport | pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report)
        if any(marker in reason.lower() for marker in _MISSING_PACKAGE):
            _missing.append(f"{report.nodeid or report.fspath}: {reason}")


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _note(report)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _note(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _missing or os.environ.get(ENV_VAR, "") in ("", "0"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{len(_missing)} skipped for a missing package ({ENV_VAR} is set); add it to requirements-dev.txt:",
             *(f"  {line}" for line in _missing)]
    if reporter is not None:
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
