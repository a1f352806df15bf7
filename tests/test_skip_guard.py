"""The CI check that a fresh environment has every package the tests import (tests/skip_guard.py)."""
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent

SUITE = '''
import pytest

def test_needs_a_missing_package():
    pytest.importorskip("visualcritic_no_such_package")

@pytest.mark.skipif(True, reason="only on another platform")
def test_skipped_for_a_platform():
    pass

def test_plain():
    assert True
'''


def _run(tmp_path, require: str | None, suite: str = SUITE) -> subprocess.CompletedProcess:
    (tmp_path / "test_suite.py").write_text(suite)
    env = {k: v for k, v in os.environ.items() if k != "VISUALCRITIC_REQUIRE_ALL_PACKAGES"}
    if require is not None:
        env["VISUALCRITIC_REQUIRE_ALL_PACKAGES"] = require
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # a bare pytest: quick, and only the guard under test
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "skip_guard", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_skip_for_a_missing_package_fails_the_ci_run(tmp_path):
    result = _run(tmp_path, "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 skipped for a missing package" in result.stdout
    assert "visualcritic_no_such_package" in result.stdout


def test_other_skips_and_local_runs_stay_green(tmp_path):
    assert _run(tmp_path, None).returncode == 0  # a developer's machine: skips are skips
    suite = SUITE.replace('pytest.importorskip("visualcritic_no_such_package")', "pass")
    result = _run(tmp_path, "1", suite)  # a platform skip is not a missing package
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_module_level_importorskip_counts_too(tmp_path):
    suite = 'import pytest\npytest.importorskip("visualcritic_no_such_package")\n\ndef test_x():\n    pass\n'
    result = _run(tmp_path, "1", suite)
    assert result.returncode == 1, result.stdout + result.stderr
