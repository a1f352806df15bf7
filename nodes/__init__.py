"""ComfyUI adapters over visualcritic_core, one concern per module."""
NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
