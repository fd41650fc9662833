"""Where data lives: the package's own assets, and datasets named by environment variables.

No library module knows where the repository or its data folder is: FACEKIT_DATA names a
folder holding the datasets (``UTKFace.tar.gz``, ``fairface/``, ``wider-dev/``) and
FACEKIT_UTKFACE the UTKFace archive itself; the command line and the app set FACEKIT_DATA's
default for their users. Kept free of heavy imports so the readers start quickly.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

ASSETS = Path(__file__).resolve().parents[1] / "assets"  # shipped with the package (pyproject package-data)
PACKAGE_PARENT = ASSETS.parents[1]  # the folder facekit is installed in: shipped files are named from here


def data_dir() -> Optional[Path]:
    """The datasets folder FACEKIT_DATA names, when it is set."""
    value = os.environ.get("FACEKIT_DATA")
    return Path(value).expanduser() if value else None


def locate_utkface() -> Optional[Path]:
    """The UTKFace archive (or folder): FACEKIT_UTKFACE, else UTKFace.tar.gz in FACEKIT_DATA; None if absent."""
    value = os.environ.get("FACEKIT_UTKFACE")
    folder = data_dir()
    candidate = Path(value).expanduser() if value else folder / "UTKFace.tar.gz" if folder else None
    return candidate if candidate is not None and candidate.exists() else None


def shown_path(path: Path) -> Path:
    """A file inside the installed package named from the package's folder, so a report
    made on one machine points at the same shipped file on another; other paths as they are."""
    path = path.resolve()
    return path.relative_to(PACKAGE_PARENT) if path.is_relative_to(PACKAGE_PARENT) else path


def resolve_shown(path: str | os.PathLike) -> Path:
    """The inverse of ``shown_path``: a relative path is taken from the package's folder."""
    path = Path(path)
    return path if path.is_absolute() else PACKAGE_PARENT / path
