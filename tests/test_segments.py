"""facekit.evaluation.segments (the batch breakdown) and `facekit predict DIR --summary`."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from facekit import labels
from facekit.cli import app
from facekit.vision.io import SAMPLE_PHOTO
from facekit.models.model import DEFAULT_MODEL
from facekit.evaluation.segments import breakdown, wilson_interval


def test_wilson_interval_matches_published_values():
    low, high = wilson_interval(np.array([0, 5, 10]), 10)
    np.testing.assert_allclose(low, [0.0, 0.2366, 0.7225], atol=1e-4)
    np.testing.assert_allclose(high, [0.2775, 0.7634, 1.0], atol=1e-4)
    assert np.isnan(wilson_interval(np.array([0]), 0)[0]).all()


def face_row(file: str, index: int, gender: str, race: str, age_bin: str, p_female: float) -> dict:
    row = {"file": file, "face": index, "gender": gender, "p_female": p_female, "race": race, "age_bin": age_bin,
           "error": ""}
    row.update({f"p_{name}": 0.7 if name == race else 0.075 for name in labels.RACES})
    return row


def test_breakdown_counts_shares_and_mean_probabilities():
    rows = [
        face_row("a.jpg", 0, "female", "asian", "20-29", 0.9),
        face_row("a.jpg", 1, "male", "white", "20-29", 0.2),
        face_row("b.jpg", 0, "female", "asian", "70+", 0.7),
        {"file": "c.jpg", "face": None, "error": "no face found"},
    ]
    summary = breakdown(rows)
    assert (summary.inputs, summary.without_face, len(summary.faces)) == (3, 1, 3)
    assert summary.gender["count"].to_dict() == {"male": 1, "female": 2}
    assert summary.gender.loc["female", "share"] == pytest.approx(2 / 3)
    assert summary.gender.loc["female", "mean_prob"] == pytest.approx(0.6)
    assert summary.race.loc["asian", "mean_prob"] == pytest.approx((0.7 + 0.075 + 0.7) / 3)
    assert list(summary.race.index) == list(labels.RACES) and summary.race.loc["black", "count"] == 0
    assert summary.race.loc["black", "high"] > 0  # zero faces is not "zero share for sure"
    assert summary.age_gender.loc["20-29"].to_dict() == {"male": 1, "female": 1}
    assert "3 faces in 2 of 3 inputs (1 unreadable or without a face)" in summary.to_text()


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason=f"the shipped model is missing at {DEFAULT_MODEL}")
def test_cli_predict_summary_prints_the_breakdown_of_the_rows(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "astronaut.jpg").write_bytes(SAMPLE_PHOTO.read_bytes())
    Image.new("RGB", (160, 120), (200, 190, 180)).save(folder / "wall.png")
    rows_file = tmp_path / "rows.csv"
    result = CliRunner().invoke(app, ["predict", str(folder), "--summary", "--out", str(rows_file)])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(rows_file)
    assert len(rows) == 2 and rows["face"].notna().sum() == 1
    assert result.stdout == breakdown(rows).to_text()
    assert result.stdout.startswith("1 face in 1 of 2 inputs (1 unreadable or without a face)")
    assert "Wilson interval" in result.stdout and "never for decisions about individuals" in result.stdout


def test_summary_counts_faces_per_photo_and_the_faces_too_small_to_read(predictor, astronaut):
    from facekit.evaluation.segments import breakdown
    from facekit.labels import MIN_ATTRIBUTE_FACE
    from facekit.rows import prediction_rows

    small = astronaut.resize((128, 128))  # her face is about 30 px tall here
    rows = prediction_rows(predictor.predict_images([astronaut, small], ["big.jpg", "small.jpg"]))
    by_file = {row["file"]: row for row in rows}
    assert by_file["big.jpg"]["low_resolution"] is False
    assert by_file["small.jpg"]["low_resolution"] is True, by_file["small.jpg"]["y2"] - by_file["small.jpg"]["y1"]
    summary = breakdown(rows)
    assert summary.low_resolution == 1 and summary.faces_per_photo.tolist() == [1, 1]
    assert f"1 too small to read reliably (low_resolution: under {MIN_ATTRIBUTE_FACE} px tall)" in summary.to_text()
