"""Grad-CAM (facekit.explain and `facekit explain`): maps land on the face, for every head and target."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import ASTRONAUT_FACE
from facekit.vision.align import CropSettings, crop_matrix
from facekit.cli import app
from facekit.explain import EXPECTED_AGE, HEAD_TARGETS, Explainer, Explanation, FaceExplanation, check_target
from facekit.models.model import DEFAULT_MODEL

needs_model = pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason=f"the shipped model is missing at {DEFAULT_MODEL}")


def mass_inside(heat: np.ndarray, box) -> float:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return float(heat[y1:y2, x1:x2].sum() / heat.sum())


def test_photo_heat_uses_the_inverse_crop_matrix():
    """A hot spot at the crop's centre lands on the photo point the crop's centre came from."""
    box = np.array([200.0, 100.0, 300.0, 220.0])
    matrix = crop_matrix(box, None, CropSettings(size=160, align=False))
    cam = np.zeros((160, 160), np.float32)
    cam[78:82, 78:82] = 1.0
    face = FaceExplanation(box=tuple(box), target="female", score=0.9, cam=cam, matrix=matrix)
    heat, coverage = Explanation("gender", "gradcam", (640, 480), (face,), 0.0).photo_heat()
    y, x = np.unravel_index(heat.argmax(), heat.shape)
    assert abs(x - 250) <= 2 and abs(y - 160) <= 2  # the box's centre, not the crop's (80, 80)
    assert coverage[160, 250] == 1 and coverage[10, 10] == 0 and heat[coverage == 0].max() == 0


def test_bad_head_or_target_names_the_choices():
    with pytest.raises(ValueError, match="choose one of gender, race, race7, age"):
        check_target("colour", None)
    with pytest.raises(ValueError, match="choose one of male, female"):
        check_target("gender", "asian")
    check_target("age", "20-29")


@pytest.fixture(scope="module")
def explainer(predictor):
    return Explainer(predictor.model)


@pytest.fixture(scope="module")
def astronaut_faces(predictor, astronaut):
    result = predictor.predict(astronaut)
    assert len(result.faces) == 1
    return result.faces


@pytest.mark.parametrize("head", list(HEAD_TARGETS))
@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_heat_is_on_the_face_for_every_head_and_method(explainer, astronaut, astronaut_faces, head, method):
    if head == "race7" and explainer.model.config.ethnicities != 7:
        with pytest.raises(ValueError, match="UTKFace's 5 classes"):
            explainer.explain(astronaut, astronaut_faces, head, method=method)
        return
    explanation = explainer.explain(astronaut, astronaut_faces, head, method=method)
    heat, _ = explanation.photo_heat()
    assert heat.shape == (astronaut.height, astronaut.width) and heat.max() > 0.5
    assert mass_inside(heat, ASTRONAUT_FACE) > 0.6  # the face is 5% of the photo


def test_a_five_class_model_refuses_race7_maps_before_any_work(astronaut, astronaut_faces):
    from facekit.models.model import load_checkpoint

    five = load_checkpoint(DEFAULT_MODEL.with_name("facekit-utkface.safetensors")).model  # the UTKFace-only model
    assert five.config.ethnicities == 5
    with pytest.raises(ValueError, match="UTKFace's 5 classes"):
        Explainer(five).explain(astronaut, astronaut_faces, "race7")


def test_the_photo_heat_is_display_sized_and_still_on_the_face(explainer, astronaut, astronaut_faces):
    heat, coverage = explainer.explain(astronaut, astronaut_faces, "gender").photo_heat(max_side=128)
    assert heat.shape == coverage.shape == (128, 128)
    quarter = tuple(value / 4 for value in ASTRONAUT_FACE)  # the 512 px photo at 128 px
    assert mass_inside(heat, quarter) > 0.6


def test_targets_explain_their_own_output(explainer, astronaut, astronaut_faces):
    face = astronaut_faces[0]
    female = explainer.explain(astronaut, astronaut_faces, "gender", "female").faces[0]
    male = explainer.explain(astronaut, astronaut_faces, "gender", "male").faces[0]
    assert female.score + male.score == pytest.approx(1.0, abs=1e-4)
    assert not np.allclose(female.cam, male.cam)
    default = explainer.explain(astronaut, astronaut_faces, "race").faces[0]
    assert default.target == face.race
    age = explainer.explain(astronaut, astronaut_faces, "age").faces[0]
    assert age.target == EXPECTED_AGE and abs(age.score - face.age) < 5  # prediction averages a flipped view
    bin_score = explainer.explain(astronaut, astronaut_faces, "age", face.age_bin).faces[0].score
    assert bin_score == pytest.approx(face.age_bin_probs[face.age_bin], abs=0.15)


def test_a_batch_of_faces_gives_each_face_its_own_map(explainer, astronaut, astronaut_faces):
    single = explainer.explain(astronaut, astronaut_faces, "gender").faces[0]
    faces = explainer.explain(astronaut, astronaut_faces * 3, "gender").faces
    assert len(faces) == 3
    for face in faces:
        np.testing.assert_allclose(face.cam, single.cam, atol=1e-4)


runner = CliRunner()


@pytest.mark.slow
@needs_model
def test_cli_explain_writes_an_overlay_hot_on_the_face(tmp_path, astronaut):
    photo = tmp_path / "astronaut.png"
    astronaut.save(photo)
    out = tmp_path / "overlay.png"
    result = runner.invoke(app, ["explain", str(photo), "--head", "gender", "--target", "female",
                                 "--method", "gradcam++", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "face 0: gender female" in result.output and "overlay:" in result.output
    overlay = np.asarray(Image.open(out).convert("RGB"), np.int16)
    original = np.asarray(astronaut, np.int16)
    assert overlay.shape == original.shape
    changed = np.abs(overlay - original).sum(2) > 30
    assert changed.any()
    assert mass_inside(changed.astype(float), (145, 25, 305, 210)) > 0.95  # the face box with a margin
    hot = (overlay[..., 0] > 200) & (overlay[..., 2] < 120) & changed  # red: the jet colour map's top
    assert hot.any() and mass_inside(hot.astype(float), ASTRONAUT_FACE) > 0.9


@pytest.mark.slow
def test_cli_explain_errors_are_one_line(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    for args, message in [
        ([str(text), "--head", "colour"], "unknown head 'colour'"),
        ([str(text), "--head", "race", "--target", "female"], "unknown target 'female' for the race head"),
        ([str(text), "--head", "age", "--method", "lime"], "unknown method 'lime'"),
        ([str(text), "--head", "age"], "not an image file"),
    ]:
        result = runner.invoke(app, ["explain", *args, "--out", str(tmp_path / "o.png")])
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]


@pytest.mark.slow
@needs_model
def test_cli_explain_says_when_there_is_no_face(tmp_path):
    blank = tmp_path / "wall.png"
    Image.new("RGB", (200, 200), (180, 170, 160)).save(blank)
    result = runner.invoke(app, ["explain", str(blank), "--head", "gender", "--out", str(tmp_path / "o.png")])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {blank}: no face found"
    assert not (tmp_path / "o.png").exists()
