"""Every dataset reader on small synthetic files made here, and ``read_dataset``'s format detection."""
from __future__ import annotations

import io
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facekit import labels
from facekit.data import (
    COLUMNS,
    DatasetError,
    iter_utkface_images,
    open_image,
    parse_utkface_name,
    read_dataset,
    read_fairface,
    read_image_bytes,
    read_utkface,
)
from facekit.vision.io import ImageError

UTK_NAMES = [
    "25_0_0_20170116200000001.jpg.chip.jpg",
    "3_1_2_20170116200000002.jpg.chip.jpg",
    "80_1_4_20170116200000003.jpg.chip.jpg",
    "61_1_20170109150557335.jpg.chip.jpg",  # no race field
    "55_0_0_20170116232725357jpg.chip.jpg",  # missing dot
    "24_0_1_20170116220224657 .jpg.chip.jpg",  # space
    "holiday.jpg",  # not a UTKFace name
]


def jpeg(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def make_utk_folder(root: Path, names: list[str] = UTK_NAMES) -> Path:
    root.mkdir(parents=True)
    for i, name in enumerate(names):
        (root / name).write_bytes(jpeg((i * 30 % 256, 100, 200)))
    return root


def make_utk_archive(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="UTKFace")
    return archive


@pytest.fixture()
def utk_folder(tmp_path: Path) -> Path:
    return make_utk_folder(tmp_path / "UTKFace")


def test_utkface_name_parsing_keeps_odd_names_and_reports_them() -> None:
    parsed, anomalies = parse_utkface_name("61_1_20170109150557335.jpg.chip.jpg")
    assert (parsed.age, parsed.gender, parsed.race) == (61, "female", None)
    assert "no race" in anomalies[0].reason
    parsed, anomalies = parse_utkface_name("55_0_0_20170116232725357jpg.chip.jpg")
    assert (parsed.age, parsed.gender, parsed.race) == (55, "male", "white")
    assert "missing dot" in anomalies[0].reason
    parsed, anomalies = parse_utkface_name("24_0_1_20170116220224657 .jpg.chip.jpg")
    assert parsed.race == "black" and "space" in anomalies[0].reason
    assert parse_utkface_name("3_1_2_20170116200000002.jpg.chip.jpg") == (parsed.__class__(3, "female", "asian"), [])
    parsed, anomalies = parse_utkface_name("holiday.jpg")
    assert parsed is None and "skipped" in anomalies[0].reason


def test_utkface_folder(utk_folder: Path) -> None:
    table = read_dataset(utk_folder)
    frame = table.frame
    assert list(frame.columns) == list(COLUMNS)
    assert len(table) == 6 and table.dataset == "utkface"
    assert frame["race"].isna().sum() == 1
    row = frame.set_index("file").loc["80_1_4_20170116200000003.jpg.chip.jpg"]
    assert (row["age"], row["age_bin"], row["gender"], row["race"]) == (80.0, "70+", "female", "others")
    assert {a.file for a in table.anomalies} == set(UTK_NAMES[3:])
    assert read_image_bytes(row["image"]) == (utk_folder / row.name).read_bytes()


def test_utkface_duplicate_names_are_skipped(utk_folder: Path) -> None:
    (utk_folder / "copy").mkdir()
    (utk_folder / "copy" / UTK_NAMES[0]).write_bytes(jpeg((1, 2, 3)))
    table = read_utkface(utk_folder)
    assert table.frame["file"].is_unique and len(table) == 6
    assert any("duplicate" in a.reason for a in table.anomalies)


def test_utkface_archive_matches_folder_and_reads_members(
    utk_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path / "cache"))
    archive = make_utk_archive(utk_folder, tmp_path / "UTKFace.tar.gz")
    from_folder, from_archive = read_utkface(utk_folder), read_dataset(archive)
    columns = ["file", "age", "age_bin", "gender", "race"]
    pd.testing.assert_frame_equal(
        from_folder.frame[columns].sort_values("file", ignore_index=True),
        from_archive.frame[columns].sort_values("file", ignore_index=True),
    )
    assert from_archive.anomalies and set(from_archive.anomalies) == set(from_folder.anomalies)
    ref = from_archive.frame["image"].iloc[0]
    assert ref.startswith(f"{archive}::UTKFace/")
    assert read_image_bytes(ref) == (utk_folder / from_archive.frame["file"].iloc[0]).read_bytes()
    assert open_image(ref).size == (16, 16)
    assert any((tmp_path / "cache" / "archives").iterdir())  # unpacked once into the cache
    with pytest.raises(ImageError, match="no member"):
        read_image_bytes(f"{archive}::UTKFace/absent.jpg")
    with pytest.raises(ImageError, match="outside"):
        read_image_bytes(f"{archive}::../../etc/passwd")
    streamed = dict(iter_utkface_images(archive))
    assert set(streamed) == set(from_archive.frame["file"])
    assert all(streamed[name] == (utk_folder / name).read_bytes() for name in streamed)
    assert dict(iter_utkface_images(utk_folder)) == streamed


def test_unreadable_archive_is_a_dataset_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.tar.gz"
    bad.write_bytes(b"this is not gzip data at all" * 10)
    with pytest.raises(DatasetError, match="not a readable tar archive"):
        read_dataset(bad)
    with pytest.raises(DatasetError):
        list(iter_utkface_images(bad))


def write_crlf(path: Path, lines: list[str]) -> Path:
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


def test_fairface_maps_mangled_bins_with_a_warning(tmp_path: Path) -> None:
    csv = write_crlf(
        tmp_path / "fairface_label_val.csv",
        [
            "file,age,gender,race,service_test",
            "val/1.jpg,9-Mar,Male,East Asian,FALSE",
            "val/2.jpg,19-Oct,Female,Latino_Hispanic,TRUE",
            "val/3.jpg,more than 70,Female,Middle Eastern,FALSE",
            "val/4.jpg,20-29,Male,Southeast Asian,FALSE",
            "val/5.jpg,9-Mar,Female,Black,TRUE",
        ],
    )
    (tmp_path / "val").mkdir()
    (tmp_path / "val" / "2.jpg").write_bytes(jpeg((0, 0, 0)))
    with pytest.warns(UserWarning, match="mapped 3 spreadsheet-mangled age bins"):
        table = read_dataset(csv)
    frame = table.frame
    assert list(frame.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert frame["age"].isna().all()
    assert list(frame["age_bin"]) == ["3-9", "10-19", "70+", "20-29", "3-9"]
    assert list(frame["race7"]) == ["east_asian", "latino_hispanic", "middle_eastern", "southeast_asian", "black"]
    assert list(frame["race"]) == [labels.FAIRFACE_TO_RACE[r] for r in frame["race7"]]
    assert list(frame["service_test"]) == [False, True, False, False, True]
    assert set(frame["split"]) == {"val"}
    assert frame["image"].notna().tolist() == [False, True, False, False, False]
    notes = [a for a in table.anomalies if "mangled" in a.reason]
    assert len(notes) == 1 and "'9-Mar' -> '3-9' x2" in notes[0].reason


def test_fairface_folder_reads_train_and_val_without_warning_when_clean(tmp_path: Path) -> None:
    header = "file,age,gender,race,service_test"
    write_crlf(tmp_path / "fairface_label_train.csv", [header, "train/1.jpg,0-2,Male,White,TRUE"])
    write_crlf(tmp_path / "fairface_label_val.csv", [header, "val/1.jpg,60-69,Female,Indian,FALSE"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = read_fairface(tmp_path)
    assert list(table.frame["split"]) == ["train", "val"] and table.anomalies == []


def kaggle_row(age: int, ethnicity: int, gender: int, name: str, pixels: np.ndarray) -> str:
    return f'{age},{ethnicity},{gender},{name},"{" ".join(map(str, pixels.ravel()))}"'


def test_kaggle_bad_pixel_rows_are_anomalies_and_images_decode(tmp_path: Path) -> None:
    face = np.arange(48 * 48, dtype=np.int64).reshape(48, 48) % 256
    csv = tmp_path / "age_gender.csv"
    csv.write_text(
        "\n".join(
            [
                "age,ethnicity,gender,img_name,pixels",
                kaggle_row(30, 1, 0, "a.jpg.chip.jpg", face),
                kaggle_row(40, 3, 1, "b.jpg.chip.jpg", face.ravel()[:-1]),
                '50,4,1,c.jpg.chip.jpg,""',
            ]
        )
    )
    table = read_dataset(csv)
    frame = table.frame
    assert table.dataset == "kaggle_age_gender" and len(frame) == 3
    assert list(frame["race"]) == ["black", "indian", "others"]
    assert list(frame["gender"]) == ["male", "female", "female"]
    assert frame["image"].notna().tolist() == [True, False, False]
    assert [a.file for a in table.anomalies] == ["b.jpg.chip.jpg", "c.jpg.chip.jpg"]
    assert "2303 pixel values" in table.anomalies[0].reason
    decoded = Image.open(io.BytesIO(read_image_bytes(frame["image"].iloc[0])))
    assert decoded.mode == "L" and np.array_equal(np.asarray(decoded), face.astype(np.uint8))
    assert open_image(frame["image"].iloc[0]).size == (48, 48)
    with pytest.raises(ImageError, match="expected 2304"):
        read_image_bytes(f"{csv.resolve()}::row=1")


def test_seed003_real_age_layout(tmp_path: Path) -> None:
    faces = tmp_path / "faces"
    (faces / "final_files").mkdir(parents=True)
    (faces / "final_files" / "000000.jpg").write_bytes(jpeg((9, 9, 9)))
    (faces / "labels.csv").write_text("file_name,real_age\n000000.jpg,4\n000001.jpg,33\n")
    table = read_dataset(faces)
    frame = table.frame
    assert table.dataset == "seed003"
    assert list(frame["age"]) == [4.0, 33.0] and list(frame["age_bin"]) == ["3-9", "30-39"]
    assert frame["gender"].isna().all() and frame["race"].isna().all()
    assert frame["image"].iloc[0] == str((faces / "final_files" / "000000.jpg").resolve())
    assert [a.file for a in table.anomalies] == ["000001.jpg"]


def test_seed003_age_group_layout(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("ID,Class\n1.jpg,YOUNG\n2.jpg,middle\n3.jpg,OLD\n")
    table = read_dataset(tmp_path / "labels.csv")
    frame = table.frame
    assert list(frame["age_group"]) == ["YOUNG", "MIDDLE", "OLD"]
    assert frame["age"].isna().all() and frame["age_bin"].isna().all()
    assert [a.reason for a in table.anomalies] == [f"no images found under {tmp_path.resolve()}: labels only"]


def test_manifest(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.jpg").write_bytes(jpeg((5, 5, 5)))
    csv = tmp_path / "faces.csv"
    csv.write_text("path,age,gender,race\nimg/a.jpg,31,F,East Asian\nimg/b.jpg,,male,2\n")
    table = read_dataset(csv)
    frame = table.frame
    assert table.dataset == "manifest" and list(frame["file"]) == ["img/a.jpg", "img/b.jpg"]
    assert frame["age"].iloc[0] == 31.0 and np.isnan(frame["age"].iloc[1])
    assert list(frame["gender"]) == ["female", "male"] and list(frame["race"]) == ["asian", "asian"]
    assert [a.file for a in table.anomalies] == ["img/b.jpg"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("age_gender.csv", "age,ethnicity,gender,pixels\n1,0,0,0\n", "needs column(s) img_name"),
        ("m.csv", "path,age\na.jpg,twelve\n", "line 2: 'twelve' is not an age"),
        ("m.csv", "path,age\na.jpg,5\nb.jpg,-3\n", "line 3: '-3' is not an age"),
        ("m.csv", "path,gender\na.jpg,robot\n", "column 'gender', line 2: not a gender label"),
        ("f.csv", "file,age,gender,race\nx.jpg,20-29,Male,Martian\n", "not a FairFace ethnicity"),
        ("f.csv", "file,age,gender,race\nx.jpg,200-300,Male,White\n", "not an age bin"),
        ("other.csv", "name,score\na,1\n", "unrecognised CSV header (name, score)"),
        ("empty.csv", "", "empty file"),
        ("binary.csv", b"\xff\xfe\x00\x81\x9f" * 50, "not a readable CSV"),
        ("labels.csv", "file_name,age\na.jpg,3\n", "unrecognised CSV header"),
        ("notes.txt", "hello", "not a supported dataset"),
    ],
)
def test_malformed_inputs_raise_one_line_dataset_errors(tmp_path: Path, name: str, content, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DatasetError) as caught:
        read_dataset(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_path_and_folder_without_faces(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file or folder"):
        read_dataset(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no UTKFace file names"):
        read_dataset(tmp_path / "empty")
