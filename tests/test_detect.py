"""The real MTCNN on real photos, and the crop that training and inference share."""
from __future__ import annotations

import numpy as np
from PIL import Image

from conftest import ASTRONAUT_FACE, box_iou
from facekit.align import LANDMARK_TEMPLATE, CropSettings, crop_face, crop_matrix


def test_astronaut_has_exactly_one_face_on_her_face(detector, astronaut):
    found = detector(astronaut)
    assert len(found) == 1
    assert box_iou(found.boxes[0], ASTRONAUT_FACE) > 0.6
    assert found.scores[0] > 0.99
    left_eye, right_eye = found.landmarks[0][:2]
    assert left_eye[0] < right_eye[0] and abs(left_eye[1] - right_eye[1]) < 15


def test_blank_image_is_an_empty_result_with_a_reason(detector):
    found = detector(Image.new("RGB", (200, 200), "white"))
    assert len(found) == 0 and "no face" in found.reason


def test_huge_photo_is_detected_on_a_copy_and_mapped_back(detector, astronaut):
    big = astronaut.resize((3072, 3072))
    found = detector(big)
    assert len(found) == 1
    assert box_iou(found.boxes[0] / 6, ASTRONAUT_FACE) > 0.6  # in the big photo's own pixels


def test_batch_of_mixed_sizes_matches_one_by_one(detector, astronaut):
    images = [astronaut, astronaut.resize((300, 300)), astronaut.convert("L").convert("RGB"), Image.new("RGB", (90, 120))]
    batch = detector(images)
    single = [detector(image) for image in images]
    assert [len(d) for d in batch] == [len(d) for d in single] == [1, 1, 1, 0]
    for b, s in zip(batch, single):
        assert np.allclose(b.boxes, s.boxes, atol=1.0)


def test_crop_puts_the_landmarks_on_the_template(detector, astronaut):
    found = detector(astronaut)
    settings = CropSettings(size=160)
    matrix = crop_matrix(found.boxes[0], found.landmarks[0], settings)
    mapped = np.c_[found.landmarks[0], np.ones(5)] @ matrix.T
    assert np.abs(mapped - LANDMARK_TEMPLATE * 160).max() < 12  # five points, four degrees of freedom
    crop = crop_face(astronaut, found.boxes[0], found.landmarks[0], settings)
    assert crop.size == (160, 160)


def test_crop_of_a_huge_photo_matches_the_crop_of_the_small_one(detector, astronaut):
    small, big = astronaut, astronaut.resize((2048, 2048), Image.LANCZOS)
    crops = []
    for image in (small, big):
        found = detector(image)
        crops.append(np.asarray(crop_face(image, found.boxes[0], found.landmarks[0]), float))
    assert np.abs(crops[0] - crops[1]).mean() < 12  # same face, same geometry, no aliasing


def test_utkface_chip_recrop_looks_like_the_chip(detector, utkface_archive):
    from facekit.data import iter_utkface_images
    from facekit.io import load_image

    name, data = next(iter_utkface_images(utkface_archive))
    chip = load_image(data)
    found = detector(chip)
    assert len(found) == 1, name
    crop = np.asarray(crop_face(chip, found.boxes[0], found.landmarks[0]), float)
    resized = np.asarray(chip.resize((160, 160)), float)
    assert np.abs(crop - resized).mean() < 30  # the template is UTKFace's own geometry
