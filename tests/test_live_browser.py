"""The Live page in a real browser: Debian's Chromium sends a face clip as its webcam over WebRTC.

Chromium's fake camera (``--use-fake-device-for-media-stream``) plays the clip given by
``--use-file-for-fake-video-capture``, and ``--use-fake-ui-for-media-stream`` grants it
without a prompt, so the frames take the real path: browser -> WebRTC -> the server's
``video_frame_callback`` -> ``LiveAnalyzer`` -> back to the browser. The server and the
``page`` fixture are test_browser's; only the browser differs. The rates the page shows
are printed (with the load average), not asserted.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from facekit.vision.io import SAMPLE_PHOTO, load_image
from facekit.models.model import DEFAULT_MODEL
from test_browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, SLOW, app_url, page  # noqa: F401  (fixtures)

CLIP_SIZE = (640, 480)  # a webcam's default
CLIP_FPS = 30
MEASURE = 15.0  # seconds of stream over which the rates are sampled

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (`bash scripts/run.sh test` installs "
                                                     "Debian's chromium)"),
    pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason=f"the shipped model is missing at {DEFAULT_MODEL}"),
    pytest.mark.slow,
]


def write_y4m(path: Path, frames: list[np.ndarray], fps: int) -> None:
    """RGB frames as a YUV4MPEG2 clip (4:2:0), the raw format Chromium's fake camera plays in a loop."""
    height, width = frames[0].shape[:2]
    with path.open("wb") as clip:
        clip.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            clip.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory) -> Path:
    """One second of the sample photo swaying a few pixels left and right, as a webcam would see a sitter."""
    photo = load_image(SAMPLE_PHOTO)
    frames = []
    for index in range(CLIP_FPS):
        canvas = Image.new("RGB", CLIP_SIZE, (90, 90, 90))
        canvas.paste(photo, (64 + round(12 * np.sin(2 * np.pi * index / CLIP_FPS)), -16))
        frames.append(np.asarray(canvas))
    path = tmp_path_factory.mktemp("clip") / "astronaut.y4m"
    write_y4m(path, frames, CLIP_FPS)
    return path


@pytest.fixture(scope="module")
def browser(face_clip):
    """Chromium whose camera is the face clip (overrides test_browser's ``browser`` for its ``page``)."""
    args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={face_clip}"]
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield browser
        browser.close()


def metric(page, label: str) -> float:
    value = page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue").inner_text()
    return float(re.sub(r"[^0-9.]", "", value) or 0)


def test_live_page_boxes_the_face_in_a_webcam_stream(page, app_url):  # noqa: F811
    page.goto(f"{app_url}/Live")
    expect(page.get_by_role("heading", name="Live", level=1)).to_be_visible(timeout=SLOW)
    expect(page.get_by_text("Press START")).to_be_visible(timeout=SLOW)
    component = page.frame_locator("iframe[title*=webrtc]")
    component.get_by_role("button", name="START").click()

    expect(page.get_by_text("1 face in view")).to_be_visible(timeout=SLOW)
    expect(page.get_by_text(re.compile(r"^1: (Female|Male) \d+%, \w+ \d+%, \d+ y \(\d+-\d+\)$"))).to_be_visible()
    deadline = time.monotonic() + SLOW / 1000
    while not (metric(page, "Displayed fps") > 0 and metric(page, "Model refreshes/s") > 0):
        assert time.monotonic() < deadline, "the page never showed frames and model refreshes above zero"
        page.wait_for_timeout(500)

    video = component.locator("video")  # what the browser shows: the server's frames, sent back
    decoded_before = video.evaluate("v => v.getVideoPlaybackQuality().totalVideoFrames")
    load_before, samples, started = os.getloadavg()[0], [], time.monotonic()
    while time.monotonic() - started < MEASURE:
        page.wait_for_timeout(1000)
        samples.append([metric(page, name)
                        for name in ("Displayed fps", "Model refreshes/s", "Model run", "Faces found")])
    decoded = video.evaluate("v => v.getVideoPlaybackQuality().totalVideoFrames") - decoded_before
    seconds = time.monotonic() - started
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "live-astronaut.png")
    fps, refreshes, model_ms, faces = np.array(samples).T
    # streamlit-webrtc repeats its last output frame when the callback falls behind, so the
    # browser decodes at the camera's rate; the page's fps counts frames the analyzer returned.
    print(f"\nLive page, {CLIP_SIZE[0]}x{CLIP_SIZE[1]} clip at {CLIP_FPS} fps, one face, {seconds:.0f} s, "
          f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}: displayed fps median {np.median(fps):.1f} "
          f"(min {fps.min():.1f}), model refreshes/s median {np.median(refreshes):.1f} (min {refreshes.min():.1f}), "
          f"model run median {np.median(model_ms):.0f} ms, browser decoded {decoded / seconds:.1f} fps")
    assert (faces == 1).all(), f"faces found per second: {faces}"

    component.get_by_role("button", name="STOP").click()
    expect(page.get_by_text("Press START")).to_be_visible(timeout=SLOW)
    expect(page.get_by_test_id("stException")).to_have_count(0)
