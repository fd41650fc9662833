"""Hostile archives and file names through the CLI: one bad ZIP member or one undecodable file
name costs only its own row, never the batch."""
from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zipfile

import pandas as pd
import pytest

from facekit.vision.io import MAX_ZIP_MEMBERS, SAMPLE_PHOTO, collect_inputs, collect_uploads


def _zip(members: dict[str, bytes], method=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _patch_member(data: bytes, name: str, *, flag: int | None = None, method: int | None = None,
                  size: int | None = None) -> bytes:
    """A ZIP with one member's header fields rewritten in both its local and central headers."""
    data = bytearray(data)
    encoded = name.encode()
    for signature, flag_at, method_at, size_at, name_at in ((b"PK\x03\x04", 6, 8, 18, 30),
                                                             (b"PK\x01\x02", 8, 10, 20, 46)):
        start = 0
        while (at := data.find(signature, start)) >= 0:
            start = at + 4
            if data[at + name_at:at + name_at + len(encoded)] != encoded:
                continue
            if flag is not None:
                data[at + flag_at:at + flag_at + 2] = struct.pack("<H", flag)
            if method is not None:
                data[at + method_at:at + method_at + 2] = struct.pack("<H", method)
            if size is not None:  # compressed and uncompressed size
                data[at + size_at:at + size_at + 8] = struct.pack("<II", size, size)
    return bytes(data)


def _errors(items) -> dict[str, str]:
    return {item.name.split("::")[-1]: item.error for item in items}


def _read_all(items) -> dict[str, str]:
    """Each member's outcome when read: 'ok' or its error message."""
    from facekit.vision.io import ImageError

    outcome = {}
    for item in items:
        if item.read is None:
            outcome[item.name.split("::")[-1]] = item.error
            continue
        try:
            item.read()
            outcome[item.name.split("::")[-1]] = "ok"
        except ImageError as error:
            outcome[item.name.split("::")[-1]] = str(error)
    return outcome


PHOTO = SAMPLE_PHOTO.read_bytes()


@pytest.mark.parametrize("patch, message", [
    ({"flag": 0x1}, "encrypted"),
    ({"method": 9}, "compression method"),  # deflate64
    ({"method": 99}, "compression method"),  # AES (WinZip)
    ({"size": 10_000_000}, "damaged or truncated"),  # member data runs past the end of the file
])
def test_an_unreadable_zip_member_is_an_error_for_that_member_alone(patch, message):
    data = _patch_member(_zip({"good.jpg": PHOTO, "bad.jpg": PHOTO}), "bad.jpg", **patch)
    outcome = _read_all(collect_uploads([("photos.zip", data)]))
    assert outcome["good.jpg"] == "ok"
    assert message in outcome["bad.jpg"]


def test_a_zip_stating_too_many_entries_is_refused_before_its_directory_is_read():
    data = bytearray(_zip({"a.jpg": PHOTO}))
    end = data.rfind(b"PK\x05\x06")
    data[end + 8:end + 12] = struct.pack("<HH", MAX_ZIP_MEMBERS + 1, MAX_ZIP_MEMBERS + 1)
    (item,) = list(collect_uploads([("many.zip", bytes(data))]))
    assert f"{MAX_ZIP_MEMBERS + 1} files, over the limit" in item.error


def test_a_file_name_that_is_not_utf8_is_shown_escaped_and_still_read(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    odd = os.fsdecode(b"caf\xe9.jpg")  # Latin-1 bytes: not UTF-8
    (folder / "good.jpg").write_bytes(PHOTO)
    (folder / odd).write_bytes(PHOTO)
    items = list(collect_inputs([folder]))
    names = sorted(item.name.rsplit("/", 1)[-1] for item in items)
    assert names == ["caf\\xe9.jpg", "good.jpg"]
    assert all(item.read() == PHOTO for item in items)
    for item in items:
        item.name.encode("utf-8")  # printable anywhere: no surrogates left


@pytest.mark.slow
def test_cli_keeps_every_good_row_beside_bad_members_and_names(tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / os.fsdecode(b"caf\xe9.jpg")).write_bytes(PHOTO)
    (folder / "good.jpg").write_bytes(PHOTO)
    broken = _patch_member(_zip({"inside.jpg": PHOTO, "locked.jpg": PHOTO}), "locked.jpg", flag=0x1)
    (folder / "mixed.zip").write_bytes(broken)
    done = subprocess.run([sys.executable, "-m", "facekit.cli", "predict", str(folder), "--format", "csv"],
                          capture_output=True, timeout=600)
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0 and "Traceback" not in stderr, stderr[-2000:]
    table = pd.read_csv(io.BytesIO(done.stdout)).fillna({"error": ""})
    by_name = {name.split("::")[-1].rsplit("/", 1)[-1]: row for name, row in table.set_index("file").iterrows()}
    assert set(by_name) == {"caf\\xe9.jpg", "good.jpg", "inside.jpg", "locked.jpg"}
    assert "encrypted" in by_name["locked.jpg"]["error"]
    for name in ("caf\\xe9.jpg", "good.jpg", "inside.jpg"):
        assert by_name[name]["error"] == "" and by_name[name]["face"] == 0, name
