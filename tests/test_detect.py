"""The real MTCNN on real photos, and the crop that training and inference share."""
from __future__ import annotations

import numpy as np
from PIL import Image

from conftest import ASTRONAUT_FACE, box_iou
from facekit.vision.align import LANDMARK_TEMPLATE, CropSettings, crop_face, crop_matrix


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
    from facekit.vision.io import load_image

    name, data = next(iter_utkface_images(utkface_archive))
    chip = load_image(data)
    found = detector(chip)
    assert len(found) == 1, name
    crop = np.asarray(crop_face(chip, found.boxes[0], found.landmarks[0]), float)
    resized = np.asarray(chip.resize((160, 160)), float)
    assert np.abs(crop - resized).mean() < 30  # the template is UTKFace's own geometry


def _facenet_mtcnn():
    """facenet-pytorch's own MTCNN, untouched, for comparison."""
    import torch
    from facenet_pytorch import MTCNN

    return MTCNN(keep_all=True, device=torch.device("cpu")).eval()


def _both_detect_faces(pixels, detector):
    """facenet-pytorch's ``detect_face`` and facekit's on the same (B, H, W, 3) pixels, facekit's settings."""
    import torch
    from facenet_pytorch.models.utils.detect_face import detect_face as facenet_detect_face

    from facekit.vision.mtcnn_fast import detect_face

    settings, ref, ours = detector.settings, _facenet_mtcnn(), detector.mtcnn
    args = (settings.min_face_size, list(settings.thresholds), settings.scale_factor)
    with torch.inference_mode():
        expected = facenet_detect_face(pixels, args[0], ref.pnet, ref.rnet, ref.onet, args[1], args[2], "cpu")
        found = detect_face(pixels, args[0], ours.pnet, ours.rnet, ours.onet, args[1], args[2])
    return expected, found


def _assert_same_faces(expected, found, faces_per_image):
    (expected_boxes, expected_points), (boxes, points) = expected, found
    assert [len(b) for b in boxes] == [len(b) for b in expected_boxes] == faces_per_image
    for want, got, want_points, got_points in zip(expected_boxes, boxes, expected_points, points):
        assert np.abs(got[:, :4] - want[:, :4]).max() < 1e-3  # pixels
        assert np.abs(got[:, 4] - want[:, 4]).max() < 1e-4  # probabilities
        assert np.abs(got_points - want_points).max() < 1e-3


def test_fast_detect_face_finds_what_facenet_pytorch_finds_on_the_sample_photo_and_its_mirror(detector):
    from facekit.vision.io import SAMPLE_PHOTO

    photo = Image.open(SAMPLE_PHOTO).convert("RGB")
    pixels = np.stack([np.asarray(photo), np.asarray(photo)[:, ::-1]])  # a batch of two: boxes stay with their image
    expected, found = _both_detect_faces(pixels, detector)
    _assert_same_faces(expected, found, [1, 1])
    (face, mirrored), width = found[0], photo.width
    assert abs(mirrored[0, 0] - (width - face[0, 2])) < 10  # each box belongs to its own image


def test_fast_detect_face_finds_what_facenet_pytorch_finds_on_utkface_photos(detector, utkface_archive):
    from facekit.data import iter_utkface_images
    from facekit.vision.io import load_image

    chips = []
    for _, data in iter_utkface_images(utkface_archive):
        chips.append(np.asarray(load_image(data).convert("RGB").resize((200, 200))))
        if len(chips) == 4:
            break
    expected, found = _both_detect_faces(chips[0][None], detector)
    _assert_same_faces(expected, found, [1])
    group = np.concatenate([np.concatenate(chips[:2], 1), np.concatenate(chips[2:], 1)], 0)  # four faces, 400x400
    expected, found = _both_detect_faces(group[None], detector)
    _assert_same_faces(expected, found, [4])


def test_area_resample_equals_torch_area_interpolation_for_every_crop(astronaut):
    import torch
    import torch.nn.functional as F

    from facekit.vision.mtcnn_fast import area_resample, summed_area_table

    pixels = np.asarray(astronaut)[None]
    table = summed_area_table(pixels)
    image = torch.from_numpy(pixels.copy()).permute(0, 3, 1, 2).float()
    # (top, bottom, left, right): inside, at the edges, 1 px thin, smaller than the output, the whole photo
    crops = torch.tensor([[55, 180, 175, 275], [0, 37, 490, 512], [300, 301, 10, 90], [200, 213, 200, 209], [0, 512, 0, 512]])
    for size in ((24, 24), (48, 48), (154, 97)):
        resized = area_resample(table, torch.zeros(len(crops), dtype=torch.long), *crops.T, size)
        for crop, got in zip(crops.tolist(), resized):
            top, bottom, left, right = crop
            want = F.interpolate(image[:, :, top:bottom, left:right], size=size, mode="area")[0]
            assert got.shape == want.shape and torch.abs(got - want).max() < 1e-4, (crop, size)


def test_candidates_wholly_outside_the_photo_are_dropped_not_raised():
    import torch

    from facekit.vision.mtcnn_fast import _clip

    boxes = torch.tensor([[100.0, 100.0, 200.0, 200.0, 0.9], [600.0, 100.0, 700.0, 200.0, 0.8], [-90.0, 50.0, -10.0, 130.0, 0.7]])
    kept, image_inds, edges = _clip(boxes, torch.zeros(3, dtype=torch.long), 512, 512)
    assert torch.equal(kept, boxes[:1]) and image_inds.tolist() == [0]
    assert [edge.tolist() for edge in edges] == [[99], [200], [99], [200]]  # rows 99..199, as facenet-pytorch slices
