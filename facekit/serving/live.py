"""Live video: every frame comes back boxed and labelled at once; the model catches up in the background.

The model takes longer per frame than a webcam leaves between frames, so it cannot run on
every frame. ``LiveAnalyzer``
splits the work:

- ``process(frame)`` is called for every frame (by the video thread). It hands the frame
  to the worker as "the latest", replacing any frame the worker has not started, and
  returns a copy of the frame with the current boxes drawn: cheap, so frames never wait.
- one worker thread runs ``Predictor.predict`` on the latest frame, as often as the CPU
  allows; frames that arrive meanwhile are skipped, never queued, so the boxes lag the
  video by one to two model runs, never more.
- ``IoUTracker`` matches each run's faces to the faces of earlier runs, so a face keeps
  its track id, and its box stays drawn (where it was last seen) on the frames between
  runs and through up to ``MAX_MISSED`` runs in which the detector misses it.

Labels are the average of the track's last ``SMOOTHING`` predictions (``summarize_track``),
not the latest alone, so they do not flicker from frame to frame. Frames are never stored:
the worker holds at most one, and tracks hold predictions, not pixels.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facekit import labels
from facekit.vision.detect import DetectorSettings
from facekit.predict import Predictor
from facekit.serving.track import IoUTracker, TrackSummary, summarize_track
from facekit.viz import GENDER_COLORS, face_label

DETECT_SIDE = 320  # live detection runs on a copy no larger than this
# Faces a webcam shows are near: looking only for faces of a quarter of a 320 px copy keeps frames fast.
LIVE_MIN_FACE = 80
MAX_FACES = 5  # the largest faces of a frame that are classified
SMOOTHING = 5  # a label averages its track's last this many predictions (one to two seconds)
MAX_MISSED = 2  # a face the detector misses is kept drawn through this many model runs
WINDOW = 3.0  # seconds over which frame and refresh rates are counted
IDLE = 5.0  # seconds without a frame after which the worker thread ends (a closed tab sends none)
ICE_SERVERS_ENV = "FACEKIT_ICE_SERVERS"


def ice_servers(environ: dict[str, str] | None = None) -> list[dict]:
    """The STUN/TURN servers for WebRTC, from ``FACEKIT_ICE_SERVERS`` (JSON); none by default.

    None is right when the browser and the server share a machine or a network: they reach
    each other directly, and nothing is asked of an outside server. A remote deployment
    behind NAT needs at least a STUN server, often a TURN relay, e.g.
    ``[{"urls": ["stun:stun.l.google.com:19302"]}]`` or
    ``[{"urls": "turn:turn.example.org:3478", "username": "u", "credential": "p"}]``.
    """
    value = (os.environ if environ is None else environ).get(ICE_SERVERS_ENV, "").strip()
    if not value:
        return []
    try:
        servers = json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(f"{ICE_SERVERS_ENV} is not valid JSON ({error})") from None
    if not isinstance(servers, list) or not all(isinstance(s, dict) and "urls" in s for s in servers):
        raise ValueError(f"{ICE_SERVERS_ENV} must be a JSON list of objects with \"urls\" "
                         '(e.g. [{"urls": ["stun:stun.l.google.com:19302"]}])')
    return servers


def live_predictor(checkpoint: str | Path | None = None) -> Predictor:
    """The shipped model with settings for speed, so the boxes keep up with the video.

    Trade-offs against the Predict page's settings (timings: docs/benchmarks.md):

    - detection on a copy at most ``DETECT_SIDE`` (320) pixels wide, looking for faces of at
      least ``LIVE_MIN_FACE`` pixels of the frame: much quicker, but people a few metres from
      the webcam are missed. Crops still come from the full-size frame.
    - no flip average (one model pass per face, not the mean of the face and its mirror
      image): half the network's work, and probabilities a little less steady. The live
      labels average each face over its last ``SMOOTHING`` model runs instead.
    - at most ``MAX_FACES`` faces classified per frame, so a crowd does not stall the boxes.
    """
    return Predictor(checkpoint, detector=DetectorSettings(max_side=DETECT_SIDE, min_face_size=LIVE_MIN_FACE),
                     max_faces=MAX_FACES,
                     flip_average=False, workers=1)


@dataclass(frozen=True)
class LiveStats:
    """Rates over the last ``WINDOW`` seconds, and the latest model run."""

    fps: float  # frames returned per second
    refreshes_per_s: float  # model runs finished per second
    frames: int  # frames returned in all
    refreshes: int  # model runs in all
    faces: int  # faces found by the latest model run
    skipped_faces: int  # faces beyond MAX_FACES in it, found but not classified
    model_ms: float  # how long the latest model run took: the boxes lag the video by about this much
    error: str = ""  # why the latest model run failed, if it did


@dataclass(frozen=True)
class Overlay:
    """One face as drawn: its track, where it was last seen and its smoothed label."""

    track: int
    box: tuple[float, float, float, float]
    label: str
    color: tuple[int, int, int]  # RGB


def _rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def draw_overlays(frame: np.ndarray, overlays: list[Overlay]) -> np.ndarray:
    """A copy of an RGB frame with each face's box and label, the label above the box (below at the top edge).

    OpenCV on the array rather than ``viz.annotate_faces``: it runs on every frame, and drawing
    in place costs far less than the PIL round trip with its font.
    """
    drawn = frame.copy()
    height, width = frame.shape[:2]
    scale = max(width, height) / 1000
    thickness = max(1, round(2 * scale))
    for overlay in overlays:
        x1, y1, x2, y2 = (round(v) for v in overlay.box)
        cv2.rectangle(drawn, (x1, y1), (x2, y2), overlay.color, thickness + 1)
        (text_width, text_height), baseline = cv2.getTextSize(overlay.label, cv2.FONT_HERSHEY_SIMPLEX, scale,
                                                              thickness)
        lift = text_height + baseline + 2 * thickness
        top = y1 - lift if y1 - lift >= 0 else y2
        cv2.rectangle(drawn, (x1, top), (x1 + text_width + 2 * thickness, top + lift), overlay.color, cv2.FILLED)
        cv2.putText(drawn, overlay.label, (x1 + thickness, top + lift - baseline - thickness),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return drawn


class _Rate:
    """Events per second over a sliding window (shorter while the first window fills)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.times: deque[float] = deque()
        self.first: float | None = None
        self.total = 0

    def add(self, now: float) -> None:
        self.first = now if self.first is None else self.first
        self.times.append(now)
        self.total += 1

    def per_second(self, now: float) -> float:
        while self.times and self.times[0] < now - self.window:
            self.times.popleft()
        span = min(self.window, now - self.first) if self.first is not None else 0.0
        return len(self.times) / span if span > 0 else 0.0


class LiveAnalyzer:
    """Per-stream state: the latest frame, the tracks and the counters; safe to call from any thread.

    One per viewer: tracks and counters belong to one stream. The ``Predictor`` can be shared.
    Frames are RGB ``uint8`` arrays of shape (height, width, 3).
    """

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.tracker = IoUTracker(max_missed=MAX_MISSED)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: tuple[np.ndarray, float] | None = None  # the latest frame the worker has not taken
        self._worker: threading.Thread | None = None
        self._stop = False
        self._overlays: list[Overlay] = []
        self._frames = _Rate(WINDOW)
        self._refreshes = _Rate(WINDOW)
        self._faces = self._skipped = 0
        self._model_seconds = 0.0
        self._error = ""
        self._start = time.monotonic()

    def process(self, frame: np.ndarray) -> np.ndarray:
        """The frame with the current boxes drawn (a copy); the frame becomes the worker's next input."""
        now = time.monotonic()
        with self._lock:
            self._pending = (frame, now)
            if self._worker is None:
                self._stop = False
                self._worker = threading.Thread(target=self._run, name="facekit-live", daemon=True)
                self._worker.start()
            self._wake.notify()
            overlays = self._overlays
            self._frames.add(now)
        return draw_overlays(frame, overlays)

    def overlays(self) -> list[Overlay]:
        """What is drawn now: one entry per face followed."""
        with self._lock:
            return list(self._overlays)

    def stats(self) -> LiveStats:
        now = time.monotonic()
        with self._lock:
            return LiveStats(fps=self._frames.per_second(now), refreshes_per_s=self._refreshes.per_second(now),
                             frames=self._frames.total, refreshes=self._refreshes.total, faces=self._faces,
                             skipped_faces=self._skipped, model_ms=self._model_seconds * 1000, error=self._error)

    def close(self) -> None:
        """Stop the worker after its current run (the next frame starts a new one)."""
        with self._lock:
            worker, self._stop, self._pending = self._worker, True, None
            self._wake.notify()
        if worker is not None:
            worker.join()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._wake.wait_for(lambda: self._pending is not None or self._stop, timeout=IDLE) or self._stop:
                    self._worker = None
                    return
                frame, seen = self._pending  # type: ignore[misc]
                self._pending = None
            started = time.perf_counter()
            try:
                result = self.predictor.predict(frame, "live frame")
            except Exception as error:  # noqa: BLE001 - in a thread an error would only freeze the boxes unseen
                with self._lock:
                    self._error = f"{type(error).__name__}: {error}"
                continue
            seconds = time.perf_counter() - started
            with self._lock:
                self.tracker.update(result.faces, seen - self._start)
                self.tracker.closed.clear()  # a stream runs for hours: keep only what is drawn and smoothed
                for track in self.tracker.open:
                    del track.faces[:-SMOOTHING], track.times[:-SMOOTHING]
                self._overlays = [self._overlay(summarize_track(track)) for track in self.tracker.open]
                self._faces, self._skipped = len(result.faces), result.skipped_faces
                self._model_seconds = seconds
                self._error = result.error
                self._refreshes.add(time.monotonic())

    @staticmethod
    def _overlay(summary: TrackSummary) -> Overlay:
        color = _rgb(GENDER_COLORS[labels.display(summary.gender)])
        return Overlay(track=summary.track, box=summary.box, label=face_label(summary.track, summary), color=color)
