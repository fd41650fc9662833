"""The Ray engine (facekit.serving.scale) against the single-process path: a real local Ray with 2 CPUs,
the shipped model in every actor, real photos, a photo without a face and a corrupt file."""
from __future__ import annotations

import io
import subprocess
import sys
import zipfile

import pytest
from typer.testing import CliRunner

from facekit.cli import app
from facekit.vision.io import collect_inputs
from facekit.rows import prediction_rows
from facekit._extras import MissingExtra
from facekit.serving.scale import import_ray, name_prefix, read_rows, resolve_sources

from conftest import noise_image


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the module: starting one takes seconds, so every test shares it."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("pyarrow")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory, astronaut):
    """The astronaut at three sizes and a crop, one in a ZIP, a photo with no face and a truncated JPEG."""
    folder = tmp_path_factory.mktemp("ray-photos")
    astronaut.save(folder / "astronaut.jpg", quality=92)
    astronaut.resize((300, 300)).save(folder / "astronaut-small.png")
    astronaut.resize((900, 900)).save(folder / "astronaut-large.jpg", quality=90)
    astronaut.crop((100, 0, 400, 300)).save(folder / "astronaut-crop.webp")
    buffer = io.BytesIO()
    astronaut.crop((50, 0, 450, 400)).save(buffer, format="JPEG", quality=90)
    with zipfile.ZipFile(folder / "more.zip", "w") as archive:
        archive.writestr("inside/crop.jpg", buffer.getvalue())
    noise_image((320, 240)).save(folder / "no-face.png")
    (folder / "corrupt.jpg").write_bytes(buffer.getvalue()[:3000])  # a JPEG cut short
    (folder / "notes.txt").write_text("not a photo; both paths skip it by its name")
    return folder


def assert_same_rows(got: list[dict], expected: list[dict]) -> None:
    assert [(row["file"], row["face"]) for row in got] == [(row["file"], row["face"]) for row in expected]
    for mine, theirs in zip(got, expected):
        assert mine.keys() == theirs.keys()
        for key, value in theirs.items():
            if isinstance(value, float):
                assert mine[key] == pytest.approx(value, abs=1e-5), (row_name(theirs), key)
            else:
                assert mine[key] == value, (row_name(theirs), key)


def row_name(row: dict) -> str:
    return f"{row['file']} face {row['face']}"


@pytest.mark.slow
def test_ray_rows_equal_the_single_process_rows(ray_session, photo_folder, predictor, tmp_path):
    from facekit.serving.scale import predict_with_ray

    expected = prediction_rows(predictor.predict_items(collect_inputs([photo_folder])))
    run = predict_with_ray([photo_folder], tmp_path / "rows.parquet")
    got = read_rows(run.out)

    assert_same_rows(got, expected)
    errors = {row["file"].rsplit("/", 1)[-1]: row["error"] for row in got if row["face"] is None}
    assert errors["no-face.png"] == "no face found"
    assert "corrupt" in errors["corrupt.jpg"]
    assert any(row["file"].endswith("more.zip::inside/crop.jpg") and row["gender"] == "female" for row in got)
    assert (run.photos, run.faces, run.no_face, run.unreadable) == (7, 5, 1, 1)
    assert run.actors == 1 and run.threads == 2  # one 2-thread actor fills the 2 CPUs


@pytest.mark.slow
def test_cli_engine_ray_writes_parquet(ray_session, photo_folder, tmp_path):
    out = tmp_path / "predictions.parquet"
    result = CliRunner().invoke(app, ["predict", f"{photo_folder}/astronaut*", "--engine", "ray",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "4 photos, 4 faces, 0 without a face, 0 unreadable" in result.output
    rows = read_rows(out)
    assert sorted(row["file"].rsplit("/", 1)[-1] for row in rows) == [
        "astronaut-crop.webp", "astronaut-large.jpg", "astronaut-small.png", "astronaut.jpg"]
    assert {row["gender"] for row in rows} == {"female"}


def test_cli_engine_ray_needs_a_parquet_out(photo_folder):
    result = CliRunner().invoke(app, ["predict", str(photo_folder), "--engine", "ray"])
    assert result.exit_code == 1 and "--out FILE.parquet" in result.output


def test_globs_expand_and_uris_keep_their_scheme(photo_folder):
    assert resolve_sources([f"{photo_folder}/*.png"]) == [str(photo_folder / "astronaut-small.png"),
                                                          str(photo_folder / "no-face.png")]
    with pytest.raises(FileNotFoundError, match="nothing matches"):
        resolve_sources([f"{photo_folder}/*.heic"])
    assert name_prefix(["s3://bucket/photos"]) == "s3://"
    assert name_prefix([str(photo_folder)]) == name_prefix(["local:///data"]) == ""


@pytest.mark.slow
def test_facekit_does_not_import_ray():
    code = "import sys, facekit.cli, facekit.predict, facekit.serving.scale; print('ray' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "False"


def test_missing_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(MissingExtra, match=r"pip install 'facekit\[ray\]'"):
        import_ray()
