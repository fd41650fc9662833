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


@pytest.mark.parametrize("detector, capped", [("retinaface", 80), ("mtcnn", 100)])
def test_a_face_of_the_minimum_size_is_found_in_a_large_photo(astronaut, detector, capped):
    photo, box = _small_face_on_a_large_photo(astronaut, face_height=48, width=1280)
    found = FaceDetector(DetectorSettings(detector=detector, min_face_size=40))(photo)
    hit, _ = match(found.boxes, np.array([box]))
    assert hit.all()  # shrinking the photo to 640 px first would make this a 24 px face, under 40
    assert DetectorSettings(detector=detector).smallest_face(1280, 960) == 40
    huge = DetectorSettings(detector=detector, max_side=1280)
    # capped: 5x shrink, and the detector's smallest searched face (16 px for RetinaFace, 20 for MTCNN) in the copy
    assert huge.smallest_face(6400, 4800) == pytest.approx(capped)


def test_retinaface_boxes_get_mtcnn_landmarks(astronaut):
    """RetinaFace's face gets O-Net's landmarks: where MTCNN finds the same face, its crop geometry is kept."""
    ours = FaceDetector(DetectorSettings(detector="retinaface"))(astronaut)
    mtcnn = FaceDetector(DetectorSettings(detector="mtcnn"))(astronaut)
    assert len(ours) == len(mtcnn) == 1
    eye_distance = np.linalg.norm(mtcnn.landmarks[0, 1] - mtcnn.landmarks[0, 0])
    assert np.abs(ours.landmarks[0] - mtcnn.landmarks[0]).max() < 0.05 * eye_distance
    blank = FaceDetector(DetectorSettings(detector="retinaface", score_threshold=0.99))(Image.new("RGB", (320, 240), (90, 90, 90)))
    assert len(blank) == 0 and blank.reason.startswith("no face")


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
    assert big.faces == 0 or big.recall >= 0.5  # the detector finds most faces of 80 px and more


def test_the_crowd_pass_reads_group_photos_not_portraits(astronaut):
    """A portrait is done after the quick pass; group photos are read again and more of their faces found."""
    portrait = FaceDetector()(astronaut)
    assert len(portrait) == 1 and not portrait.crowd_pass
    if not PHOTOS.exists():
        pytest.skip("wider-dev photos are not in ../shared/data")
    boxes = read_boxes(PHOTOS)
    sample = boxes[boxes["photo"].isin(sorted(boxes["photo"].unique())[:4])]
    both = evaluate_detection(sample)
    quick = evaluate_detection(sample, DetectorSettings(crowd_pass=False))
    assert both.matched > quick.matched
    assert both.settings["crowd_pass"] and not quick.settings["crowd_pass"]


def test_the_quick_pass_shrinks_as_far_as_the_minimum_face_allows():
    from facekit.vision.detect import QUICK_FACE

    assert DetectorSettings(min_face_size=40).quick_scale() == pytest.approx(QUICK_FACE / 40)
    assert DetectorSettings(min_face_size=QUICK_FACE // 2).quick_scale() == 1.0  # never enlarged


def test_the_crowd_graphs_boxes_are_in_the_photos_pixels(astronaut):
    """Boxes are in input pixels whether or not its sides are multiples of the graph's stride (it is padded)."""
    from facekit.vision.detect import box_iou
    from facekit.vision.retinaface import CrowdRetinaFace

    graph = CrowdRetinaFace()
    for crop in ((0, 0, 512, 512), (3, 0, 500, 333)):  # 512 is a multiple of the stride, 497 and 333 are not
        pixels = np.asarray(astronaut.crop(crop))
        boxes, scores = graph(pixels, 0.7)
        shifted = np.array(ASTRONAUT_FACE) - np.array(crop[:2] * 2)
        assert len(boxes) == 1 and scores[0] >= 0.7 and box_iou(boxes, shifted)[0] >= 0.5


def test_retinaface_anchors_line_up_with_the_graphs_outputs():
    """The decoder's anchors are one per output row, for sizes that are and are not multiples of the strides."""
    from facekit.vision.retinaface import RetinaFace, anchors

    detector = RetinaFace()
    for height, width in ((64, 96), (75, 130)):
        pixels = np.zeros((height, width, 3), np.uint8)
        loc, _, _ = detector.session(1).run(None, {"input": pixels.transpose(2, 0, 1)[None].astype(np.float32)})
        assert loc.shape[1] == len(anchors(height, width))
    assert anchors(64, 96)[0].tolist() == [4.0, 4.0, 16.0, 16.0] and anchors(64, 96)[1].tolist() == [4.0, 4.0, 32.0, 32.0]


def test_an_unknown_detector_is_refused():
    with pytest.raises(ValueError, match="retinaface, mtcnn"):
        DetectorSettings(detector="haar")
    assert DetectorSettings().score_threshold == 0.7 and DetectorSettings(detector="mtcnn").score_threshold == 0.9
