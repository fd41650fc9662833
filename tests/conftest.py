"""Shared fixtures: real photos, the real UTKFace archive, and the real detector and model,
each loaded once per test session."""
from __future__ import annotations

import os
import tempfile
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# The tests read the datasets beside the repository unless FACEKIT_DATA says otherwise; set
# before facekit is imported, so subprocesses (the CLI, the app) inherit it too.
os.environ.setdefault("FACEKIT_DATA", str(REPO.parent / "shared" / "data"))
# The pages open typed paths only under the app's roots; the tests' own files live in the temporary folder.
os.environ.setdefault("FACEKIT_APP_ROOTS", tempfile.gettempdir())

from facekit.data.paths import locate_utkface  # noqa: E402
from facekit.models.model import DEFAULT_MODEL  # noqa: E402
from facekit.serving.track import iou as box_iou  # noqa: E402,F401  (tests import it from here)

# The command line as this interpreter runs it: works from any checkout or venv, not only .venv/.
CLI = (sys.executable, "-m", "facekit.cli")
# Hand-annotated face box of skimage's astronaut photo (Eileen Collins, public domain):
# hairline to chin, ear to ear, in the 512x512 image.
ASTRONAUT_FACE = (175.0, 55.0, 275.0, 180.0)


# A test that loads the model or the detector, or reads the full archive, is in the slow tier
# whether or not it says so: the quick tier (-m "not slow") is for the logic that runs in seconds.
HEAVY_FIXTURES = {"predictor", "detector", "utkface_archive"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


@pytest.fixture(scope="session")
def collage(astronaut) -> Image.Image:
    """Ten copies of the astronaut, 5 x 2, in a 1024 px wide photo (the last one touching the right edge)."""
    tile = astronaut.resize((205, 205))
    photo = Image.new("RGB", (1024, 420), "white")
    for k in range(10):
        photo.paste(tile, (min(k % 5 * 205, 1024 - 205), 5 + k // 5 * 210))
    return photo


@pytest.fixture(scope="session")
def utkface_archive() -> Path:
    path = locate_utkface()
    if path is None:
        pytest.skip("no UTKFace archive in FACEKIT_DATA (default ../shared/data) or at FACEKIT_UTKFACE")
    return path


@pytest.fixture(scope="session")
def detector():
    from facekit.vision.detect import FaceDetector

    return FaceDetector()


@pytest.fixture(scope="session")
def predictor():
    if not DEFAULT_MODEL.exists():
        pytest.skip(f"the shipped model is missing at {DEFAULT_MODEL}")
    from facekit.predict import Predictor

    return Predictor()


def free_port() -> int:
    """A loopback port no one listens on now, for a test server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def exif_rotated_jpeg(image: Image.Image, orientation: int = 6) -> bytes:
    """JPEG bytes stored sideways with an EXIF orientation tag, as phones write them."""
    import io

    stored = image.transpose(Image.Transpose.ROTATE_90)  # what a phone held sideways stores
    exif = Image.Exif()
    exif[0x0112] = orientation  # 6: the viewer must rotate 90 degrees clockwise
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", exif=exif.tobytes(), quality=92)
    return buffer.getvalue()


def noise_image(size=(64, 64), seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (*size[::-1], 3), dtype=np.uint8))


def write_small_utkface(folder: Path, archive: Path, train: int, val: int) -> tuple[Path, Path]:
    """The first ``train`` and ``val`` faces of the real archive as a folder, with a split CSV beside it."""
    import pandas as pd

    from facekit.data import load_split, read_image_bytes, read_utkface

    frame = load_split(read_utkface(archive)).frame
    picked = pd.concat([frame[frame["split"] == "train"].head(train), frame[frame["split"] == "val"].head(val)])
    images = folder / "UTKFace"
    images.mkdir()
    for row in picked.itertuples():
        (images / row.file).write_bytes(read_image_bytes(row.image))
    picked[["file", "split"]].to_csv(folder / "split.csv", index=False)
    return images, folder / "split.csv"
