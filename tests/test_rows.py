"""The row writers: CSV a spreadsheet cannot be tricked by and that reads back unchanged, JSON that is JSON."""
from __future__ import annotations

import csv
import io
import json

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from facekit.rows import FORMULA_GUARD, csv_text, json_text, read_csv, table, track_rows

HOSTILE_NAMES = ["=HYPERLINK(\"http://x\",\"y\").jpg", "+1.jpg", "-2+3.jpg", "@SUM(A1).jpg", "\tx.jpg", "'quoted.jpg",
                 "car\rriage.jpg", "new\nline.jpg", "comma,name.jpg", "plain.jpg"]


def test_formula_cells_are_neutralised_and_every_name_stays_in_its_row():
    rows = [{"file": name, "face": 0, "p_female": 0.5, "error": ""} for name in HOSTILE_NAMES]
    text = csv_text(rows)
    records = list(csv.reader(io.StringIO(text, newline="")))
    assert len(records) == 1 + len(HOSTILE_NAMES)  # the \r and \n names did not split a row
    for record, name in zip(records[1:], HOSTILE_NAMES):
        cell = record[0]
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
        assert cell == (FORMULA_GUARD + name if name[0] in "=+-@\t'" else name)
    assert list(read_csv(io.StringIO(text))["file"]) == HOSTILE_NAMES


def test_ids_are_whole_numbers_beside_rows_without_a_face():
    rows = [{"file": "a.jpg", "face": 0, "x1": 1.5}, {"file": "b.jpg", "face": None, "error": "no face found"},
            {"file": "a.jpg", "face": 1, "x1": 2.5}]
    frame = table(rows)
    assert str(frame["face"].dtype) == "Int64" and list(frame.columns) == ["file", "face", "x1", "error"]
    assert csv_text(rows).splitlines()[1].startswith('"a.jpg",0,1.5,')
    assert str(read_csv(io.StringIO(csv_text(rows)))["face"].dtype) == "Int64"


def test_json_has_no_nan_or_infinity():
    text = json_text([{"age": float("inf"), "age_low": float("nan"), "face": pd.NA, "age_high": 3.0}])
    assert json.loads(text) == [{"age": None, "age_low": None, "face": None, "age_high": 3.0}]
    assert "Infinity" not in text and "NaN" not in text


def test_a_video_without_tracks_is_one_row_with_its_reason():
    assert track_rows("v.mp4", [], "no face in any frame") == [
        {"file": "v.mp4", "track": None, "error": "no face in any frame"}]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s), min_size=1, max_size=6))
def test_any_file_name_reads_back_as_written(names):
    frame = pd.DataFrame({"file": names, "face": range(len(names))})
    assert list(read_csv(io.StringIO(csv_text(frame)))["file"]) == names


def test_a_written_output_has_ordinary_permissions_not_the_temporary_files(tmp_path):
    import os
    import stat

    from facekit.files import NEW_FILE_MODE
    from facekit.rows import write_text

    new = write_text(tmp_path / "rows.csv", "a\n")
    assert stat.S_IMODE(os.stat(new).st_mode) == NEW_FILE_MODE
    os.chmod(new, 0o640)
    write_text(new, "b\n")  # replacing keeps the file's own permissions
    assert stat.S_IMODE(os.stat(new).st_mode) == 0o640 and new.read_text() == "b\n"
