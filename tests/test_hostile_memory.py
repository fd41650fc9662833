"""Memory per request is bounded by what is shown, not by the photo's pixels: a 60-megapixel JPEG
(1.2 MB on disk) through `facekit explain` and `facekit predict`, each peak measured in its own process."""
from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

from conftest import CLI
from facekit.models.model import DEFAULT_MODEL
from facekit.vision.io import MAX_PIXELS, SAMPLE_PHOTO

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="the shipped model is missing")]
# The extra peak a photo at the pixel limit may cost over the 512 px sample photo, for each command.
EXTRA_PEAK_MB = {"explain": 1200, "predict": 800}
MEASURE = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True); "
           "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)")


def peak_mb(*args: str) -> int:
    """The peak resident memory (MB) of one CLI run, in a process of its own."""
    done = subprocess.run([sys.executable, "-c", MEASURE, *CLI, *args], capture_output=True, text=True, timeout=600)
    code, peak = done.stdout.split()
    assert code == "0", done.stderr
    return int(peak)


@pytest.fixture(scope="module")
def huge_photo(tmp_path_factory):
    """9000x6650 (just under MAX_PIXELS) with the sample face pasted large; flat elsewhere, so it compresses."""
    width, height = 9000, 6650
    assert width * height <= MAX_PIXELS
    photo = Image.new("RGB", (width, height), (150, 140, 130))
    photo.paste(Image.open(SAMPLE_PHOTO).resize((2048, 2048)), (3000, 2000))
    path = tmp_path_factory.mktemp("huge") / "huge.jpg"
    photo.save(path, quality=85)
    return path


@pytest.mark.parametrize("command", ["explain", "predict"])
def test_a_photo_at_the_pixel_limit_costs_a_bounded_extra_peak(command, huge_photo, tmp_path):
    def args(photo):
        extra = ["--head", "gender", "--out", str(tmp_path / f"{photo.stem}.png")] if command == "explain" else []
        return [command, str(photo), *extra]

    small = peak_mb(*args(SAMPLE_PHOTO))
    huge = peak_mb(*args(huge_photo))
    print(f"\n{command}: peak {small} MB on the sample photo, {huge} MB at 60 MP")
    assert huge - small < EXTRA_PEAK_MB[command]
    if command == "explain":
        assert max(Image.open(tmp_path / "huge.png").size) == 2048  # the overlay is display-sized
