"""Resumable run state on disk, written so that a killed run never leaves an unreadable file.

Every file goes to a temporary name in the same folder and is renamed over the old one (a
rename within a folder is atomic), and the previous ``last.pt`` is kept as ``last.prev.pt``:
a resume that finds ``last.pt`` unreadable says so and falls back to it.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from facekit.files import atomic_write

LAST = "last.pt"
PREVIOUS = "last.prev.pt"
BEST = "best.pt"


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_last(out: Path, state: dict) -> None:
    """Write the run state as ``last.pt``; the one it replaces becomes ``last.prev.pt``."""
    last = out / LAST
    atomic_write(out / ".last.pt.new", lambda path: torch.save(state, path))
    if last.exists():
        os.replace(last, out / PREVIOUS)
    os.replace(out / ".last.pt.new", last)


def load_last(out: Path, log: Callable[[str], None] = print) -> dict | None:
    """The newest readable run state (``last.pt``, else ``last.prev.pt``), or None when there is none."""
    for name in (LAST, PREVIOUS):
        path = out / name
        if not path.exists():
            continue
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:  # a truncated or corrupt file: torch raises several kinds
            log(f"cannot read {path} ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                "trying the previous checkpoint")
    return None


def save_tensors(path: Path, tensors: dict) -> None:
    atomic_write(path, lambda temporary: torch.save(tensors, temporary))
