"""The tracker on real predictions: two faces moving across frames keep their tracks, and a
track's summary pools its frames."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facekit import labels
from facekit.serving.track import IoUTracker, iou, summarize_track


def test_iou_of_known_boxes():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


def frames_of_two_faces(astronaut: Image.Image, steps: int) -> list[Image.Image]:
    """The astronaut's face and its mirror image side by side, both drifting right a little each frame."""
    face = astronaut.crop((120, 10, 330, 240))
    frames = []
    for step in range(steps):
        canvas = Image.new("RGB", (720, 300), (90, 90, 90))
        canvas.paste(face, (10 + 12 * step, 30))
        canvas.paste(face.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (400 + 12 * step, 40))
        frames.append(canvas)
    return frames


@pytest.mark.slow
def test_two_moving_faces_keep_their_tracks(predictor, astronaut):
    tracker = IoUTracker()
    ids_by_side = {"left": set(), "right": set()}
    for step, frame in enumerate(frames_of_two_faces(astronaut, 4)):
        faces = predictor.predict(frame).faces
        assert len(faces) == 2
        for face, track_id in zip(faces, tracker.update(faces, time=step / 5)):
            ids_by_side["left" if face.box[0] < 360 else "right"].add(track_id)
    assert len(ids_by_side["left"]) == len(ids_by_side["right"]) == 1
    assert ids_by_side["left"] != ids_by_side["right"]

    summaries = [summarize_track(track) for track in tracker.tracks()]
    assert [s.frames for s in summaries] == [4, 4]
    for summary, track in zip(summaries, tracker.tracks()):
        assert summary.first_seen == 0 and summary.last_seen == pytest.approx(0.6)
        assert sum(summary.gender_probs.values()) == pytest.approx(1, abs=1e-4)
        assert sum(summary.race_probs.values()) == pytest.approx(1, abs=1e-4)
        assert summary.gender == max(summary.gender_probs, key=summary.gender_probs.get)
        assert summary.race in labels.RACES
        assert summary.age == pytest.approx(np.median([face.age for face in track.faces]), abs=0.051)  # rounded to 0.1
        assert summary.age_low <= summary.age <= summary.age_high


@pytest.mark.slow
def test_a_face_gone_too_long_closes_its_track(predictor, astronaut):
    face = predictor.predict(astronaut).faces
    tracker = IoUTracker(max_missed=2)
    first = tracker.update(face, 0.0)
    for step in range(3):
        tracker.update([], 0.1 * (step + 1))
    assert tracker.open == [] and [track.id for track in tracker.closed] == first
    assert tracker.update(face, 1.0) != first  # the same place later is a new track
