"""`facekit evaluate` on hostile data: one line saying what is wrong, and no half-written report folder."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import CLI
from facekit.data.table import DatasetError, parse_ages


@pytest.mark.parametrize("age", ["inf", "-inf", "1e308", "300", "-1", "thirty"])
def test_an_impossible_age_is_a_dataset_error_naming_its_line(age):
    with pytest.raises(DatasetError, match=r"line 3: .* is not an age in years"):
        parse_ages(pd.Series(["30", age]), "age", Path("labels.csv"))


def test_real_ages_pass_including_the_oldest_and_empty_cells():
    ages = parse_ages(pd.Series(["0", "116", " 42 ", ""]), "age", Path("labels.csv"))
    assert ages.iloc[:3].tolist() == [0.0, 116.0, 42.0] and pd.isna(ages.iloc[3])


def evaluate(folder: Path, labels: str, *files: tuple[str, bytes]) -> subprocess.CompletedProcess:
    for name, data in files:
        (folder / name).write_bytes(data)
    (folder / "labels.csv").write_text(labels)
    return subprocess.run([*CLI, "evaluate", "--data", "labels.csv", "--split", "all", "--out", "report"],
                          cwd=folder, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_every_image_unreadable_is_one_line_and_no_report(tmp_path):
    done = evaluate(tmp_path, "path,gender,age\na.jpg,male,30\nb.jpg,female,41\n",
                    ("a.jpg", b"junk"), ("b.jpg", b"\xff\xd8\xff truncated"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "error: none of the 2 images could be read" in done.stderr
    assert not (tmp_path / "report").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_a_huge_kaggle_pixel_value_is_that_rows_reason(tmp_path):
    pixels = " ".join(["99999999999999999999"] * 2304)
    (tmp_path / "age_gender.csv").write_text(f"age,ethnicity,gender,img_name,pixels\n30,0,0,a.jpg,{pixels}\n")
    done = subprocess.run([*CLI, "evaluate", "--data", "age_gender.csv", "--split", "all", "--out", "report"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "pixel values are not whole numbers in 0..255" in done.stderr
    assert not (tmp_path / "report").exists()


@pytest.mark.slow
def test_one_readable_face_among_broken_ones_gives_a_whole_report(tmp_path):
    from facekit.vision.io import SAMPLE_PHOTO

    done = evaluate(tmp_path, "path,gender,age\nastronaut.jpg,female,40\nbroken.jpg,male,30\n",
                    ("astronaut.jpg", SAMPLE_PHOTO.read_bytes()), ("broken.jpg", b"junk"))
    assert done.returncode == 0, done.stderr
    assert {"evaluation.json", "predictions.csv", "report.md"} <= {p.name for p in (tmp_path / "report").iterdir()}


def test_a_huge_bad_cell_gives_a_short_one_line_error(tmp_path):
    from facekit.data import read_dataset
    from facekit.errors import MAX_MESSAGE

    labels = tmp_path / "labels.csv"
    labels.write_text("path,gender\na.jpg," + "x\\n" * 2_000_000 + "\n")
    with pytest.raises(DatasetError) as raised:
        read_dataset(labels)
    message = str(raised.value)
    assert len(message) <= MAX_MESSAGE and "\n" not in message and "gender" in message
