"""Group photos drawn readably: every face numbered, full labels only where they fit, no tag over
another tag or past the photo's edge, on a real 10-face collage."""
from __future__ import annotations

import itertools

import numpy as np

from facekit import viz


def _clear(tags, size) -> None:
    for tag in tags:
        left, top, right, bottom = tag.rect
        assert 0 <= left and 0 <= top and right <= size[0] and bottom <= size[1], tag
    for a, b in itertools.combinations(tags, 2):
        assert not viz._overlaps(a.rect, b.rect), (a, b)


def test_ten_faces_get_numbered_tags_that_never_overlap_or_leave_the_photo(collage, predictor):
    faces = predictor.predict(collage).faces
    assert len(faces) == 10
    tags = viz.face_tags(collage.copy(), faces)
    assert [t.number for t in tags] == list(range(1, 11))
    _clear(tags, collage.size)
    assert any(t.text.startswith(f"{t.number}: ") for t in tags)  # room for some full labels
    drawn = np.asarray(viz.annotate_faces(collage, faces))
    assert drawn.shape == np.asarray(collage).shape and (drawn != np.asarray(collage)).any()
    # The Predict page marks a selected face with a thicker box: only pixels at that box change.
    changed = np.argwhere((np.asarray(viz.annotate_faces(collage, faces, highlight=3)) != drawn).any(axis=2))
    x1, y1, x2, y2 = faces[3].box
    reach = 3 * max(2, round(3 * max(collage.size) / 800))
    assert len(changed) and (changed[:, 1] >= x1 - reach).all() and (changed[:, 1] <= x2 + reach).all()
    assert (changed[:, 0] >= y1 - reach).all() and (changed[:, 0] <= y2 + reach).all()


def test_labels_slide_inside_and_fall_back_to_numbers_when_crowded():
    measure = lambda text: (8.0 * len(text), 12.0)  # noqa: E731
    boxes = [(90.0, 0.0, 100.0, 10.0)] + [(10.0 * i, 40.0, 10.0 * i + 9, 49.0) for i in range(10)]
    texts = ["a long label for the edge face"] + [f"label {i}" for i in range(10)]
    tags = viz.label_layout((100, 60), boxes, texts, measure)
    _clear([t for t in tags if t.rect[2] - t.rect[0] > 0], (100, 60))
    assert tags[0].text == "1"  # 240 px of label cannot fit a 100 px photo: the number instead
    assert all(t.text == str(t.number) or t.text.startswith("label") for t in tags[1:])
