"""The predict API and `facekit predict` with the shipped model on real photos and bad inputs."""
from __future__ import annotations

import io
import json
import subprocess
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import ASTRONAUT_FACE, CLI, box_iou, exif_rotated_jpeg
from facekit import labels, viz
from facekit.vision.io import collect_uploads
from facekit.rows import prediction_rows



def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_astronaut_gives_one_face_with_every_head(predictor, astronaut):
    result = predictor.predict(astronaut)
    assert result.error == "" and len(result.faces) == 1
    face = result.faces[0]
    assert box_iou(face.box, ASTRONAUT_FACE) > 0.6
    assert face.gender == "female" and face.gender_probs["female"] > 0.7  # Eileen Collins
    assert face.race in labels.RACES and abs(sum(face.race_probs.values()) - 1) < 1e-4
    assert 25 <= face.age <= 60 and face.age_low < face.age < face.age_high
    assert set(face.age_bin_probs) == set(labels.AGE_BIN_LABELS)


def test_box_label_gives_age_with_its_interval(predictor, astronaut):
    face = predictor.predict(astronaut).faces[0]
    label = viz.face_label(1, face)
    assert label.startswith("1: Female ")
    assert label.endswith(f"{face.age:.0f} y ({face.age_low:.0f}-{face.age_high:.0f})")


def test_exif_rotated_photo_gives_the_same_answer(predictor, astronaut):
    upright, rotated = predictor.predict_images([jpeg(astronaut), exif_rotated_jpeg(astronaut)])
    assert len(rotated.faces) == 1
    assert box_iou(rotated.faces[0].box, upright.faces[0].box) > 0.8
    assert abs(rotated.faces[0].age - upright.faces[0].age) < 3


def test_a_photo_gets_the_same_answer_alone_or_among_others(predictor, astronaut):
    """Several photos run on parallel workers with a one-thread copy of the network, one photo on
    the network with the caller's thread count; detection is on one torch thread either way, so
    the answers agree. The caller's own thread count is left as it was."""
    threads = torch.get_num_threads()
    photos = [jpeg(astronaut), jpeg(astronaut.rotate(10)), jpeg(astronaut.resize((400, 400)))]
    together = predictor.predict_images(photos)
    alone = [predictor.predict(photo) for photo in photos]
    listed = list(predictor.predict_items(collect_uploads([(f"{i}.jpg", photo) for i, photo in enumerate(photos)])))
    for results in zip(together, alone, listed):
        faces = [result.faces[0] for result in results]
        assert faces[0].box == faces[1].box == faces[2].box and faces[0].landmarks == faces[2].landmarks
        for face in faces[1:]:
            assert face.gender_probs == pytest.approx(faces[0].gender_probs, abs=1e-5)
            assert face.age == faces[0].age
    assert torch.get_num_threads() == threads
    assert set(predictor.pool.map(lambda _: torch.get_num_threads(), range(4))) == {1}


def test_several_faces_are_largest_first_and_bounded(predictor, astronaut):
    face = astronaut.crop((150, 30, 300, 210))
    group = Image.new("RGB", (900, 300), "white")
    for i, size in enumerate((150, 220, 180)):
        group.paste(face.resize((size, int(size * 1.2))), (20 + i * 300, 10))
    result = predictor.predict(group)
    widths = [f.box[2] - f.box[0] for f in result.faces]
    assert len(result.faces) == 3 and widths == sorted(widths, reverse=True)
    from facekit.predict import Predictor

    bounded = Predictor(max_faces=2)
    limited = bounded.predict(group)
    assert len(limited.faces) == 2 and limited.skipped_faces == 1


def test_bad_inputs_give_results_with_reasons(predictor):
    results = predictor.predict_images([b"", b"not an image", jpeg(Image.new("RGB", (120, 120), "gray"))],
                                       names=["empty.jpg", "text.jpg", "blank.jpg"])
    assert [bool(r.error) for r in results] == [True, True, False]
    assert "no face" in results[2].reason
    rows = prediction_rows(results)
    assert [row["file"] for row in rows] == ["empty.jpg", "text.jpg", "blank.jpg"]
    assert all(row["error"] for row in rows)


def test_cli_predict_reports_every_input_of_a_mixed_folder(predictor, astronaut, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "astronaut.jpg").write_bytes(jpeg(astronaut))
    (folder / "truncated.jpg").write_bytes(jpeg(astronaut)[:2000])
    (folder / "text.jpg").write_text("a text file renamed .jpg")
    (folder / "blank.png").write_bytes(jpeg(Image.new("RGB", (200, 200), "white")))
    with zipfile.ZipFile(folder / "more.zip", "w") as archive:
        archive.writestr("inside/astronaut.jpg", jpeg(astronaut))
        archive.writestr("../evil.jpg", b"junk")
    done = subprocess.run([*CLI, "predict", str(folder), "--format", "csv"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    table = pd.read_csv(io.StringIO(done.stdout))
    names = [Path(str(f).split("::")[-1]).name for f in table["file"]]
    assert sorted(names) == sorted(["astronaut.jpg", "astronaut.jpg", "truncated.jpg", "text.jpg", "blank.png",
                                    "evil.jpg"])  # the astronaut twice (folder and ZIP), four failures
    faces = table[table["face"].notna()]
    assert len(faces) == 2 and set(faces["gender"]) == {"female"}
    required = {"file", "face", "x1", "y1", "x2", "y2", "det_score", "gender", "p_female", "race", "age",
                "age_low", "age_high", "error"} | {f"p_{race}" for race in labels.RACES}
    assert required <= set(table.columns)
    failures = table[table["face"].isna()]
    assert failures["error"].str.len().min() > 5  # each says why


def test_cli_predict_json_and_nothing_readable(predictor, astronaut, tmp_path):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(jpeg(astronaut))
    done = subprocess.run([*CLI, "predict", str(photo), "--format", "json"], capture_output=True, text=True,
                          timeout=300)
    rows = json.loads(done.stdout)
    assert done.returncode == 0 and len(rows) == 1 and rows[0]["gender"] == "female"
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    done = subprocess.run([*CLI, "predict", str(bad)], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "Traceback" not in done.stderr
