"""Faces in a video file: sample frames, predict them in batches, follow each face, one answer per face.

``analyse_video`` decodes with PyAV, keeps about ``sample_fps`` frames per second of video,
runs them through ``Predictor.predict_images`` a few at a time, follows faces from frame to
frame with ``track.IoUTracker`` and pools each followed face with ``track.summarize_track``.
Frames are decoded, analysed and (optionally) drawn into the annotated video as they come, so
memory stays at one batch of frames however long the file is. ``max_frames``,
``max_seconds`` and ``max_pixels`` bound the work; anything that cannot be read as a video
raises ``VideoError`` with a message a person can act on.

Only the MP4/MOV, AVI and Matroska/WebM demuxers are allowed (FFmpeg's ``format_whitelist``),
and input is read through a Python file object, so a crafted upload cannot make FFmpeg open a
playlist, another file or a URL.
"""
from __future__ import annotations

import io
import math
import os
import time
from contextlib import ExitStack, closing
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Union

from facekit._extras import require

require("video")  # before the imports: a missing extra is one line, not a traceback
import av
from PIL import Image

from facekit import rows
from facekit.predict import FacePrediction, ImageResult, Predictor
from facekit.serving.track import IoUTracker, TrackSummary, summarize_track

DEMUXERS = "mov,avi,matroska"  # FFmpeg's names: mov also reads MP4/M4V, matroska also WebM
SAMPLE_FPS = 2.0
MAX_FRAMES = 1200  # sampled frames per video: 10 minutes at 2 per second, so one upload cannot ask for hours of work
MAX_SECONDS = 3600.0  # video time read; anything later is left out, and the result says so
MAX_PIXELS = 7680 * 4320  # 8K: one larger frame would take over 100 MB as RGB
BATCH_PIXELS = 16_000_000  # frames decoded and held per batch: 8 at 1080p, 1 at 8K
MAX_GAP = 2.0  # seconds a face may go unseen and keep its track

VideoSource = Union[str, os.PathLike, bytes, BinaryIO]


NOTHING_DECODED = "no frame could be decoded: the file is corrupt, truncated or uses an unsupported codec"


class VideoError(ValueError):
    """An input that cannot be analysed as a video; the message says why in plain words."""


@dataclass(frozen=True)
class VideoInfo:
    """What the file says about itself, and how much of it was read."""

    width: int  # as displayed (after the rotation the file asks for)
    height: int
    fps: float | None  # the stream's average frame rate, when it states one
    duration: float | None  # seconds, as the container states it
    codec: str
    rotation: int = 0  # degrees counter-clockwise applied to every frame
    frames_read: int = 0  # frames decoded (sampled or not)
    seconds_read: float = 0.0  # video time covered by the frames read


@dataclass
class FrameRecord:
    """One analysed frame: when it is, its faces and the track each face belongs to."""

    index: int  # frame number in the video, from 0
    time: float  # seconds from the first frame
    faces: list[FacePrediction] = field(default_factory=list)
    tracks: list[int] = field(default_factory=list)  # one track id per face


@dataclass
class VideoResult:
    """A video's answer: one summary per followed face, every analysed frame, and the video's facts."""

    source: str
    info: VideoInfo
    sample_fps: float
    frames: list[FrameRecord] = field(default_factory=list)
    tracks: list[TrackSummary] = field(default_factory=list)
    reason: str = ""  # why there are no tracks
    notes: list[str] = field(default_factory=list)  # what was left out (limits, undecodable parts)
    seconds: float = 0.0  # wall time of the analysis

    @property
    def speed(self) -> float:
        """Seconds of video analysed per second of wall time (above 1: faster than real time)."""
        return self.info.seconds_read / self.seconds if self.seconds else 0.0


def _open(source: VideoSource, stack: ExitStack) -> av.container.InputContainer:
    """An input container whose first video stream is decodable, or a VideoError."""
    if isinstance(source, bytes):
        file: BinaryIO = io.BytesIO(source)
        size = len(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise VideoError(f"no such file: {path}")
        size = path.stat().st_size
        file = stack.enter_context(path.open("rb"))
    else:
        file, size = source, None
    if size == 0:
        raise VideoError("empty file (0 bytes)")
    try:
        container = stack.enter_context(av.open(file, mode="r", options={"format_whitelist": DEMUXERS}))
    except av.FFmpegError as error:
        raise VideoError("not a readable video: the file is corrupt, truncated, or not MP4, MOV, M4V, AVI, MKV or "
                         f"WebM ({(error.strerror or str(error)).lower()})") from None
    if not container.streams.video:
        raise VideoError(f"the file has no video stream (a {container.format.long_name} file with only "
                         f"{', '.join(s.type for s in container.streams) or 'nothing'})")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise VideoError("this video's codec cannot be decoded here (no decoder in this FFmpeg build)")
    stream.thread_type = "AUTO"
    return container


def _info(container: av.container.InputContainer, max_pixels: int) -> VideoInfo:
    """The header's facts; the rotation (and so the displayed size) is known only from a decoded frame."""
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if width < 1 or height < 1:
        raise VideoError("the video stream states no frame size (corrupt header?)")
    if width * height > max_pixels:
        raise VideoError(f"frames are {width}x{height} = {width * height / 1e6:.1f} MP, over the "
                         f"{max_pixels / 1e6:.1f} MP limit")
    duration = container.duration / av.time_base if container.duration else None
    if duration is None and stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    rate = stream.average_rate or stream.guessed_rate
    return VideoInfo(width=width, height=height, fps=round(float(rate), 3) if rate else None,
                     duration=round(duration, 3) if duration else None, codec=stream.codec_context.name)


def _turned(info: VideoInfo, rotation: int) -> VideoInfo:
    """``info`` with the rotation the decoded frames carry, and the size as displayed."""
    if rotation % 180:
        return replace(info, rotation=rotation, width=info.height, height=info.width)
    return replace(info, rotation=rotation)


def _rotation(frame: av.VideoFrame) -> int:
    """The display rotation a frame asks for, in quarter turns counter-clockwise (other angles are ignored)."""
    return int(round((frame.rotation or 0) / 90)) * 90 % 360


def probe_video(source: VideoSource, max_pixels: int = MAX_PIXELS) -> VideoInfo:
    """The video's size, rate, duration and codec, checked by decoding its first frame (not the rest)."""
    with ExitStack() as stack:
        container = _open(source, stack)
        info = _info(container, max_pixels)
        for frame in stack.enter_context(closing(_decoded(container, [], max_pixels))):
            return _turned(info, _rotation(frame))
    raise VideoError(NOTHING_DECODED)


_TURNS = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


def _upright(frame: av.VideoFrame) -> Image.Image:
    """The frame as an RGB image, turned the way the file asks (phones record portrait video sideways)."""
    image = frame.to_image()
    turn = _rotation(frame)
    return image.transpose(_TURNS[turn]) if turn else image


def _decoded(container: av.container.InputContainer, notes: list[str], max_pixels: int) -> Iterator[av.VideoFrame]:
    """Every decodable frame; a corrupt packet is skipped (as players do) and counted in ``notes``.

    Every frame is checked against ``max_pixels``, not only the size the header states: a
    stream may change size mid-way. The first larger frame ends the reading, with a note; the
    frames before it are kept.
    """
    stream = container.streams.video[0]
    bad = 0
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                bad += 1
                continue
            for frame in frames:
                if frame.width * frame.height > max_pixels:
                    notes.append(f"reading stopped at a {frame.width}x{frame.height} frame, over the "
                                 f"{max_pixels / 1e6:.1f} MP limit: the frames before it are analysed")
                    return
                yield frame
    except av.FFmpegError as error:  # the container itself broke off: keep what was read
        notes.append(f"reading stopped early: {(error.strerror or str(error)).lower()}")
    if bad:
        notes.append(f"{bad} corrupt packet{'s' * (bad > 1)} skipped")


def video_encoder() -> str:
    """H.264 when this PyAV build has libx264 (every browser plays it in MP4), else MPEG-4 part 2 (players only)."""
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


class ClipWriter:
    """An MP4 written one frame at a time, opened at the first frame (its size).

    Fragmented MP4 (``empty_moov``) so it can be written to a file object in one pass and
    played while it loads; no B-frames, so the first frame is at time 0 without an edit list.
    """

    def __init__(self, target: str | os.PathLike | BinaryIO, rate: float) -> None:
        self.target = str(target) if isinstance(target, (str, os.PathLike)) else target
        self.rate = Fraction(rate).limit_denominator(1000)
        self.container: av.container.OutputContainer | None = None

    def _start(self, size: tuple[int, int]) -> None:
        self.size = (max(2, size[0] // 2 * 2), max(2, size[1] // 2 * 2))  # 4:2:0 chroma needs even sides
        self.container = av.open(self.target, mode="w", format="mp4",
                                 options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
        encoder = video_encoder()
        options = {"crf": "23", "preset": "veryfast", "bf": "0"} if encoder == "libx264" else {"bf": "0"}
        self.stream = self.container.add_stream(encoder, rate=self.rate, options=options)
        self.stream.width, self.stream.height = self.size
        self.stream.pix_fmt = "yuv420p"

    def write_frame(self, image: Image.Image) -> None:
        if self.container is None:
            self._start(image.size)
        if image.size != self.size:
            image = image.resize(self.size)
        for packet in self.stream.encode(av.VideoFrame.from_image(image)):
            self.container.mux(packet)

    def close(self) -> None:
        if self.container is None:
            return
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


class AnnotatedWriter(ClipWriter):
    """An MP4 of the analysed frames, one per sample, at the sampling rate, each face boxed and labelled."""

    def write(self, image: Image.Image, faces: list[FacePrediction], tracks: list[int]) -> None:
        """Add one analysed frame with its faces boxed and labelled with their tracks."""
        from facekit.viz import annotate_tracks  # only when drawing: viz pulls in plotly

        self.write_frame(annotate_tracks(image, faces, tracks))


CLIP_SIZE = (720, 300)


def drifting_faces(photo: Image.Image, frames: int) -> list[Image.Image]:
    """Frames of a clip with two faces to follow: the photo's face (the sample photo's face box) on the
    left and its mirror image on the right, both moving 3 px right per frame."""
    face = photo.crop((120, 10, 330, 240))
    out = []
    for step in range(frames):
        canvas = Image.new("RGB", CLIP_SIZE, (90, 90, 90))
        canvas.paste(face, (10 + 3 * step, 30))
        canvas.paste(face.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (400 + 3 * step, 40))
        out.append(canvas)
    return out


def sample_clip(seconds: int = 4, fps: int = 10) -> bytes:
    """A short MP4 of ``drifting_faces`` from the shipped public-domain sample photo, for trying the Video page."""
    from facekit.vision.io import SAMPLE_PHOTO, load_image

    buffer = io.BytesIO()
    writer = ClipWriter(buffer, fps)
    for frame in drifting_faces(load_image(SAMPLE_PHOTO), seconds * fps):
        writer.write_frame(frame)
    writer.close()
    return buffer.getvalue()


@dataclass
class _Reading:
    """How far the decoder got: frames decoded, the last one's time, the rotation the frames carry."""

    frames: int = 0
    last: float = 0.0
    rotation: int = 0


def _samples(container: av.container.InputContainer, info: VideoInfo, sample_fps: float, max_seconds: float,
             reading: _Reading, notes: list[str], max_pixels: int) -> Iterator[tuple[int, float, av.VideoFrame]]:
    """(frame number, seconds from the first frame, frame) of the first frame at each 1/sample_fps step
    (or half a frame before it, so 10 frames/s sampled at 2 per second gives frames 0, 5, 10...)."""
    step = 1 / sample_fps
    tolerance = 0.5 / info.fps if info.fps else 0.0  # a frame half a frame early is the nearest one
    first, next_time = None, 0.0
    for frame in _decoded(container, notes, max_pixels):
        if frame.time is None and not info.fps:
            continue  # a frame with no time in a stream with no rate cannot be placed
        moment = frame.time if frame.time is not None else reading.frames / info.fps
        first = moment if first is None else first
        moment -= first
        if moment > max_seconds:
            notes.append(f"only the first {max_seconds:g} s were analysed (the limit)")
            return
        if not reading.frames:
            reading.rotation = _rotation(frame)
        reading.frames += 1
        reading.last = moment
        if moment >= next_time - tolerance:
            next_time = (math.floor((moment + tolerance) / step) + 1) * step
            yield reading.frames - 1, moment, frame


def analyse_video(
    source: VideoSource,
    predictor: Predictor,
    *,
    sample_fps: float = SAMPLE_FPS,
    max_frames: int = MAX_FRAMES,
    max_seconds: float = MAX_SECONDS,
    max_pixels: int = MAX_PIXELS,
    batch: int = 8,
    annotated: str | os.PathLike | BinaryIO | None = None,
    name: str | None = None,
    progress: Callable[[float], None] | None = None,
) -> VideoResult:
    """Faces of a video, followed and summarised; ``annotated`` also writes the boxed frames as an MP4.

    About ``sample_fps`` frames per second of video are analysed (every frame if the video has
    fewer), ``batch`` at a time; ``progress`` is called with the fraction done after each batch.
    """
    if not sample_fps > 0:
        raise VideoError(f"the sampling rate must be above 0 frames per second, not {sample_fps}")

    started = time.perf_counter()
    source_name = name or (str(source) if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "video"))
    with ExitStack() as stack:
        container = _open(source, stack)
        info = _info(container, max_pixels)
        per_batch = max(1, min(batch, BATCH_PIXELS // (info.width * info.height)))
        tracker = IoUTracker(max_missed=max(1, math.ceil(MAX_GAP * sample_fps)))
        writer = None
        if annotated is not None:
            writer = AnnotatedWriter(annotated, min(sample_fps, info.fps or sample_fps))
            stack.callback(writer.close)
        result = VideoResult(source=source_name, info=info, sample_fps=sample_fps)
        reading = _Reading()
        pending: list[tuple[int, float, Image.Image]] = []
        samples = stack.enter_context(closing(_samples(container, info, sample_fps, max_seconds, reading, result.notes,
                                                       max_pixels)))
        for index, moment, frame in samples:
            pending.append((index, moment, _upright(frame)))
            if len(pending) < per_batch and len(result.frames) + len(pending) < max_frames:
                continue
            _analyse_batch(pending, predictor, tracker, result, writer)
            if progress is not None:
                progress(min(1.0, max(len(result.frames) / max_frames, moment / (info.duration or math.inf))))
            if len(result.frames) >= max_frames:
                result.notes.append(f"stopped after {max_frames} analysed frames (the limit), at {moment:.1f} s")
                break
        if pending:
            _analyse_batch(pending, predictor, tracker, result, writer)
        if progress is not None:
            progress(1.0)
    _conclude(result, info, reading, tracker)
    result.seconds = time.perf_counter() - started
    return result


def _conclude(result: VideoResult, info: VideoInfo, reading: _Reading, tracker: IoUTracker) -> None:
    """What was read of the video, a note if it ended early, and one summary per track."""
    if not reading.frames:
        raise VideoError(NOTHING_DECODED)
    end = reading.last + (1 / info.fps if info.fps else 0.0)
    covered = min(info.duration, end) if info.duration else end
    result.info = replace(_turned(info, reading.rotation), frames_read=reading.frames, seconds_read=round(covered, 3))
    if info.duration and covered < info.duration - 1 and not any("limit" in note for note in result.notes):
        result.notes.append(f"frames end at {covered:.1f} s of the stated {info.duration:.1f} s (truncated file?)")
    result.tracks = [summarize_track(track) for track in tracker.tracks()]
    if not result.tracks:
        result.reason = f"no face found in any of the {len(result.frames)} analysed frames"


def _analyse_batch(pending: list[tuple[int, float, Image.Image]], predictor: Predictor, tracker: IoUTracker,
                   result: VideoResult, writer: AnnotatedWriter | None) -> None:
    """Predict a batch of sampled frames, track their faces in time order, draw them; empties ``pending``."""
    predicted = predictor.predict_images([image for _, _, image in pending],
                                         [f"{result.source}@{moment:.2f}s" for _, moment, _ in pending])
    for (index, moment, image), found in zip(pending, predicted):
        record = FrameRecord(index=index, time=round(moment, 3), faces=found.faces)
        record.tracks = tracker.update(found.faces, moment)
        result.frames.append(record)
        if writer is not None:
            writer.write(image, record.faces, record.tracks)
    pending.clear()


FACE_FIELDS_LEFT_OUT = ("file", "face", "error")  # rows.prediction_rows fields a frame's face does not need


def track_rows(result: VideoResult) -> list[dict]:
    """One row per followed face (``rows.TRACK_COLUMNS``), or one row saying why there is none."""
    return rows.track_rows(result.source, result.tracks, result.reason)


def frame_document(result: VideoResult) -> dict:
    """The per-frame JSON: the video's facts, then each analysed frame with its faces and their tracks."""
    frames = []
    for record in result.frames:
        faces = rows.prediction_rows([ImageResult(source=result.source, faces=record.faces)]) if record.faces else []
        frames.append({"frame": record.index, "time": record.time, "faces": [
            {"track": track, **{k: v for k, v in row.items() if k not in FACE_FIELDS_LEFT_OUT}}
            for track, row in zip(record.tracks, faces)]})
    return {"file": result.source, "video": asdict(result.info), "sample_fps": result.sample_fps,
            "notes": result.notes, "tracks": len(result.tracks), "frames": frames}


def sighting_rows(result: VideoResult) -> list[dict]:
    """(track, time) of every face in every analysed frame: the points of ``viz.track_timeline``."""
    return [{"track": track, "time": record.time} for record in result.frames for track in record.tracks]
