"""The Batch Analytics page under AppTest with a few real photos, loose and in a ZIP."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from facekit.vision.io import SAMPLE_PHOTO
from facekit.models.model import DEFAULT_MODEL

PAGE = str(Path(__file__).parents[1] / "pages" / "3_Batch_Analytics.py")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason=f"the shipped model is missing at {DEFAULT_MODEL}")]


def batch_files() -> list[tuple[str, bytes]]:
    photo = SAMPLE_PHOTO.read_bytes()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("trip/astronaut.jpg", photo)
        handle.writestr("trip/notes.txt", "not a photo")
    wall = io.BytesIO()
    Image.new("RGB", (160, 120), (200, 190, 180)).save(wall, format="PNG")
    return [("one.jpg", photo), ("trip.zip", archive.getvalue()), ("wall.png", wall.getvalue()),
            ("broken.jpg", b"not a jpeg")]


def test_batch_page_counts_faces_breaks_them_down_and_states_the_caveats():
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    assert "never to decide anything about a person" in at.warning[0].value
    assert any("right beyond studio portraits: on web photos (FairFace)" in note.value for note in at.info)
    at.session_state["batch_files"] = batch_files()
    at.run()
    at.button(key="analyse").click().run()
    assert not at.exception, at.exception
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics == {"Faces": "2", "Photos with a face": "2 of 5", "Unreadable or without a face": "3",
                       "Faces per photo": "1.0", "Too small to read reliably": "0"}
    faces = at.dataframe[0].value
    assert list(faces["file"]) == ["one.jpg", "trip.zip::trip/astronaut.jpg"]
    problems = at.dataframe[1].value.set_index("file")["error"]
    assert problems["wall.png"] == "no face found"
    assert problems["broken.jpg"].startswith("not an image file")
    assert "not an image type" in problems["trip.zip::trip/notes.txt"]
    assert len(at.get("plotly_chart")) == 4
    assert any("never for decisions about individuals" in caption.value for caption in at.caption)
    assert [button.label for button in at.get("download_button")] == ["All rows (CSV)"]

    at.run()  # a rerun shows the kept results without analysing again
    assert not at.exception and len(at.get("plotly_chart")) == 4 and not at.button
