"""Hostile face archives: members bounded by their headers before any data is read, unsafe members
skipped one by one with an anomaly each, and the good faces of the same archive kept."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from facekit.data import DatasetError, read_dataset
from facekit.data import utkface
from facekit.data.images import extracted_archive
from facekit.vision.io import ImageError, SAMPLE_PHOTO

GOOD = "UTKFace/30_1_0_20170109150557335.jpg.chip.jpg"


def archive(path: Path, members: dict[str, bytes | int], link: str | None = None) -> Path:
    """A .tar.gz with these members; an int is a member of that many zero bytes (compresses to little)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(data, int):
                info.size = data
                tar.addfile(info, _Zeros(data))
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo("UTKFace/link.jpg.chip.jpg")
            info.type, info.linkname = tarfile.SYMTYPE, link
            tar.addfile(info)
    return path


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n

    def readable(self) -> bool:
        return True


def test_unsafe_and_oversized_members_are_each_an_anomaly_and_the_good_face_stays(tmp_path, monkeypatch):
    monkeypatch.setattr(utkface, "MAX_TAR_MEMBER_BYTES", 1024 * 1024)
    path = archive(tmp_path / "faces.tar.gz", {
        GOOD: SAMPLE_PHOTO.read_bytes(),
        "../40_0_1_20170109150557335.jpg.chip.jpg": SAMPLE_PHOTO.read_bytes(),
        "/abs/50_0_2_20170109150557335.jpg.chip.jpg": SAMPLE_PHOTO.read_bytes(),
        "UTKFace/60_0_3_20170109150557335.jpg.chip.jpg": 8 * 1024 * 1024,
    }, link="/etc/passwd")
    table = read_dataset(path)
    assert list(table.frame["file"]) == [Path(GOOD).name]
    reasons = {a.file: a.reason for a in table.anomalies}
    assert "outside the archive" in reasons["../40_0_1_20170109150557335.jpg.chip.jpg"]
    assert "outside the archive" in reasons["/abs/50_0_2_20170109150557335.jpg.chip.jpg"]
    assert "over the 1 MB" in reasons["UTKFace/60_0_3_20170109150557335.jpg.chip.jpg"]
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path / "cache"))
    folder = extracted_archive(path)  # unpacking keeps the good member and writes nothing else
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [GOOD]
    assert not (tmp_path / "40_0_1_20170109150557335.jpg.chip.jpg").exists()


def test_an_archive_that_unpacks_past_the_total_is_refused_before_reading_it(tmp_path, monkeypatch):
    monkeypatch.setattr(utkface, "MAX_TAR_MEMBER_BYTES", 10 * 1024 * 1024)
    monkeypatch.setattr(utkface, "MAX_TAR_TOTAL_BYTES", 16 * 1024 * 1024)
    members = {f"UTKFace/{20 + i}_0_0_2017010915055733{i}.jpg.chip.jpg": 6 * 1024 * 1024 for i in range(4)}
    path = archive(tmp_path / "bomb.tar.gz", members)
    assert path.stat().st_size < 200_000
    with pytest.raises(DatasetError, match="unpacks to more than"):
        read_dataset(path)
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ImageError, match="unpacks to more than"):
        extracted_archive(path)
    assert not any((tmp_path / "cache").rglob("*.jpg"))  # the partial folder is gone


def test_too_many_members_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(utkface, "MAX_TAR_MEMBERS", 5)
    members = {f"UTKFace/{20 + i}_0_0_20170109150557335{i}.jpg.chip.jpg": b"x" for i in range(6)}
    with pytest.raises(DatasetError, match="more than 5 members"):
        read_dataset(archive(tmp_path / "many.tar.gz", members))
