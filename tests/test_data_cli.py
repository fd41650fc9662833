"""`facekit data` as a user runs it: a subprocess, JSON on stdout, one-line errors without tracebacks."""
from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import CLI
from test_data_readers import UTK_NAMES, make_utk_folder

pytestmark = pytest.mark.slow

ARCHIVE = (Path(__file__).parents[1] / "../shared/data/UTKFace.tar.gz").resolve()


def run(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FACEKIT_CACHE": str(cache)}
    return subprocess.run([*CLI, "data", *args], capture_output=True, text=True, env=env, timeout=120)


def test_summary_json_of_a_utkface_folder(tmp_path: Path) -> None:
    folder = make_utk_folder(tmp_path / "UTKFace")
    result = run("summary", str(folder), "--json", cache=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["faces"] == 6 and summary["with_race"] == 5
    assert summary["gender"] == {"male": 3, "female": 3}
    assert summary["race"] == {"white": 2, "black": 1, "asian": 1, "indian": 0, "others": 1}
    assert summary["age"]["min"] == 3 and summary["age"]["max"] == 80 and summary["age"]["median"] == 40
    assert {a["file"] for a in summary["anomalies"]} == set(UTK_NAMES[3:])
    assert all(set(a) == {"file", "reason"} for a in summary["anomalies"])


def test_summary_text_warns_about_mangled_fairface_bins(tmp_path: Path) -> None:
    csv = tmp_path / "fairface_label_val.csv"
    csv.write_bytes(b"file,age,gender,race,service_test\r\nval/1.jpg,19-Oct,Male,Indian,FALSE\r\n")
    result = run("summary", str(csv), cache=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "fairface: 1 faces" in result.stdout and "10-19 1 (100.0%)" in result.stdout
    assert result.stderr.startswith("warning:") and "mapped 1 spreadsheet-mangled" in result.stderr


@pytest.mark.parametrize("name", ["absent", "broken.tar.gz", "notes.csv"])
def test_bad_inputs_exit_non_zero_with_one_line(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name == "broken.tar.gz":
        folder = make_utk_folder(tmp_path / "UTKFace")
        with tarfile.open(path, "w:gz") as tar:
            tar.add(folder, arcname="UTKFace")
        path.write_bytes(path.read_bytes()[:200])  # truncated mid-archive
    elif name == "notes.csv":
        path.write_text("name,score\na,1\n")
    result = run("summary", str(path), "--json", cache=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert result.stderr.startswith("error:") and result.stderr.count("\n") == 1


def test_split_writes_once_and_needs_force_to_replace(tmp_path: Path) -> None:
    folder = make_utk_folder(tmp_path / "UTKFace")
    out = tmp_path / "split.csv"
    first = run("split", "--source", str(folder), "--out", str(out), cache=tmp_path)
    assert first.returncode == 0, first.stderr
    assert out.read_text().startswith("file,split\n") and len(out.read_text().splitlines()) == 7
    again = run("split", "--source", str(folder), "--out", str(out), cache=tmp_path)
    assert again.returncode != 0 and "exists" in again.stderr and "Traceback" not in again.stderr
    forced = run("split", "--source", str(folder), "--out", str(out), "--force", cache=tmp_path)
    assert forced.returncode == 0, forced.stderr


@pytest.mark.skipif(not ARCHIVE.is_file(), reason=f"the shared data folder {ARCHIVE.parent} is absent")
def test_summary_json_of_the_real_archive(tmp_path: Path) -> None:
    result = run("summary", str(ARCHIVE), "--json", cache=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["faces"] == 23_707 and summary["with_race"] == 23_704
    assert summary["gender"] == {"male": 12_390, "female": 11_317}
    assert summary["race"] == {"white": 10_078, "black": 4_525, "asian": 3_434, "indian": 3_975, "others": 1_692}
    assert summary["age"]["min"] == 1 and summary["age"]["median"] == 29 and summary["age"]["max"] == 116
    assert len(summary["anomalies"]) == 5


def test_kaggle_csv_of_a_utkface_folder_reads_back_with_the_same_labels_and_pixels(tmp_path: Path) -> None:
    from facekit.data import open_image, read_dataset
    from facekit.data.kaggle import SIDE
    from test_data_readers import make_utk_folder

    folder = make_utk_folder(tmp_path / "UTKFace")
    out = tmp_path / "age_gender.csv"
    done = subprocess.run([*CLI, "data", "kaggle-csv", "--source", str(folder), "--split", "all", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    source, written = read_dataset(folder).frame, read_dataset(out)
    complete = source.dropna(subset=["age", "gender", "race"]).set_index("file")
    assert f"{len(complete)} faces of the all split" in done.stdout and not written.anomalies
    back = written.frame.set_index("file")
    assert set(back.index) == set(complete.index)
    for column in ("age", "gender", "race"):
        assert (back[column].astype(object) == complete.loc[back.index, column].astype(object)).all(), column
    assert open_image(written.frame["image"].iloc[0]).size == (SIDE, SIDE)  # 48x48 grey, as seed 002 reads
    refused = subprocess.run([*CLI, "data", "kaggle-csv", "--source", str(folder), "--split", "test", "--out",
                              str(out)], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and "--split all writes every face" in refused.stderr
