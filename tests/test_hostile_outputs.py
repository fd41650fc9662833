"""Outputs through the CLI never destroy an input, are whole or absent, and are safe in a spreadsheet."""
from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess

import pytest

from conftest import CLI
from facekit.models.model import DEFAULT_MODEL
from facekit.vision.io import SAMPLE_PHOTO

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="the shipped model is missing")]


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd)


@pytest.fixture()
def photo(tmp_path):
    path = tmp_path / "x.jpg"
    shutil.copy(SAMPLE_PHOTO, path)
    return path


@pytest.mark.parametrize("command", [("predict", "{photo}", "--out", "{photo}"),
                                     ("explain", "{photo}", "--head", "gender", "--out", "{photo}"),
                                     ("predict", "{folder}", "--out", "{folder}/./x.jpg")])
def test_an_output_that_is_an_input_is_refused_before_any_work(photo, command):
    before = photo.read_bytes()
    args = [part.format(photo=photo, folder=photo.parent) for part in command]
    done = run(*args)
    assert done.returncode == 1, done.stderr
    assert "is one of the inputs" in done.stderr and "Traceback" not in done.stderr
    assert photo.read_bytes() == before


def test_an_existing_output_is_replaced_whole_and_said_so(photo, tmp_path):
    out = tmp_path / "rows.json"
    out.write_text("old")
    done = run("predict", photo, "--format", "json", "--out", out)
    assert done.returncode == 0, done.stderr
    assert f"{out} exists and will be replaced" in done.stderr
    assert json.loads(out.read_text())[0]["face"] == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left behind


@pytest.mark.parametrize("value", ["0", "-1"])
def test_max_faces_below_one_is_a_usage_error(photo, value):
    done = run("predict", photo, "--max-faces", value)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--max-faces" in done.stderr


def test_formula_file_names_are_neutralised_in_the_csv(photo, tmp_path):
    shutil.copy(photo, tmp_path / "=HYPERLINK(1).jpg")
    done = run("predict", "=HYPERLINK(1).jpg", "x.jpg", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    files = [record[0] for record in csv.reader(io.StringIO(done.stdout))][1:]
    assert "'=HYPERLINK(1).jpg" in files and "x.jpg" in files
    assert not any(name.startswith(("=", "+", "-", "@")) for name in files)
