"""Optional parts of facekit and the one message for a missing one.

The core (photos to predictions, Grad-CAM, evaluation, the command line) installs with
``pip install facekit``; the app, the service, video files, the live page, training and Ray
each come with an extra. A module that needs one calls ``require`` before importing it, so a
missing package ends in one line naming the extra instead of a traceback from deep inside.
"""
from __future__ import annotations

import importlib

# extra -> (what it is for, the modules it brings)
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "app": ("the Streamlit app", ("streamlit",)),
    "serve": ("the REST service", ("fastapi", "uvicorn", "multipart", "httpx")),
    "video": ("video files", ("av",)),
    "live": ("the live webcam page", ("streamlit", "streamlit_webrtc", "av")),
    "train": ("training", ("yaml",)),
    "ray": ("the Ray engine", ("ray", "ray.data", "pyarrow")),
}


class MissingExtra(ImportError):
    """An optional part was used without its extra; the message says what to install."""


def require(extra: str) -> None:
    """Import the extra's modules, or raise ``MissingExtra`` naming the extra to install."""
    purpose, modules = EXTRAS[extra]
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtra(f"{purpose} needs facekit's [{extra}] extra ({module} is missing): "
                               f"pip install 'facekit[{extra}]'") from None
