"""The user cache folder: converted weights, ONNX graphs, feature caches, extracted archives.

A module of its own, with no facekit imports, so every layer can reach it without reaching
the data readers.
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """FACEKIT_CACHE, else ~/.cache/facekit; created on first use."""
    path = Path(os.environ.get("FACEKIT_CACHE") or Path.home() / ".cache" / "facekit")
    path.mkdir(parents=True, exist_ok=True)
    return path
