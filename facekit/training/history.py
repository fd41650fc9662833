"""A run's curves: one row per epoch (losses, each dataset's validation metrics, the score), as the
training loop writes them to ``history.json`` and ``metrics.csv`` in the run folder."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

HISTORY_FILE = "history.json"
CURVES_FILE = "metrics.csv"


def read_curves(source: os.PathLike | str) -> pd.DataFrame:
    """The curves of a run folder, or of its ``metrics.csv`` / ``history.json`` (or a copy of one), by epoch.

    FileNotFoundError / ValueError with a one-line reason when ``source`` holds no curves."""
    path = Path(source).expanduser()
    if path.is_dir():
        path = next((path / name for name in (CURVES_FILE, HISTORY_FILE) if (path / name).is_file()), path / CURVES_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"no training curves at {path} (a run folder holds {CURVES_FILE} and {HISTORY_FILE})")
    try:
        frame = pd.DataFrame(json.loads(path.read_text())) if path.suffix == ".json" else pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a table of training curves ({str(error).splitlines()[0]})") from None
    if "epoch" not in frame or frame.empty:
        raise ValueError(f"{path} is not a table of training curves (no epoch rows)")
    return frame.sort_values("epoch").reset_index(drop=True)


def curve_groups(frame: pd.DataFrame) -> dict[str, list[str]]:
    """The curves' columns by kind: training losses, validation shares (0..1), and values in years or scores."""
    losses = [c for c in frame.columns if c.startswith("train_loss")]
    validation = [c for c in frame.columns if c.startswith("val_")]
    shares = [c for c in validation if not c.endswith(("_mae", "_score", "_loss")) and c != "val_score"]
    return {"losses": losses, "validation": shares, "other": [c for c in validation if c not in shares]}
