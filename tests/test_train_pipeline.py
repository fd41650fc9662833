"""The whole recipe path on 48 real UTKFace chips: feature cache, training, temperatures,
checkpoint, and the predictor loading that checkpoint to read a real photo."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import write_small_utkface

from facekit.models.backbones import MS_CELEB, weights_path
from facekit.models.model import load_checkpoint
from facekit.predict import Predictor
from facekit.training.recipe import TrainConfig
from facekit.training.run import run

pytestmark = pytest.mark.slow


@pytest.fixture()
def small_utkface(tmp_path, utkface_archive):
    return write_small_utkface(tmp_path, utkface_archive, train=32, val=16)


def test_recipe_trains_saves_and_predicts(small_utkface, tmp_path, monkeypatch, astronaut):
    weights = weights_path(MS_CELEB)  # a fresh cache with only the backbone in it
    (tmp_path / "cache").mkdir()
    shutil.copy(weights, tmp_path / "cache" / weights.name)
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path / "cache"))

    folder, split = small_utkface
    config = TrainConfig(data=str(folder), split=str(split), out=str(tmp_path / "run"), epochs=3, batch_size=16)
    path = run(config, log=lambda _: None)

    features = list((tmp_path / "cache" / "features").iterdir())
    assert len(features) == 1 and json.loads((features[0] / "meta.json").read_text())["complete"]
    index = pd.read_csv(features[0] / "index.csv")
    assert len(index) == 48 and index["detected"].mean() > 0.9  # MTCNN finds nearly every chip

    loaded = load_checkpoint(path)
    sidecar = loaded.metadata
    assert [(d["dataset"], d["train"], d["val"]) for d in sidecar["data"]] == [("utkface", 32, 16)]
    assert "non-commercial" in sidecar["licence"]
    assert set(sidecar["temperature"]) == {"gender", "race", "age"}
    assert all(t > 0 for t in sidecar["temperature"].values())
    assert len(pd.read_csv(tmp_path / "run" / "metrics.csv")) == 3

    result = Predictor(path).predict(astronaut)
    assert len(result.faces) == 1
    face = result.faces[0]
    assert sum(face.gender_probs.values()) == pytest.approx(1, abs=1e-4)
    assert sum(face.race_probs.values()) == pytest.approx(1, abs=1e-4)
    assert face.age_low <= face.age <= face.age_high
    assert np.isclose(sum(face.age_probs), 1, atol=1e-4)
