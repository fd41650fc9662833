"""Where data lives on this machine: the user cache and the shared UTKFace archive.

Kept free of heavy imports so the readers, the CLI and the explorer page stay quick to start.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSETS = Path(__file__).resolve().parents[1] / "assets"  # shipped with the package (pyproject package-data)
# The read-only data folder beside the repository (../shared/data), when it exists.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def cache_dir() -> Path:
    """The user cache (FACEKIT_CACHE overrides ~/.cache/facekit), the same rule as the weight cache."""
    path = Path(os.environ.get("FACEKIT_CACHE") or Path.home() / ".cache" / "facekit")
    path.mkdir(parents=True, exist_ok=True)
    return path


def locate_utkface() -> Optional[Path]:
    """The UTKFace archive (or folder): FACEKIT_UTKFACE if set, else ../shared/data/UTKFace.tar.gz."""
    candidate = Path(os.environ.get("FACEKIT_UTKFACE") or SHARED_DATA / "UTKFace.tar.gz").expanduser()
    return candidate if candidate.exists() else None
