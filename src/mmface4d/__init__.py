"""mmface4d: multi-modal 4D faces, from RGB-D capture to speech-driven 3D face animation."""

from mmface4d.errors import InputError

__version__ = "0.1.0"

__all__ = ["InputError", "__version__"]
