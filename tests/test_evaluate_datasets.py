"""Evaluation beyond UTKFace on real faces: FairFace's and wider-dev's committed test parts, the
labelled face of a crowd cut matched by its box, perceived age groups and face sizes as groups,
and prediction rows that carry both ethnicity schemas."""
from __future__ import annotations

import warnings

import pandas as pd
import pytest

from conftest import REPO

from facekit import labels
from facekit.evaluation.evaluate import evaluate
from facekit.labels import FACE_SIZES
from facekit.rows import ANSWER_COLUMNS, prediction_rows

pytestmark = pytest.mark.slow

SHARED = REPO.parent / "shared" / "data"


def _data(*parts: str):
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not here")
    return path


def test_fairface_evaluates_its_committed_test_part():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = evaluate(data=_data("fairface", "fairface_label_val.csv"), split="test", limit=24, n_boot=10).summary
    split = pd.read_csv(REPO / "facekit" / "assets" / "fairface_val_split.csv")
    assert summary.dataset.name == "fairface" and summary.dataset.images == 24
    assert (split["split"] == "test").sum() == 1102
    assert 0.5 <= summary.gender.accuracy <= 1 and summary.age.bin_accuracy is not None
    assert "race7" in summary.features  # FairFace's 7 classes are groups


def test_wider_faces_match_their_box_and_report_age_groups_and_sizes():
    evaluation = evaluate(data=_data("wider-dev", "faces.csv"), split="test", limit=30, n_boot=10)
    summary, rows = evaluation.summary, evaluation.predictions
    assert summary.dataset.name == "wider-dev"
    faces = pd.read_csv(_data("wider-dev", "faces.csv")).set_index("file")
    assert (faces.loc[rows["file"], "split"] == "val").all()  # wider-dev's own val photos are the test part
    assert {"skin", "age_group", "face_size"} <= set(summary.features)
    assert [g.group for g in summary.age_group.groups] == list(labels.AGE_GROUP_LABELS)
    sizes = {g.group for g in summary.groups if g.feature == "face_size"}
    assert sizes <= {name for _, _, name in FACE_SIZES} and sizes
    assert summary.race is None  # wider-dev has no ethnicity labels: that head is skipped


def test_rows_keep_the_five_classes_and_add_the_seven(predictor, astronaut):
    row = prediction_rows([predictor.predict(astronaut)])[0]
    assert [c for c in ANSWER_COLUMNS if c not in row] == []
    for column in ("race7", "p_east_asian", "p_southeast_asian", "p_latino_hispanic", "p_middle_eastern"):
        assert column in ANSWER_COLUMNS
    assert row["race"] in labels.RACES
    if predictor.model.config.ethnicities == 7:
        assert row["race7"] in labels.RACE7
        assert row["p_asian"] == pytest.approx(row["p_east_asian"] + row["p_southeast_asian"], abs=2e-4)
    else:
        assert row["race7"] is None and row["p_east_asian"] is None
