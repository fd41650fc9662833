"""facekit.vision.io: every kind of bad or odd image gives upright RGB or one clear ImageError."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import exif_rotated_jpeg, noise_image
from facekit.vision.io import MAX_PIXELS, ImageError, collect_inputs, load_image


def encoded(image: Image.Image, format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty file"),
        (b"this is a text file, not a photo", "not an image"),
        (encoded(noise_image((300, 300)), "JPEG")[:400], "corrupt or truncated"),
    ],
)
def test_unreadable_inputs_raise_one_clear_error(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_missing_file_is_an_image_error(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "absent.jpg")


def test_decompression_bomb_is_refused_before_decoding():
    bomb = encoded(Image.new("1", (20000, 20000)))  # a few kB on disk, 400 MP when decoded
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageError, match="MP"):
        load_image(bomb)
    assert 20000 * 20000 > MAX_PIXELS


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16", "1", "I"])
def test_every_mode_becomes_rgb_of_the_same_size(mode):
    source = noise_image((40, 30)).convert(mode if mode not in ("I;16", "I") else "L")
    if mode in ("I;16", "I"):
        source = Image.fromarray(np.asarray(source).astype(np.uint16) * 257)  # 16-bit grey
        if mode == "I":
            source = source.convert("I")
    image = load_image(encoded(source, "TIFF" if mode in ("CMYK", "I") else "PNG"))
    assert image.mode == "RGB" and image.size == (40, 30)
    if mode in ("I;16", "I"):  # 16-bit grey is rescaled, not clipped to white
        assert np.asarray(image).mean() == pytest.approx(np.asarray(noise_image((40, 30)).convert("L")).mean(), abs=2)


def test_transparent_pixels_become_white_not_black():
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    assert np.asarray(load_image(encoded(rgba))).min() == 255


def test_exif_rotation_is_applied(astronaut):
    image = load_image(exif_rotated_jpeg(astronaut))
    assert image.size == astronaut.size
    difference = np.abs(np.asarray(image, float) - np.asarray(astronaut, float)).mean()
    assert difference < 10  # upright again: a sideways image would differ by ~60


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (20, 20), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    first = np.asarray(load_image(buffer.getvalue()))
    assert first[..., 0].mean() > 200 and first[..., 2].mean() < 50


def test_one_pixel_image_loads():
    assert load_image(encoded(Image.new("RGB", (1, 1)))).size == (1, 1)


def test_collect_inputs_walks_folders_and_zips_without_extracting(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(encoded(noise_image(), "JPEG"))
    (tmp_path / "photos" / "notes.txt").write_text("skipped: not an image name")
    with zipfile.ZipFile(tmp_path / "photos" / "more.zip", "w") as archive:
        archive.writestr("../../escape.png", encoded(noise_image()))
        archive.writestr("readme.md", "not an image")
        archive.writestr("bomb.png", b"\0" * 50_000_000, compress_type=zipfile.ZIP_DEFLATED)
    items = {item.name.split("::")[-1].split("/")[-1]: item for item in collect_inputs([tmp_path / "photos", tmp_path / "nope.jpg"])}
    assert set(items) == {"a.jpg", "escape.png", "readme.md", "bomb.png", "nope.jpg"}
    assert load_image(items["escape.png"].read()).size == (64, 64)
    assert not (tmp_path / "escape.png").exists() and not (tmp_path.parent / "escape.png").exists()
    assert "zip bomb" in items["bomb.png"].error and items["bomb.png"].read is None
    assert "not an image" in items["readme.md"].error
    assert "no such file" in items["nope.jpg"].error
