"""The real UTKFace archive and FairFace CSVs of ../shared/data: documented counts, split, shipped indexes."""
from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from facekit.data import iter_utkface_images, load_shipped_index, load_split, read_dataset
from facekit.data.stats import label_counts

DATA = (Path(__file__).parents[1] / "../shared/data").resolve()
ARCHIVE = DATA / "UTKFace.tar.gz"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not ARCHIVE.is_file(), reason=f"the shared data folder {DATA} is absent")]
LABELS = ["file", "age", "age_bin", "gender", "race"]


@pytest.fixture(scope="module")
def utkface():
    return read_dataset(ARCHIVE)


def test_archive_gives_the_documented_counts(utkface) -> None:
    frame = utkface.frame
    assert len(frame) == 23_707 and frame["file"].is_unique
    assert frame["race"].notna().sum() == 23_704
    assert frame["age"].notna().all() and frame["gender"].notna().all()
    assert label_counts(frame, "gender").to_dict() == {"male": 12_390, "female": 11_317}
    assert label_counts(frame, "race").to_dict() == {
        "white": 10_078, "black": 4_525, "asian": 3_434, "indian": 3_975, "others": 1_692,
    }
    assert (frame["age"].min(), frame["age"].median(), frame["age"].max()) == (1, 29, 116)


def test_archive_anomalies_are_named(utkface) -> None:
    reasons = {a.file: a.reason for a in utkface.anomalies}
    no_race = {name for name, reason in reasons.items() if "no race" in reason}
    assert len(no_race) == 3 and "61_1_20170109150557335.jpg.chip.jpg" in no_race
    assert "missing dot" in reasons["55_0_0_20170116232725357jpg.chip.jpg"]
    assert "space" in reasons["24_0_1_20170116220224657 .jpg.chip.jpg"]
    assert len(reasons) == 5
    assert set(utkface.frame.loc[utkface.frame["race"].isna(), "file"]) == no_race


def test_committed_split_matches_the_archive(utkface) -> None:
    frame = load_split(utkface).frame
    assert frame["split"].notna().all()


def test_shipped_utkface_index_is_the_archive(utkface) -> None:
    shipped = load_shipped_index("utkface")
    pd.testing.assert_frame_equal(
        shipped.frame[LABELS].sort_values("file", ignore_index=True),
        utkface.frame[LABELS].sort_values("file", ignore_index=True),
    )
    assert shipped.anomalies == utkface.anomalies


def test_shipped_fairface_index_is_the_csvs() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the mangled-bin warning is tested on synthetic CSVs
        source = read_dataset(DATA / "fairface")
    shipped = load_shipped_index("fairface")
    assert len(source) == 86_744 + 10_954
    columns = ["file", "age_bin", "gender", "race", "race7", "split", "service_test"]
    pd.testing.assert_frame_equal(shipped.frame[columns], source.frame[columns])
    assert not (shipped.frame["age_bin"].isin(["9-Mar", "19-Oct"])).any()


def test_streaming_the_archive_yields_every_face_once(utkface) -> None:
    names = [name for name, _ in iter_utkface_images(ARCHIVE)]
    assert len(names) == len(set(names)) == 23_707
    assert set(names) == set(utkface.frame["file"])


@pytest.mark.skipif(not (DATA / "wider-dev" / "faces.csv").is_file(), reason="no wider-dev in the shared data folder")
def test_wider_dev_reads_with_the_documented_counts() -> None:
    from facekit.data.wider import read_wider_photos

    faces = read_dataset(DATA / "wider-dev" / "faces.csv").frame
    assert len(faces) == 10_673
    assert faces["split"].value_counts().to_dict() == {"val": 5_454, "train": 5_219}
    assert int((faces["face_px"] >= 40).sum()) == 5_959  # face heights of hundreds of pixels are sizes, not ages
    boxes = read_wider_photos(DATA / "wider-dev" / "photos.csv")
    assert boxes["photo"].nunique() == 100 and len(boxes) == 757
