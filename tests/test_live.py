"""The live analyzer without a browser: real frames of the sample photo, the real model on its worker thread.

``step`` makes one model run deterministic: ``close`` ends the worker after its run and drops
any pending frame, so the next ``process`` starts a worker whose only input is that frame
(and nothing else may call ``process`` until the run is over).
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import ASTRONAUT_FACE, box_iou
from facekit import labels
from facekit.serving import live
from facekit.vision.io import SAMPLE_PHOTO, load_image
from facekit.models.model import DEFAULT_MODEL

PAGE = str(Path(__file__).parents[1] / "pages" / "6_Live.py")
FRAME = (640, 480)
LABEL = re.compile(rf"^\d+: (Male|Female) \d+%, ({'|'.join(map(labels.display, labels.RACES))}) \d+%, "
                   r"\d+ y \(\d+-\d+\)$")
TIMEOUT = 60.0  # seconds for a model run on busy cores: a generous bound, far above a normal run


def webcam_frame(dx: int = 0) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A 640x480 RGB frame with the astronaut shifted ``dx`` pixels, and where her face is in it."""
    canvas = Image.new("RGB", FRAME, (90, 90, 90))
    left, top = 64 + dx, -16
    canvas.paste(load_image(SAMPLE_PHOTO), (left, top))
    x1, y1, x2, y2 = ASTRONAUT_FACE
    return np.asarray(canvas), (x1 + left, y1 + top, x2 + left, y2 + top)


def blank_frame() -> np.ndarray:
    return np.full((FRAME[1], FRAME[0], 3), 90, np.uint8)


@pytest.fixture()
def analyzer():
    if not DEFAULT_MODEL.exists():
        pytest.skip(f"the shipped model is missing at {DEFAULT_MODEL}")
    analyzer = live.LiveAnalyzer(live.live_predictor())
    yield analyzer
    analyzer.close()


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {TIMEOUT:.0f} s"
        time.sleep(0.02)


def step(analyzer: live.LiveAnalyzer, frame: np.ndarray) -> np.ndarray:
    """Exactly one model run on ``frame``; returns what ``process`` drew on it before the run."""
    analyzer.close()
    runs = analyzer.stats().refreshes
    drawn = analyzer.process(frame)
    wait_for(lambda: analyzer.stats().refreshes > runs, "model run")
    return drawn


@pytest.mark.slow
def test_frames_come_back_boxed_and_labelled_once_the_worker_ran(analyzer):
    frame, face = webcam_frame()
    pristine = frame.copy()
    first = analyzer.process(frame)
    assert first is not frame and np.array_equal(first, pristine)  # nothing known yet: the frame as it came

    calls = 1
    while analyzer.stats().refreshes < 3:  # a webcam's pace until the model ran three times
        analyzer.process(frame)
        calls += 1
        assert calls < TIMEOUT * 30, "the worker never finished a model run"
        time.sleep(1 / 30)
    drawn = analyzer.process(frame)
    calls += 1

    [overlay] = analyzer.overlays()
    assert box_iou(overlay.box, face) > 0.5
    assert LABEL.match(overlay.label), overlay.label
    x1, y1, x2, y2 = (round(v) for v in overlay.box)
    assert tuple(drawn[(y1 + y2) // 2, x1]) == overlay.color  # the box's left edge, in its gender's colour
    assert np.array_equal(frame, pristine)  # drawn on a copy: the caller's frame (and the worker's) untouched

    stats = analyzer.stats()
    assert stats.frames == calls and stats.refreshes >= 3
    assert stats.fps > 0 and stats.refreshes_per_s > 0 and stats.model_ms > 0
    assert stats.faces == 1 and stats.skipped_faces == 0 and stats.error == ""
    print(f"\nlive analyzer alone: {stats.fps:.1f} fps returned, {stats.refreshes_per_s:.1f} model runs/s, "
          f"latest run {stats.model_ms:.0f} ms")


@pytest.mark.slow
def test_the_worker_takes_the_latest_frame_and_skips_the_rest(analyzer):
    frames = [webcam_frame(dx) for dx in range(-100, 100, 10)]  # a face moving right, 20 frames in a burst
    analyzer.close()
    for frame, _ in frames:
        analyzer.process(frame)
    last_face = frames[-1][1]
    wait_for(lambda: any(box_iou(o.box, last_face) > 0.7 for o in analyzer.overlays()), "box on the last frame")
    runs = analyzer.stats().refreshes
    assert runs < len(frames), "every frame was analysed: frames were queued, not skipped"
    print(f"\n{len(frames)} frames in a burst, {runs} model runs")


@pytest.mark.slow
def test_a_box_is_kept_between_runs_and_through_missed_detections(analyzer):
    frame, _ = webcam_frame()
    step(analyzer, frame)
    [seen] = analyzer.overlays()
    left_edge = (round(seen.box[1]) + 5, round(seen.box[0]))
    for missed in range(1, live.MAX_MISSED + 2):
        drawn = step(analyzer, blank_frame())  # the detector finds nothing; drawn before this run
        assert tuple(drawn[left_edge]) == seen.color, f"box not drawn after {missed - 1} missed run(s)"
        if missed <= live.MAX_MISSED:
            assert analyzer.overlays() == [seen], f"box dropped after {missed} missed run(s)"
    assert analyzer.overlays() == []  # gone for longer than MAX_MISSED runs: the track is closed
    assert np.array_equal(analyzer.process(blank_frame()), blank_frame())
    analyzer.close()
    assert analyzer.tracker.open == analyzer.tracker.closed == []  # nothing kept of a face that left


def test_ice_servers_come_from_json_in_the_environment():
    assert live.ice_servers({}) == []
    stun = [{"urls": ["stun:stun.example.org:3478"]}]
    assert live.ice_servers({live.ICE_SERVERS_ENV: ' [{"urls": ["stun:stun.example.org:3478"]}] '}) == stun
    with pytest.raises(ValueError, match="FACEKIT_ICE_SERVERS is not valid JSON"):
        live.ice_servers({live.ICE_SERVERS_ENV: "stun:stun.example.org"})
    with pytest.raises(ValueError, match='JSON list of objects with "urls"'):
        live.ice_servers({live.ICE_SERVERS_ENV: '{"urls": "stun:stun.example.org"}'})


@pytest.mark.slow
def test_live_page_says_what_is_wrong_with_a_bad_ice_setting(monkeypatch):
    monkeypatch.setenv(live.ICE_SERVERS_ENV, "stun:stun.example.org")
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.error[0].value.startswith("The live view cannot start: FACEKIT_ICE_SERVERS is not valid JSON")
    assert "never stored" in at.info[0].value and any("non-commercial research" in c.value for c in at.caption)
