"""One run over three real datasets at once (small samples of UTKFace, FairFace val and wider-dev):
each trains the heads its labels allow, validation is per dataset, the checkpoint records each
dataset, and the 7-class model's answers carry both ethnicity schemas."""
from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, write_small_utkface

from facekit import labels
from facekit.data import read_dataset
from facekit.models.backbones import MS_CELEB, weights_path
from facekit.models.model import load_checkpoint
from facekit.predict import Predictor
from facekit.training.recipe import TrainConfig
from facekit.training.run import run

pytestmark = pytest.mark.slow

SHARED = REPO.parent / "shared" / "data"


def _sample(csv, folder, rows: pd.DataFrame, name: str) -> tuple[str, str]:
    """A labels CSV holding ``rows`` (same columns), the images it names, and a split CSV."""
    for file in rows["file"]:
        (folder / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(csv.parent / file, folder / file)
    original = pd.read_csv(csv, nrows=0).columns
    rows[[c for c in rows.columns if c in original]].to_csv(folder / name, index=False)
    rows[["file", "split"]].to_csv(folder / f"{name}.split.csv", index=False)
    return str(folder / name), str(folder / f"{name}.split.csv")


@pytest.fixture()
def three_datasets(tmp_path, utkface_archive):
    fairface_csv, wider_csv = SHARED / "fairface" / "fairface_label_val.csv", SHARED / "wider-dev" / "faces.csv"
    if not (fairface_csv.exists() and wider_csv.exists()):
        pytest.skip("FairFace val or wider-dev is not in ../shared/data")
    (tmp_path / "utk").mkdir()
    utk, utk_split = write_small_utkface(tmp_path / "utk", utkface_archive, train=24, val=12)
    fairface = pd.read_csv(fairface_csv).head(36).assign(split=["train"] * 24 + ["val"] * 12)
    wider = pd.read_csv(wider_csv)
    wider = wider[(wider["face_px"] >= 40) & (wider["gender"] != "Not Sure")].head(36)
    wider = wider.assign(split=["train"] * 24 + ["val"] * 12)
    (tmp_path / "ff").mkdir()
    (tmp_path / "wider").mkdir()
    return [{"data": str(utk), "split": str(utk_split)},
            dict(zip(("data", "split"), _sample(fairface_csv, tmp_path / "ff", fairface, "fairface_label_val.csv")),
                 weight=2.0),
            dict(zip(("data", "split"), _sample(wider_csv, tmp_path / "wider", wider, "faces.csv")), weight=2.0)]


def test_wider_reader_marks_perceived_labels_and_unknowns():
    csv = SHARED / "wider-dev" / "faces.csv"
    if not csv.exists():
        pytest.skip("wider-dev is not in ../shared/data")
    table = read_dataset(csv)
    frame = table.frame
    assert len(frame) == 10673 and frame["perceived"].all() and frame["image"].notna().all()
    assert frame["gender"].isna().sum() == 2068  # "Not Sure" is unknown, not a class
    assert frame["age_group"].value_counts()["senior"] == 153
    assert set(frame["skin"].dropna()) == set(labels.SKIN_TONES)
    assert (frame["split"] == "val").sum() == 5454


def test_three_datasets_train_together(three_datasets, tmp_path, monkeypatch, astronaut):
    weights = weights_path(MS_CELEB)
    (tmp_path / "cache").mkdir()
    shutil.copy(weights, tmp_path / "cache" / weights.name)
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path / "cache"))
    config = TrainConfig(datasets=three_datasets, out=str(tmp_path / "run"), epochs=3, batch_size=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FairFace's spreadsheet-mangled bins are mapped back with a warning
        path = run(config, log=lambda _: None)

    assert len(list((tmp_path / "cache" / "features").iterdir())) == 3  # one cache per dataset
    sidecar = load_checkpoint(path).metadata
    assert [(d["dataset"], d["train"], d["val"]) for d in sidecar["data"]] == [
        ("utkface", 24, 12), ("fairface", 24, 12), ("wider-dev", 24, 12)]
    assert all(len(d["sha256"]) == 64 for d in sidecar["data"])
    assert "CC BY 4.0" in sidecar["licence"] and "CC BY-NC 4.0" in sidecar["licence"]
    assert sidecar["labels"]["race"] == list(labels.RACE7)
    validation = {v["dataset"]: v for v in sidecar["metrics"]["validation"]}
    assert validation["utkface"]["age_mae"] is not None and validation["utkface"]["age_in_range"] is None
    assert validation["fairface"]["race_accuracy"] is not None and validation["fairface"]["age_mae"] is None
    assert validation["wider-dev"]["race5_accuracy"] is None and validation["wider-dev"]["age_in_range"] is not None
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history) == 3 and "val_fairface_race_accuracy" in history[0]

    face = Predictor(path).predict(astronaut).faces[0]
    assert set(face.race7_probs) == set(labels.RACE7) and set(face.race_probs) == set(labels.RACES)
    assert face.race_probs["asian"] == pytest.approx(
        face.race7_probs["east_asian"] + face.race7_probs["southeast_asian"], abs=1e-5)
    assert np.isclose(sum(face.race7_probs.values()), 1, atol=1e-4)
