"""The UTKFace split (made on synthetic tables, verified on the committed file) and the shipped indexes."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facekit import labels
from facekit.data import (
    SPLIT_PATH,
    DatasetError,
    SplitMismatch,
    load_shipped_index,
    load_split,
    make_split,
    read_split,
    write_split,
)
from facekit.data.table import make_table


def synthetic_table(n: int = 3000, seed: int = 0):
    rng = np.random.default_rng(seed)
    races = rng.choice(list(labels.RACES), size=n, p=[0.5, 0.2, 0.15, 0.1, 0.05]).astype(object)
    races[:3] = None  # faces with no race
    frame = pd.DataFrame(
        {
            "file": [f"{i}.jpg" for i in range(n)],
            "age": rng.gamma(3, 11, size=n).round(),
            "gender": rng.choice(list(labels.GENDERS), size=n),
            "race": races,
        }
    )
    return make_table(frame, "utkface", "synthetic", [])


def test_split_is_stratified_seeded_and_keeps_raceless_faces_in_train() -> None:
    table = synthetic_table()
    split = make_split(table)
    assert list(split.columns) == ["file", "split"] and len(split) == len(table)
    shares = split["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.8, abs=0.01)
    assert shares["val"] == pytest.approx(0.1, abs=0.01) and shares["test"] == pytest.approx(0.1, abs=0.01)
    joined = table.frame.merge(split, on="file")
    assert set(joined.loc[joined["race"].isna(), "split"]) == {"train"}
    by_race = pd.crosstab(joined["race"], joined["split"], normalize="index")
    assert (by_race["test"] - 0.1).abs().max() < 0.02  # even the 5 % group keeps its share
    assert split.equals(make_split(table))
    assert not split.equals(make_split(table, seed=1))


def test_tiny_strata_are_pooled_so_they_still_reach_val_and_test() -> None:
    table = synthetic_table()
    rare = table.frame.index[(table.frame["race"] == "others") & (table.frame["gender"] == "female")]
    split = make_split(table).set_index("file")["split"]
    assert {"val", "test"} <= set(split[table.frame.loc[rare, "file"]])


def test_a_table_labelled_with_age_groups_alone_is_split_by_them() -> None:
    """Seed 003's layout: no gender, ethnicity or years, only a group per face."""
    groups = np.random.default_rng(0).choice(["YOUNG", "MIDDLE", "OLD"], size=600, p=[0.6, 0.3, 0.1])
    frame = pd.DataFrame({"file": [f"{i}.jpg" for i in range(600)], "age_group": groups})
    table = make_table(frame, "seed003", "synthetic", [])
    joined = table.frame.merge(make_split(table), on="file")
    by_group = pd.crosstab(joined["age_group"], joined["split"], normalize="index")
    assert (by_group["val"] - 0.1).abs().max() < 0.02 and (by_group["test"] - 0.1).abs().max() < 0.02


def test_write_split_refuses_to_overwrite(tmp_path: Path) -> None:
    path = write_split(make_split(synthetic_table(200)), tmp_path / "split.csv")
    with pytest.raises(FileExistsError):
        write_split(make_split(synthetic_table(200)), path)
    write_split(make_split(synthetic_table(200), seed=9), path, force=True)


def test_load_split_names_what_differs(tmp_path: Path) -> None:
    table = synthetic_table(200)
    path = write_split(make_split(table), tmp_path / "split.csv")
    assert set(load_split(table, path).frame["split"]) == {"train", "val", "test"}
    fewer = dataclasses.replace(table, frame=table.frame.iloc[1:])
    with pytest.raises(SplitMismatch, match=r"1 listed face\(s\) are not in the data \(0\.jpg\)"):
        load_split(fewer, path)
    renamed = table.frame.assign(file=table.frame["file"].replace({"5.jpg": "new.jpg"}))
    with pytest.raises(SplitMismatch, match=r"1 face\(s\) in the data are not in it \(new\.jpg\)"):
        load_split(dataclasses.replace(table, frame=renamed), path)


def test_read_split_rejects_a_damaged_file(tmp_path: Path) -> None:
    bad = tmp_path / "split.csv"
    bad.write_text("file,split\na.jpg,train\nb.jpg,holdout\n")
    with pytest.raises(DatasetError, match="unknown split name"):
        read_split(bad)
    bad.write_text("file,split\na.jpg,train\na.jpg,test\n")
    with pytest.raises(DatasetError, match="listed twice"):
        read_split(bad)


def test_committed_split_matches_the_shipped_utkface_index() -> None:
    table = load_split(load_shipped_index("utkface"))
    frame = table.frame
    assert frame["split"].notna().all()
    shares = frame["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.8, abs=0.005) and shares["test"] == pytest.approx(0.1, abs=0.005)
    assert set(frame.loc[frame["race"].isna(), "split"]) == {"train"}
    assert set(read_split(SPLIT_PATH)["file"]) == set(frame["file"])


def test_shipped_indexes_load_without_the_data_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACEKIT_UTKFACE", str(tmp_path / "absent.tar.gz"))
    utk = load_shipped_index("utkface")
    assert not utk.has_images and len(utk) > 0
    fair = load_shipped_index("fairface")
    assert not fair.has_images and fair.anomalies == []
    assert set(fair.frame["split"]) == {"train", "val"}
    assert fair.frame["age_bin"].notna().all() and fair.frame["race7"].notna().all()
    with pytest.raises(DatasetError, match="no shipped index"):
        load_shipped_index("imdb")


def test_assets_stay_small() -> None:
    from facekit.data.shipped import INDEXES

    for path in [*INDEXES.values(), SPLIT_PATH]:
        assert path.stat().st_size < 3_000_000, path
