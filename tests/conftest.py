"""Test-wide settings: nothing may reach a model hub, and results must not depend on thread count."""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# `.ci/run` fails the run when a test skips for a missing package (tests/skip_guard.py).
from skip_guard import pytest_collectreport, pytest_runtest_logreport, pytest_sessionfinish  # noqa: E402,F401


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run far faster on one torch thread when other processes share the CPU (two
    threads spin against each other on a busy 2-core machine); restored after the module.
    Modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
