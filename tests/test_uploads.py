"""Bring-your-own labelled photos: a ZIP and a manifest CSV become an evaluation on real faces,
with each bad member named and every good one kept."""
from __future__ import annotations

import io
import zipfile

import pytest

from facekit.data.manifest import read_manifest
from facekit.data.table import DatasetError
from facekit.evaluation.uploads import unpack_labelled_zip
from facekit.vision.io import SAMPLE_PHOTO

PHOTO = SAMPLE_PHOTO.read_bytes()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


LABELS = ("path,gender,race,age\nfaces/a.jpg,female,White,40\nfaces/b.jpg,female,Latino_Hispanic,\n"
          "faces/broken.jpg,male,Black,30\n../../etc/passwd,male,White,50\n")


def test_a_labelled_zip_unpacks_with_its_csv_and_keeps_paths_inside(tmp_path):
    data = _zip({"faces/a.jpg": PHOTO, "faces/b.jpg": PHOTO, "faces/broken.jpg": b"not a jpeg",
                 "../evil.jpg": PHOTO, "labels.csv": LABELS.encode()})
    upload = unpack_labelled_zip(data, tmp_path / "up")
    assert upload.photos == 3 and ("../evil.jpg", "a path outside the upload; skipped") in upload.skipped
    assert not (tmp_path / "evil.jpg").exists()
    table = read_manifest(upload.manifest)
    frame = table.frame.set_index("file")
    assert frame.loc["faces/b.jpg", "race7"] == "latino_hispanic" and frame.loc["faces/b.jpg", "race"] == "others"
    assert frame.loc["../../etc/passwd", "image"] is None
    assert any("outside the manifest's folder" in a.reason for a in table.anomalies)


def test_no_labels_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="no labels"):
        unpack_labelled_zip(_zip({"a.jpg": PHOTO}), tmp_path / "up")


@pytest.mark.slow
def test_an_uploaded_labelled_set_gives_the_same_report_as_any_dataset(tmp_path):
    from facekit.evaluation.evaluate import evaluate

    data = _zip({"faces/a.jpg": PHOTO, "faces/b.jpg": PHOTO, "faces/broken.jpg": b"not a jpeg"})
    upload = unpack_labelled_zip(data, tmp_path / "up", labels_csv=LABELS.encode())
    result = evaluate(data=upload.manifest, split="all", n_boot=10)
    status = dict(zip(result.predictions["file"], result.predictions["status"]))
    assert status["faces/a.jpg"] == "ok" and status["faces/b.jpg"] == "ok"
    assert status["faces/broken.jpg"].startswith("unreadable")  # one bad photo; the others are kept
    assert result.summary.gender.accuracy == 1.0  # she is labelled female and read as female


@pytest.mark.slow
def test_the_evaluation_page_evaluates_an_upload_and_keeps_it(tmp_path):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    page = str(Path(__file__).parents[1] / "pages" / "4_Model_Evaluation.py")
    at = AppTest.from_file(page, default_timeout=300)
    at.run()
    at.sidebar.selectbox(key="report").set_value("Your own labelled photos").run()
    assert not at.exception, at.exception
    assert not at.button  # nothing to evaluate before an upload
    data = _zip({"faces/a.jpg": PHOTO, "faces/b.jpg": PHOTO, "faces/broken.jpg": b"not a jpeg", "notes.txt": b"hi"})
    at.session_state["own_files"] = (data, LABELS.encode())
    at.run()
    at.button(key="own_evaluate").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    facts = " ".join(item.value for item in at.markdown)
    assert "3 images" in facts or "3 photos" in facts, facts
    assert [button.label for button in at.get("download_button")][0].startswith("Download this report")
    assert any("notes.txt" in str(frame.value) for frame in at.dataframe)  # the unused member is named

    at.session_state["own_files"] = (_zip({"a.jpg": PHOTO}), None)  # a new upload without labels
    at.run()
    at.button(key="own_evaluate").click().run()
    assert "no labels" in at.error[0].value and not at.exception


@pytest.mark.slow
def test_the_evaluation_page_evaluates_a_labelled_dataset_on_the_server(tmp_path):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    (tmp_path / "faces").mkdir()
    (tmp_path / "faces" / "a.jpg").write_bytes(PHOTO)
    (tmp_path / "labels.csv").write_text("path,gender,age\nfaces/a.jpg,female,40\n")
    at = AppTest.from_file(str(Path(__file__).parents[1] / "pages" / "4_Model_Evaluation.py"), default_timeout=300)
    at.run()
    at.sidebar.selectbox(key="report").set_value("Your own labelled photos").run()
    at.radio(key="own_source").set_value("A dataset on this server").run()
    at.sidebar.text_input(key="own_path").input(str(tmp_path / "labels.csv")).run()
    at.button(key="own_evaluate_path").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("1 images" in item.value or "1 image" in item.value for item in at.markdown)
    at.sidebar.text_input(key="own_path").input("/etc/passwd").run()
    assert "outside the folders this app may open" in at.sidebar.error[0].value
