"""Bad and odd inputs through every door (API, CLI, pages): a clear message, the good inputs kept, no crash.

test_io, test_predict, test_data_readers and the page tests hold the basic cases one at a
time; this file adds what they leave out: fuzzing the image and dataset readers, bounded
memory on bombs, odd but valid photos through the whole pipeline, photos too small for the
detector, and one mixed set of bad files through the CLI and both photo pages.
"""
from __future__ import annotations

import csv
import io
import json
import struct
import subprocess
import sys
import tempfile
import warnings
import zipfile
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import ASTRONAUT_FACE, CLI, REPO, box_iou, exif_rotated_jpeg, noise_image
from facekit.data import DatasetError, read_dataset
from facekit.vision.io import SAMPLE_PHOTO, ImageError, load_image
from facekit.models.model import DEFAULT_MODEL

needs_model = pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason=f"the shipped model is missing at {DEFAULT_MODEL}")
FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def encoded(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


@lru_cache(maxsize=None)
def png_bomb(side: int = 20_000) -> bytes:
    """A real greyscale PNG of side x side black pixels: ~390 kB on disk, 400 MP (1.2 GB as RGB) decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    rows = bytes(side + 1) * 500  # 500 rows: a filter byte and the pixels each
    pixels = b"".join(compressor.compress(rows) for _ in range(side // 500)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose frame header claims another size, as a hostile file would."""
    data = bytearray(encoded(noise_image((32, 32)), "JPEG"))
    frame = data.index(b"\xff\xc0")  # SOF0: marker, length, precision, height, width
    data[frame + 5:frame + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def zip_bomb(megabytes: int) -> bytes:
    """A ZIP holding one .jpg of zeros: ~1000:1, far over the ratio facekit.vision.io accepts."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("zeros.jpg", "w", force_zip64=True) as member:
            for _ in range(megabytes):
                member.write(bytes(1 << 20))
    return buffer.getvalue()


def zip_escaping(photo: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../astronaut.jpg", photo)
    return buffer.getvalue()


def odd_photos(astronaut: Image.Image) -> dict[str, bytes]:
    """The astronaut as cameras, scanners and editors write her: every one must still give her face."""
    grey16 = Image.fromarray(np.asarray(astronaut.convert("L")).astype(np.uint16) * 257)
    rgba = astronaut.convert("RGBA")
    rgba.paste((0, 0, 0, 0), (0, 400, 512, 512))  # a transparent band below her face
    animated = io.BytesIO()
    astronaut.save(animated, format="GIF", save_all=True, append_images=[noise_image(astronaut.size)], duration=100)
    return {
        "grey.jpg": encoded(astronaut.convert("L"), "JPEG"),
        "cmyk.jpg": encoded(astronaut.convert("CMYK"), "JPEG"),
        "rgba.png": encoded(rgba, "PNG"),
        "grey16.png": encoded(grey16, "PNG"),
        "palette.png": encoded(astronaut.convert("P"), "PNG"),
        "animated.gif": animated.getvalue(),
        "rotated.jpg": exif_rotated_jpeg(astronaut),
    }


def bad_files() -> dict[str, tuple[bytes, str]]:
    """Files that cannot give a face, each with the words its message must contain."""
    photo = SAMPLE_PHOTO.read_bytes()
    return {
        "empty.jpg": (b"", "empty file"),
        "text.jpg": (b"a text file renamed .jpg", "not an image"),
        "truncated.jpg": (photo[:3000], "corrupt or truncated"),
        "bomb.png": (png_bomb(), "too many pixels"),
        "huge-header.jpg": (jpeg_claiming(60_000, 60_000), "too many pixels"),
        "pixel.png": (encoded(Image.new("RGB", (1, 1)), "PNG"), "too small"),
        "strip.png": (encoded(Image.new("RGB", (4000, 12), "gray"), "PNG"), "too small or too narrow"),
    }


# --- load_image under fuzzing: anything but an image is one ImageError, never another exception ---

SAMPLES = {fmt: encoded(noise_image((48, 40)), fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")}
MAGIC = [sample[:12] for sample in SAMPLES.values()]


def read_or_refuse(data: bytes) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's notes on corrupt EXIF and TIFF tags
            image = load_image(data)
    except ImageError as error:
        assert str(error) and "\n" not in str(error)
    else:
        assert image.mode == "RGB" and image.width >= 1 and image.height >= 1


@FUZZ
@given(st.one_of(st.binary(max_size=2048), st.builds(lambda magic, tail: magic + tail, st.sampled_from(MAGIC),
                                                     st.binary(max_size=2048))))
def test_random_bytes_and_bare_headers_only_ever_raise_image_error(data):
    read_or_refuse(data)


@FUZZ
@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_every_truncation_of_a_real_image_is_read_or_refused(fmt, data):
    sample = SAMPLES[fmt]
    read_or_refuse(sample[:data.draw(st.integers(0, len(sample) - 1), label="cut")])


@FUZZ
@given(st.sampled_from(sorted(SAMPLES)), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                  min_size=1, max_size=8))
def test_corrupted_bytes_of_a_real_image_are_read_or_refused(fmt, changes):
    sample = bytearray(SAMPLES[fmt])
    for position, value in changes:
        sample[position % len(sample)] = value
    read_or_refuse(bytes(sample))


# --- bombs: refused from the header, with memory that stays flat ---

PEAK_RSS = """
import json, resource, sys
from facekit.vision.io import ImageError, collect_uploads, load_image

name, data = sys.argv[1], sys.stdin.buffer.read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if name.endswith(".zip"):
    (item,) = collect_uploads([(name, data)])
    message = item.error if item.read is None else "read"
else:
    try:
        load_image(data)
        message = "decoded"
    except ImageError as error:
        message = str(error)
growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps({"message": message, "growth_mb": growth}))
"""


@pytest.mark.parametrize("name, data, message", [
    ("bomb.png", png_bomb, "too many pixels"),
    ("huge-header.jpg", lambda: jpeg_claiming(60_000, 60_000), "too many pixels"),
    ("bomb.zip", lambda: zip_bomb(40), "zip bomb"),
    ("big.zip", lambda: zip_bomb(200), "over the"),
])
def test_bombs_are_refused_with_peak_memory_growth_under_25_mb(name, data, message):
    """In a fresh interpreter, so the peak RSS is this input's and not an earlier test's."""
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, name], input=data(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    outcome = json.loads(done.stdout)
    assert message in outcome["message"]
    assert outcome["growth_mb"] < 25, outcome  # reading would take 40 MB to 10 GB


# --- the detector: photos too small for a face give a reason ---

def test_photos_too_small_or_narrow_for_a_face_are_a_reason_not_an_error(detector):
    smallest = detector.settings.min_face_size
    sizes = [(1, 1), (smallest - 1, smallest - 1), (smallest, smallest), (3, 2000), (4000, 12), (64, 64)]
    found = detector.detect([Image.new("RGB", size, "gray") for size in sizes])
    assert [d.reason.startswith("image too small") for d in found] == [True, True, False, True, True, False]
    assert all(len(d) == 0 and d.reason for d in found)


# --- the CLI: a folder of everything, one row each, the odd photos giving her face, the bad ones a reason ---

@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory, astronaut) -> Path:
    folder = tmp_path_factory.mktemp("inside") / "mixed"
    folder.mkdir()
    for name, data in {**odd_photos(astronaut), **{name: data for name, (data, _) in bad_files().items()}}.items():
        (folder / name).write_bytes(data)
    (folder / "bomb.zip").write_bytes(zip_bomb(5))
    (folder / "escape.zip").write_bytes(zip_escaping(SAMPLE_PHOTO.read_bytes()))
    return folder


@pytest.mark.slow
@needs_model
def test_cli_predict_keeps_every_good_photo_and_explains_every_bad_one(astronaut, mixed_folder):
    done = subprocess.run([*CLI, "predict", str(mixed_folder), "--format", "csv"], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    table = pd.read_csv(io.StringIO(done.stdout)).fillna({"error": ""})
    rows = {name.split("::")[-1].rsplit("/", 1)[-1]: row for name, row in table.set_index("file").iterrows()}
    assert len(table) == len(rows)  # one row per input: none has two faces, none is missing
    plain = rows["astronaut.jpg"]  # the sample photo, from inside escape.zip
    for name in odd_photos(astronaut):  # the same face, and the same answer
        row = rows[name]
        assert row["error"] == "" and box_iou([row[k] for k in ("x1", "y1", "x2", "y2")], ASTRONAUT_FACE) > 0.6, name
        assert abs(row["p_female"] - plain["p_female"]) < 0.2 and abs(row["age"] - plain["age"]) < 6, name
    for name, (_, message) in bad_files().items():
        assert message in rows[name]["error"] and pd.isna(rows[name]["face"]), name
    assert "zip bomb" in rows["zeros.jpg"]["error"]
    assert not (mixed_folder.parent.parent / "astronaut.jpg").exists()  # the ../ name wrote nothing


@pytest.mark.parametrize("name, content, message", [
    ("fairface_label_val.csv", "file,age,race\nval/1.jpg,20-29,White\n", "needs column(s) gender"),
    ("faces.csv", "path,age\na.jpg,31\nb.jpg,thirty\n", "line 3: 'thirty' is not an age"),
    ("faces.csv", "path,gender,race\na.jpg,F,Klingon\n", "line 2: not an ethnicity label"),
])
def test_cli_data_summary_names_the_bad_column_and_line_in_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    done = subprocess.run([*CLI, "data", "summary", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.startswith("error:") and done.stderr.count("\n") == 1 and message in done.stderr
    assert "Traceback" not in done.stderr


# --- read_dataset under fuzzing: any cell in a known header gives a table or one DatasetError line ---

CELLS = st.one_of(
    st.sampled_from(["", "25", "0", "-3", "1e9", "inf", "nan", "3.5", "Male", "f", "1", "White", "East Asian",
                     "Latino_Hispanic", "4", "7", "20-29", "9-Mar", "more than 70", "twelve", "0 1 2", "a.jpg"]),
    st.text(max_size=8),
)
HEADERS = {
    "faces.csv": ["path", "age", "gender", "race"],
    "fairface_label_val.csv": ["file", "age", "gender", "race"],
    "age_gender.csv": ["age", "ethnicity", "gender", "img_name", "pixels"],
    "labels.csv": ["file_name", "real_age"],
}


@FUZZ
@given(st.sampled_from(sorted(HEADERS)), st.data())
def test_any_cells_under_a_known_header_give_a_table_or_one_dataset_error(name, data):
    header = HEADERS[name]
    rows = data.draw(st.lists(st.lists(CELLS, min_size=len(header), max_size=len(header)), max_size=4), label="rows")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows([header, *rows])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # FairFace's mangled-bin note
                table = read_dataset(path)
        except DatasetError as error:
            assert "\n" not in str(error)
        else:
            assert len(table) <= len(rows)


# --- the pages: a clear message for each bad file, the good ones kept ---

def predict_page_with(name: str, data: bytes) -> AppTest:
    at = AppTest.from_file(str(REPO / "pages" / "2_Predict.py"), default_timeout=180)
    at.session_state["photo"] = (name, data)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.mark.slow
@needs_model
@pytest.mark.parametrize("name", ["empty.jpg", "text.jpg", "bomb.png", "huge-header.jpg"])
def test_predict_page_says_why_a_bad_file_cannot_be_used(name):
    data, message = bad_files()[name]
    at = predict_page_with(name, data)
    assert at.error[0].value.startswith(f"Could not use {name}:") and message in at.error[0].value
    assert not at.get("plotly_chart")


@pytest.mark.slow
@needs_model
def test_predict_page_says_a_tiny_photo_is_too_small():
    data, message = bad_files()["pixel.png"]
    at = predict_page_with("pixel.png", data)
    assert not at.error and at.warning[0].value.startswith("No face found in pixel.png") and message in at.warning[0].value


@pytest.mark.slow
@needs_model
@pytest.mark.parametrize("size", [(60000, 1), (20000, 3), (1, 20000)])
def test_predict_page_says_a_strip_holds_no_face_without_an_exception_box(size):
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 100, 90)).save(buffer, format="PNG")
    at = predict_page_with("strip.png", buffer.getvalue())
    assert not at.error and "too narrow to hold a face" in at.warning[0].value


@pytest.mark.slow
def test_explorer_gallery_names_a_manifest_entry_that_is_not_an_image(tmp_path):
    from facekit.vision.io import SAMPLE_PHOTO

    (tmp_path / "good.jpg").write_bytes(SAMPLE_PHOTO.read_bytes())
    (tmp_path / "notes.jpg").write_text("not an image at all")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,gender,age\ngood.jpg,female,40\nnotes.jpg,male,30\n")
    at = AppTest.from_file(str(REPO / "pages" / "1_Dataset_Explorer.py"), default_timeout=180)
    at.run()
    at.sidebar.selectbox(key="dataset").set_value("A dataset on disk").run()
    at.sidebar.text_input(key="dataset_path").input(str(manifest)).run()
    at.toggle(key="show_faces").set_value(True).run()
    assert not at.exception, at.exception
    assert any("notes.jpg" in warning.value for warning in at.warning)
    assert len(at.image) == 1  # the good face is still shown


@pytest.mark.slow
@needs_model
def test_batch_page_keeps_the_good_photos_and_lists_each_bad_file(astronaut, mixed_folder):
    files = [(path.name, path.read_bytes()) for path in sorted(mixed_folder.iterdir())]
    at = AppTest.from_file(str(REPO / "pages" / "3_Batch_Analytics.py"), default_timeout=300)
    at.session_state["batch_files"] = files
    at.run()
    at.button(key="analyse").click().run()
    assert not at.exception, at.exception
    good = len(odd_photos(astronaut)) + 1  # and the astronaut in escape.zip
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Faces"] == str(good)
    problems = at.dataframe[1].value.set_index("file")["error"]
    for name, (_, message) in bad_files().items():
        assert message in problems[name], name
    assert "zip bomb" in problems["bomb.zip::zeros.jpg"]
    assert len(problems) == len(bad_files()) + 1
