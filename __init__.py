"""ComfyUI entry point for VisualCritic. Cheap to import; never breaks ComfyUI start-up.

The library lives beside this file in `visualcritic_core/`; when it is not pip-installed,
it is registered under its own name here so the nodes and scripts share one copy.
"""
import importlib.util
import logging
import os
import sys

_log = logging.getLogger("VisualCritic")


def _ensure_library_importable() -> None:
    if importlib.util.find_spec("visualcritic_core") is not None:
        return
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(
        "visualcritic_core",
        os.path.join(here, "visualcritic_core", "__init__.py"),
        submodule_search_locations=[os.path.join(here, "visualcritic_core")],
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["visualcritic_core"] = module
    spec.loader.exec_module(module)


try:
    _ensure_library_importable()
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
except Exception as err:  # a broken optional dependency must not take ComfyUI down with it
    _log.error("VisualCritic nodes not loaded: %s", err)
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

WEB_DIRECTORY = "./web"  # the frontend extension that shows the nodes' text results (plain JS, no build step)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
