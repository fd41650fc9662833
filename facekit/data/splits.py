"""Train/val/test splits of the shipped datasets (UTKFace, FairFace val, wider-dev): made once, committed as a small CSV, verified on every load.

A committed file rather than a seed alone, so the split cannot drift when numpy's shuffling,
the reader or the archive changes: ``load_split`` refuses data that no longer matches it.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd

from facekit.data.paths import ASSETS
from facekit.data.table import DatasetError, DatasetTable

SPLIT_PATH = ASSETS / "utkface_split.csv"
FAIRFACE_SPLIT_PATH = ASSETS / "fairface_val_split.csv"  # FairFace's validation images, split 80/10/10
WIDER_SPLIT_PATH = ASSETS / "wider_dev_split.csv"  # wider-dev's val part is test; val comes from its train photos
# The committed split of each shipped dataset, by reader name.
COMMITTED_SPLITS = {"utkface": SPLIT_PATH, "fairface": FAIRFACE_SPLIT_PATH, "wider-dev": WIDER_SPLIT_PATH}
SPLITS: tuple[str, ...] = ("train", "val", "test")
FRACTIONS = {"val": 0.1, "test": 0.1}  # the rest is train
SEED = 3
MIN_STRATUM = 20  # below this a stratum cannot give val and test one face each at 10 %, reliably

class SplitMismatch(DatasetError):
    """The split file and the data disagree about which faces exist."""


def make_split(
    table: DatasetTable,
    seed: int = SEED,
    min_stratum: int = MIN_STRATUM,
    together: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``file,split`` stratified by gender x ethnicity x age bin (x age group), 80/10/10, sorted by file.

    Only the labels the table has at all stratify it (a seed-003 folder labels age groups
    alone). Ethnicity is the 7-class ``race7`` where the table has it, else ``race``. Strata
    smaller than ``min_stratum`` are pooled within their gender x ethnicity (then within their
    gender) so rare groups, e.g. old faces of small ethnicities, still reach val and test. Faces
    missing one of those labels go to train: they cannot be scored per group. ``together``
    (columns ``file_a, file_b``, e.g. FairFace's near-duplicate pairs) puts each ``file_b`` on
    its ``file_a``'s side, so one photo never sits on both sides.
    """
    race_column = "race7" if "race7" in table.frame and table.frame["race7"].notna().any() else "race"
    frame = table.frame.rename(columns={race_column: "race"})
    strata = [c for c in ("gender", "race", "age_bin", "age_group") if c in frame and frame[c].notna().any()]
    frame = frame[["file", *strata]].sort_values("file").reset_index(drop=True)
    known = frame[strata].notna().all(axis=1) if strata else pd.Series(False, index=frame.index)
    parts = [frame[column].astype(str) for column in strata]
    key = parts[0].str.cat(parts[1:], sep="|") if parts else pd.Series("", index=frame.index)
    for kept in range(len(parts) - 1, 0, -1):  # pool small strata: drop the last labels one by one
        coarser = parts[0].str.cat([*parts[1:kept], *[pd.Series("*", index=frame.index)] * (len(parts) - kept)],
                                   sep="|")
        sizes = key.map(key[known].value_counts())
        key = key.where(sizes >= min_stratum, coarser)
    rng = np.random.default_rng(seed)
    split = np.full(len(frame), "train", dtype=object)
    for _, members in sorted(frame.index[known].groupby(key[known]).items()):
        order = rng.permutation(np.asarray(members))
        n_val, n_test = (int(len(order) * FRACTIONS[name] + 0.5) for name in ("val", "test"))
        split[order[:n_val]] = "val"
        split[order[n_val : n_val + n_test]] = "test"
    result = pd.DataFrame({"file": frame["file"], "split": split})
    if together is not None:
        side = result.set_index("file")["split"]
        pairs = together[together["file_a"].isin(side.index) & together["file_b"].isin(side.index)]
        side.loc[pairs["file_b"].to_numpy()] = side.loc[pairs["file_a"].to_numpy()].to_numpy()
        result["split"] = result["file"].map(side)
    return result


def split_by_group(
    frame: pd.DataFrame, group: str, held_out: pd.Series, val_fraction: float = 0.15, seed: int = SEED
) -> pd.DataFrame:
    """``file,split`` for a dataset that comes with its own held-out part: ``held_out`` rows are
    test, and whole ``group``s (e.g. photos) of the rest go to val with ``val_fraction``."""
    rng = np.random.default_rng(seed)
    groups = np.array(sorted(frame.loc[~held_out, group].unique()), dtype=object)
    val_groups = set(rng.permutation(groups)[: int(len(groups) * val_fraction + 0.5)])
    split = np.where(held_out, "test", np.where(frame[group].isin(val_groups), "val", "train"))
    return pd.DataFrame({"file": frame["file"], "split": split}).sort_values("file").reset_index(drop=True)


def write_split(split: pd.DataFrame, path: os.PathLike | str = SPLIT_PATH, force: bool = False) -> Path:
    """Write the split CSV; an existing one is replaced only with ``force`` (it is meant to be made once)."""
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; the split is made once, pass force (--force) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    split[["file", "split"]].to_csv(path, index=False, lineterminator="\n")
    return path


def read_split(path: os.PathLike | str = SPLIT_PATH) -> pd.DataFrame:
    """The split file, checked: columns file,split, known split names, each file once."""
    path = Path(path)
    try:
        split = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DatasetError(f"cannot read the split file {path} ({error})") from None
    if list(split.columns) != ["file", "split"]:
        raise DatasetError(f"{path}: expected columns file,split, found {','.join(split.columns)}")
    unknown = sorted(set(split["split"]) - set(SPLITS))
    if unknown:
        raise DatasetError(f"{path}: unknown split name(s) {unknown}, expected {', '.join(SPLITS)}")
    duplicated = split["file"][split["file"].duplicated()]
    if len(duplicated):
        raise DatasetError(f"{path}: {len(duplicated)} file(s) listed twice, e.g. {duplicated.iloc[0]}")
    return split


def _examples(names: set[str], limit: int = 3) -> str:
    return ", ".join(sorted(names)[:limit]) + (", ..." if len(names) > limit else "")


def load_split(table: DatasetTable, path: os.PathLike | str = SPLIT_PATH) -> DatasetTable:
    """A copy of the table with a ``split`` column (train/val/test) from the committed split file.

    Raises ``SplitMismatch`` naming what differs when the table's faces are not exactly the
    split file's: a changed archive or reader must not silently leak faces across splits.
    """
    frame = table.frame
    split = read_split(path)
    ours, theirs = set(frame["file"]), set(split["file"])
    if ours != theirs:
        problems = []
        if ours - theirs:
            problems.append(f"{len(ours - theirs)} face(s) in the data are not in it ({_examples(ours - theirs)})")
        if theirs - ours:
            problems.append(f"{len(theirs - ours)} listed face(s) are not in the data ({_examples(theirs - ours)})")
        raise SplitMismatch(f"the split file {path} does not match the data: {'; '.join(problems)}")
    column = pd.Categorical(frame["file"].map(split.set_index("file")["split"]), categories=SPLITS)
    return dataclasses.replace(table, frame=frame.assign(split=column))


def with_committed_split(table: DatasetTable) -> DatasetTable:
    """The table with its shipped dataset's committed split, when the table holds exactly the faces that
    split lists; otherwise unchanged (another copy or subset keeps any split its reader gave)."""
    path = COMMITTED_SPLITS.get(table.dataset)
    if path is None:
        return table
    try:
        return load_split(table, path)
    except SplitMismatch:
        return table
