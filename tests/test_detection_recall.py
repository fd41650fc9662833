"""Detection by face size on real photos: the minimum face size is in the original photo's
pixels, matching is greedy by IoU, and the recall report adds up."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import ASTRONAUT_FACE, REPO

from facekit.evaluation.detection import evaluate_detection, match, read_boxes
from facekit.labels import FACE_SIZES, face_size_group
from facekit.vision.detect import DetectorSettings, FaceDetector

PHOTOS = REPO.parent / "shared" / "data" / "wider-dev" / "photos.csv"


def _small_face_on_a_large_photo(astronaut: Image.Image, face_height: int, width: int) -> tuple[Image.Image, tuple]:
    """The astronaut shrunk so her face is ``face_height`` px tall, pasted into a ``width`` px wide photo."""
    scale = face_height / (ASTRONAUT_FACE[3] - ASTRONAUT_FACE[1])
    small = astronaut.resize((round(512 * scale), round(512 * scale)), Image.LANCZOS)
    canvas = Image.new("RGB", (width, width * 3 // 4), (120, 120, 120))
    canvas.paste(small, (width // 2, width // 4))
    x1, y1, x2, y2 = (v * scale for v in ASTRONAUT_FACE)
    return canvas, (x1 + width // 2, y1 + width // 4, x2 + width // 2, y2 + width // 4)


def test_a_face_of_the_minimum_size_is_found_in_a_large_photo(astronaut):
    photo, box = _small_face_on_a_large_photo(astronaut, face_height=48, width=1280)
    found = FaceDetector(DetectorSettings(min_face_size=40))(photo)
    hit, _ = match(found.boxes, np.array([box]))
    assert hit.all()  # shrinking the photo to 640 px first would make this a 24 px face, under 40
    assert DetectorSettings().smallest_face(1280, 960) == 40
    huge = DetectorSettings(max_side=1280)
    assert huge.smallest_face(6400, 4800) == pytest.approx(100)  # capped: 5x shrink, 20 px in the copy


def test_greedy_matching_uses_each_box_once():
    truth = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    detected = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    hit, used = match(detected, truth)
    assert hit.tolist() == [True, False] and used == 1
    assert [face_size_group(h) for h in (5, 20, 79.9, 200)] == [name for _, _, name in FACE_SIZES]


def test_recall_report_on_real_group_photos():
    if not PHOTOS.exists():
        pytest.skip("wider-dev photos are not in ../shared/data")
    boxes = read_boxes(PHOTOS)
    sample = boxes[boxes["photo"].isin(sorted(boxes["photo"].unique())[:4])]
    report = evaluate_detection(sample)
    assert report.photos == 4 and report.faces == len(sample)
    assert sum(s.faces for s in report.by_size) == report.faces
    assert 0 < report.matched <= min(report.faces, report.detections)
    big = report.by_size[-1]
    assert big.faces == 0 or big.recall >= 0.5  # MTCNN finds most faces of 80 px and more
