"""The Predict page under Streamlit's AppTest, with the real detector and model.

AppTest cannot upload files, so tests set the page's ``photo`` session entry, the
(name, bytes) pair that the uploader, the webcam and the sample button set.
"""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from facekit.models.model import DEFAULT_MODEL

PAGE = str(Path(__file__).parents[1] / "pages" / "2_Predict.py")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason=f"the shipped model is missing at {DEFAULT_MODEL}")]


def page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    return at


def images(at: AppTest) -> list[str]:
    return [caption for image in at.get("image") for caption in image.captions]


def test_sample_photo_gives_one_box_three_heads_and_a_grad_cam():
    at = page()
    assert any("not stored" in info.value for info in at.info)
    at.button(key="sample").click().run()
    assert not at.exception, at.exception
    assert at.subheader[0].value == "1 face in astronaut.jpg"
    assert [metric.label for metric in at.metric] == ["Gender", "Age"]
    assert at.metric[0].value in ("Male", "Female") and at.metric[1].value.endswith("years")
    assert len(at.get("plotly_chart")) == 2  # the ethnicity bars and the age distribution
    assert any(caption.value.startswith("80% interval:") for caption in at.caption)
    shown = images(at)
    assert "Each face boxed and labelled" in shown
    assert any(caption.startswith("Grad-CAM of the gender head") for caption in shown)
    assert any(caption.value.startswith("Time per step: reading") for caption in at.caption)
    assert [button.label for button in at.get("download_button")] == [
        "Results (CSV)", "Results (JSON)", "Annotated image (PNG)"]

    analysis = at.session_state["analysis"]
    at.selectbox(key="cam_head").set_value("age").run()
    at.radio(key="cam_method").set_value("gradcam++").run()
    assert not at.exception, at.exception
    assert any(caption.startswith("Grad-CAM++ of the age head, target: each face's prediction") for caption in images(at))
    assert at.session_state["analysis"] is analysis  # widget reruns reuse the detection
    assert set(analysis.explanations) == {("gender", None, "gradcam"), ("age", None, "gradcam"), ("age", None, "gradcam++")}


def test_corrupt_upload_shows_an_error_and_the_page_keeps_working():
    at = page()
    at.session_state["photo"] = ("holiday.jpg", b"\xff\xd8\xff\xe0 cut off here")
    at.run()
    assert not at.exception, at.exception
    assert at.error[0].value.startswith("Could not use holiday.jpg: image data is corrupt or truncated")
    assert not at.get("plotly_chart")
    at.button(key="sample").click().run()
    assert not at.exception, at.exception
    assert not at.error and at.subheader[0].value == "1 face in astronaut.jpg"


def test_photo_without_a_face_says_so():
    at = page()
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 190, 180)).save(buffer, format="PNG")
    at.session_state["photo"] = ("wall.png", buffer.getvalue())
    at.run()
    assert not at.exception, at.exception
    assert at.warning[0].value.startswith("No face found in wall.png")
    assert not at.get("plotly_chart")
