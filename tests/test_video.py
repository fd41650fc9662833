"""Video files end to end on a clip made here: the astronaut's face and its mirror image drifting
across 3 s at 10 frames/s, analysed through the API, the CLI and the Video page; and files that
are empty, truncated, not videos or still images, which must fail with a clear message."""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from facekit import labels
from facekit.cli import app
from facekit.vision.io import SAMPLE_PHOTO, is_video_name
from facekit.rows import TRACK_COLUMNS
from facekit.serving.video import (CLIP_SIZE, VideoError, analyse_video, drifting_faces, frame_document,
                           probe_video, track_rows, video_encoder)

PAGE = str(Path(__file__).parents[1] / "pages" / "5_Video.py")
SECONDS, FPS = 3, 10


def canvas_frames(astronaut: Image.Image, faces: bool = True) -> list[Image.Image]:
    """The clip's frames: the face on the left and its mirror on the right, both moving 3 px right per frame."""
    if faces:
        return drifting_faces(astronaut, SECONDS * FPS)
    return [Image.new("RGB", CLIP_SIZE, (90, 90, 90)) for _ in range(SECONDS * FPS)]


def write_clip(frames: list[Image.Image], rotation: int = 0) -> bytes:
    """H.264 in MP4 as cameras write it: the index (moov) at the end, so a cut file has none."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=FPS)
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_image(frame)))
        container.mux(stream.encode())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def clip(astronaut, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    path.write_bytes(write_clip(canvas_frames(astronaut)))
    return path


@pytest.fixture(scope="module")
def analysed(clip, predictor, tmp_path_factory):
    annotated = tmp_path_factory.mktemp("annotated") / "clip-annotated.mp4"
    return analyse_video(clip, predictor, sample_fps=2, annotated=annotated), annotated


def test_video_names():
    assert all(is_video_name(f"clip{suffix}") for suffix in (".mp4", ".MOV", ".avi", ".mkv", ".webm", ".m4v"))
    assert not any(is_video_name(name) for name in ("photo.jpg", "clip.gif", "notes.txt", "mp4"))


def broken_files(clip: Path) -> dict[str, bytes]:
    data = clip.read_bytes()
    return {"empty": b"", "text": b"this is not a video\n" * 50, "truncated": data[: len(data) // 2],
            "photo": SAMPLE_PHOTO.read_bytes(), "noise": np.random.default_rng(0).bytes(20_000)}


def test_broken_files_fail_with_a_clear_message(clip, tmp_path):
    expected = {"empty": "empty file", "text": "not a readable video", "truncated": "not a readable video",
                "photo": "not a readable video", "noise": "not a readable video"}
    for kind, data in broken_files(clip).items():
        path = tmp_path / f"{kind}.mp4"
        path.write_bytes(data)
        for source in (data, path):
            with pytest.raises(VideoError, match=expected[kind]):
                probe_video(source)
    with pytest.raises(VideoError, match="no such file"):
        probe_video(tmp_path / "missing.mp4")
    with pytest.raises(VideoError, match="720x300 = 0.2 MP, over the 0.1 MP limit"):
        probe_video(clip, max_pixels=100_000)
    assert issubclass(VideoError, ValueError)


def test_probe_reads_the_header_and_the_display_rotation(astronaut, clip):
    info = probe_video(clip)
    assert (info.width, info.height, info.fps, info.duration, info.rotation) == (*CLIP_SIZE, FPS, SECONDS, 0)
    sideways = [frame.transpose(Image.Transpose.ROTATE_270) for frame in canvas_frames(astronaut)[:5]]
    turned = probe_video(write_clip(sideways, rotation=90))  # stored turned clockwise, shown upright
    assert (turned.width, turned.height, turned.rotation) == (*CLIP_SIZE, 90)


@pytest.mark.slow
def test_two_faces_give_two_tracks_sampled_at_the_asked_rate(analysed):
    result, _ = analysed
    assert result.info.frames_read == SECONDS * FPS and result.info.seconds_read == SECONDS
    assert [frame.time for frame in result.frames] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert [frame.index for frame in result.frames] == [0, 5, 10, 15, 20, 25]
    assert len(result.tracks) == 2 and not result.reason and not result.notes
    for summary in result.tracks:
        assert summary.frames == math.ceil(SECONDS * 2)
        assert (summary.first_seen, summary.last_seen) == (0.0, 2.5)
        assert sum(summary.gender_probs.values()) == pytest.approx(1, abs=1e-4)
        assert sum(summary.race_probs.values()) == pytest.approx(1, abs=1e-4)
        assert summary.gender == max(summary.gender_probs, key=summary.gender_probs.get) == "female"
        assert summary.race == max(summary.race_probs, key=summary.race_probs.get)
        assert summary.age_low <= summary.age <= summary.age_high
    sides = {frame_track: {face.box[0] < CLIP_SIZE[0] / 2 for frame in result.frames
                           for face, track in zip(frame.faces, frame.tracks) if track == frame_track}
             for frame_track in (1, 2)}
    assert sorted(map(tuple, sides.values())) == [(False,), (True,)]  # each track stays on its side


@pytest.mark.slow
def test_rows_and_frame_json_match_the_tracks(analysed):
    result, _ = analysed
    rows = track_rows(result)
    assert [row["track"] for row in rows] == [1, 2]
    for row, summary in zip(rows, result.tracks):
        assert row["p_female"] == pytest.approx(summary.gender_probs["female"], abs=1e-4)
        assert sum(row[f"p_{race}"] for race in labels.RACES) == pytest.approx(1, abs=1e-3)
        assert (row["age"], row["age_low"], row["age_high"], row["frames"]) == (
            summary.age, summary.age_low, summary.age_high, summary.frames)
    document = json.loads(json.dumps(frame_document(result)))
    assert document["video"]["frames_read"] == SECONDS * FPS and document["tracks"] == 2
    seen = pd.Series([face["track"] for frame in document["frames"] for face in frame["faces"]]).value_counts()
    assert seen.to_dict() == {1: 6, 2: 6}
    face = document["frames"][0]["faces"][0]
    assert {"track", "x1", "y2", "gender", "p_female", "race", "p_white", "age", "age_low", "age_high"} <= set(face)
    assert face["age_low"] <= face["age"] <= face["age_high"]


@pytest.mark.slow
def test_annotated_video_has_one_frame_per_analysed_frame(analysed):
    result, annotated = analysed
    with av.open(str(annotated)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        assert stream.codec_context.name == ("h264" if video_encoder() == "libx264" else "mpeg4")
    assert len(frames) == len(result.frames) and frames[0].shape == (CLIP_SIZE[1], CLIP_SIZE[0], 3)
    x1, y1, x2, y2 = (round(v) for v in result.frames[0].faces[0].box)
    # The female-pink box is drawn: its left edge is a few pixels wide, blurred by H.264's chroma subsampling,
    # so the closest column near x1 is compared.
    distance = [np.abs(frames[0][y1 + 5:y2 - 5, x].astype(int) - (214, 51, 108)).sum(axis=1).mean()
                for x in range(x1 - 1, x1 + 4)]
    assert min(distance) < 60


@pytest.mark.slow
def test_sample_rate_and_rotation_are_followed(astronaut, predictor):
    sideways = [frame.transpose(Image.Transpose.ROTATE_270) for frame in canvas_frames(astronaut)]
    result = analyse_video(write_clip(sideways, rotation=90), predictor, sample_fps=1, name="phone.mp4")
    assert (result.info.width, result.info.height) == CLIP_SIZE
    assert [frame.time for frame in result.frames] == [0.0, 1.0, 2.0]
    assert [summary.frames for summary in result.tracks] == [3, 3]


@pytest.mark.slow
def test_a_video_without_faces_gives_no_tracks_and_says_why(astronaut, predictor):
    result = analyse_video(write_clip(canvas_frames(astronaut, faces=False)[:10]), predictor, name="wall.mp4")
    assert result.tracks == [] and len(result.frames) == 2
    assert result.reason == "no face found in any of the 2 analysed frames"
    assert track_rows(result) == [{"file": "wall.mp4", "track": None, "error": result.reason}]


@pytest.mark.slow
def test_cli_predict_clip_gives_track_rows_and_frames_json(clip, tmp_path):
    frames_file = tmp_path / "frames.json"
    printed = CliRunner().invoke(app, ["predict", str(clip), "--frames-json", str(frames_file)])
    assert printed.exit_code == 0, printed.output
    rows = pd.read_csv(io.StringIO(printed.stdout))
    assert list(rows["track"]) == [1, 2] and list(rows["frames"]) == [6, 6]
    assert list(rows.columns[:5]) == ["file", "track", "first_seen", "last_seen", "frames"]
    assert tuple(rows.columns) == TRACK_COLUMNS  # the one schema of track rows
    assert (rows["age_low"] <= rows["age"]).all() and (rows["age"] <= rows["age_high"]).all()
    assert "2 faces followed over 6 analysed frames" in printed.stderr
    assert len(json.loads(frames_file.read_text())["frames"]) == 6


@pytest.mark.slow
def test_cli_annotated_video_never_overwrites_its_input_and_is_written_whole(clip, tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(clip.read_bytes())
    refused = CliRunner().invoke(app, ["predict", str(video), "--annotated", str(video)])
    assert refused.exit_code == 1 and "is one of the inputs" in refused.stderr
    assert video.read_bytes() == clip.read_bytes()
    out = tmp_path / "boxed.mp4"
    done = CliRunner().invoke(app, ["predict", str(video), "--annotated", str(out)])
    assert done.exit_code == 0, done.output
    assert out.stat().st_size > 1000 and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.slow
def test_cli_rejects_a_broken_video_with_a_message(clip, tmp_path):
    bad = tmp_path / "cut.mp4"
    bad.write_bytes(clip.read_bytes()[:5000])
    printed = CliRunner().invoke(app, ["predict", str(bad)])
    assert printed.exit_code == 1 and isinstance(printed.exception, SystemExit)  # fail(), not a crash
    assert "not a readable video" in printed.stderr and "no input could be processed" in printed.stderr
    assert "Traceback" not in printed.output
    several = CliRunner().invoke(app, ["predict", str(clip), str(bad), "--annotated", str(tmp_path / "a.mp4")])
    assert several.exit_code != 0 and "describe one video; 2 video inputs given" in several.stderr


@pytest.mark.slow
def test_video_page_shows_the_track_table_and_rejects_a_bad_file(clip):
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    at.session_state["video"] = ("clip.mp4", clip.read_bytes())
    at.run()
    at.button(key="analyse").click().run()
    assert not at.exception, at.exception
    assert {metric.label: metric.value for metric in at.metric}["Faces followed"] == "2"
    table = at.dataframe[0].value
    assert list(table["track"]) == [1, 2] and list(table["frames"]) == [6, 6]
    assert all(age.count("(") == 1 for age in table["age (80% interval)"])
    assert len(at.get("plotly_chart")) == 1
    assert [button.label for button in at.get("download_button")] == ["Tracks (CSV)", "Frames (JSON)",
                                                                       "Annotated video (MP4)"]
    assert any("non-commercial research" in caption.value for caption in at.caption)

    at.session_state["video"] = ("cut.mp4", clip.read_bytes()[:5000])
    at.run()
    assert not at.exception, at.exception
    assert at.error and "not a readable video" in at.error[0].value


@pytest.mark.slow
def test_video_page_sample_clip_gives_two_tracks():
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.run()
    at.button(key="sample").click().run()
    at.button(key="analyse").click().run()
    assert not at.exception, at.exception
    assert {metric.label: metric.value for metric in at.metric}["Faces followed"] == "2"
    table = at.dataframe[0].value
    assert list(table["track"]) == [1, 2] and list(table["frames"]) == [8, 8]  # 4 s at 2 frames/s
    assert set(table["gender"]) == {"Female"}


def growing_mjpeg(small: Image.Image, big_side: int, small_frames: int = 3, big_frames: int = 2) -> bytes:
    """An MKV whose header states the small frames' size, then carries much larger frames: each
    MJPEG frame is its own JPEG, so a stream may change size mid-way."""
    from fractions import Fraction

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as out:
        stream = out.add_stream("mjpeg", rate=10)
        stream.width, stream.height = small.size
        stream.pix_fmt = "yuvj420p"
        frames = [small] * small_frames + [Image.new("RGB", (big_side, big_side), "gray")] * big_frames
        for index, frame in enumerate(frames):
            data = io.BytesIO()
            frame.save(data, "JPEG")
            packet = av.Packet(data.getvalue())
            packet.stream, packet.time_base, packet.pts, packet.dts = stream, Fraction(1, 10), index, index
            out.mux(packet)
    return buffer.getvalue()


def test_a_frame_over_the_pixel_limit_mid_stream_ends_the_reading_and_keeps_the_frames_before(astronaut, predictor):
    small = astronaut.resize((320, 320))
    data = growing_mjpeg(small, big_side=2000)
    result = analyse_video(io.BytesIO(data), predictor, sample_fps=10, max_pixels=1_000_000)
    assert len(result.frames) == 3 and result.info.frames_read == 3  # the small frames, analysed
    assert any("2000x2000 frame, over the 1.0 MP limit" in note for note in result.notes)
    assert result.tracks  # her face, followed through the frames before the large one
