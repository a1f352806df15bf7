"""One real ComfyUI server (CPU) with this node pack installed, for the whole session."""
import pytest

from .server import start_server


@pytest.fixture(scope="session")
def comfy(tmp_path_factory):
    client = start_server(tmp_path_factory.mktemp("comfy"))
    try:
        yield client
    finally:
        client.stop()
