"""Video: who appears in a video file, each face followed through time, with one pooled answer per face.

A thin page: decoding, sampling, prediction, tracking and the summaries come from
``facekit.serving.video``, figures from ``facekit.viz``. The video in play is
``st.session_state["video"]``, a (name, bytes) pair set by the uploader (or a test). Its
analysis stays in the session under the bytes' SHA-256 and the settings, so redrawing the
page never analyses again.
"""
from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from facekit import labels, viz
from facekit.app import common
from facekit.evaluation.report import model_licence
from facekit.evaluation.segments import CAVEAT
from facekit.vision.io import VIDEO_SUFFIXES
from facekit.rows import csv_text, json_text
from facekit.serving.video import (MAX_FRAMES, SAMPLE_FPS, VideoError, VideoResult, analyse_video,
                           frame_document, probe_video, sample_clip, sighting_rows, track_rows)

UPLOAD_TYPES = [suffix.lstrip(".") for suffix in VIDEO_SUFFIXES]
RATES = [0.5, 1.0, 2.0, 5.0, 10.0]  # frames analysed per second of video

st.set_page_config(page_title="Video · facekit", page_icon=":material/movie:", layout="wide")


@dataclass
class Analysis:
    """One video's result for this session, with the annotated MP4 when one was asked for."""

    key: tuple
    result: VideoResult
    annotated: bytes | None


def take_sample() -> None:
    st.session_state["video"] = ("sample-clip.mp4", sample_clip())


def take_upload() -> None:
    file = st.session_state.get("video_upload")
    if file is not None:
        st.session_state["video"] = (file.name, file.getvalue())


def run(key: tuple, name: str, data: bytes, sample_fps: float, annotate: bool) -> Analysis | None:
    """Analyse with a progress bar; None (with the reason shown) if the video cannot be read."""
    bar = st.progress(0.0, text="Analysing frames…")
    buffer = io.BytesIO() if annotate else None
    try:
        result = analyse_video(data, common.predictor(), sample_fps=sample_fps, annotated=buffer, name=name,
                               progress=lambda done: bar.progress(done, text=f"Analysing frames… {done:.0%}"))
    except VideoError as error:
        st.error(f"Could not analyse {name}: {error}.")
        return None
    finally:
        bar.empty()
    return Analysis(key=key, result=result, annotated=buffer.getvalue() if buffer else None)


def track_table(rows: list[dict]) -> pd.DataFrame:
    """The track rows as people read them: each answer beside its probability, the age with its interval."""
    table = pd.DataFrame(rows)
    return pd.DataFrame({
        "track": table["track"],
        "seen (s)": [f"{a:.1f} to {b:.1f}" for a, b in zip(table["first_seen"], table["last_seen"])],
        "frames": table["frames"],
        "gender": table["gender"].map(labels.display),
        "P(female)": table["p_female"],
        "ethnicity": table["race"].map(labels.display),
        "P(ethnicity)": [row[f"p_{row['race']}"] for row in rows],
        "age (80% interval)": [f"{row['age']:.0f} ({row['age_low']:.0f} to {row['age_high']:.0f})" for row in rows],
    })


st.title("Video")
st.info("Videos are processed in memory and not stored: nothing is written to disk or kept after you close the page.",
        icon=":material/lock:")
upload_column, sample_column = st.columns([3, 1])
upload_column.file_uploader("A video file", type=UPLOAD_TYPES, key="video_upload", on_change=take_upload,
                            help=f"MP4, MOV, M4V, AVI, MKV or WebM, up to {st.get_option('server.maxUploadSize')} MB.")
sample_column.button("Try a sample clip", key="sample", on_click=take_sample,
                     help="4 s made from NASA's public-domain portrait of Eileen Collins and its mirror image")
video = st.session_state.get("video")
if video is None:
    st.caption("Upload a video, or try the sample clip: faces are found in a few frames per second, followed "
               "from frame to frame, and each followed face gets one answer pooled over its frames.")
    st.stop()

name, data = video
try:
    info = probe_video(data)
except VideoError as error:
    st.error(f"Could not read {name}: {error}.")
    st.stop()
duration = f"{info.duration:.1f} s" if info.duration else "unknown length"
st.caption(f"{name}: {duration}, {info.width}×{info.height}, {f'{info.fps:g}' if info.fps else '?'} frames/s, "
           f"{info.codec}")

rate_column, annotate_column = st.columns(2)
sample_fps = rate_column.select_slider("Frames analysed per second of video", RATES, value=SAMPLE_FPS, key="rate",
                                       help="More frames follow faces more closely and take longer: about a third "
                                            "of a second per frame and face on two CPU cores.")
annotate = annotate_column.toggle("Make an annotated video", value=True, key="annotate",
                                  help="The analysed frames with each face boxed, labelled and its track id.")
if info.duration:
    planned = min(MAX_FRAMES, math.ceil(info.duration * min(sample_fps, info.fps or sample_fps)))
    rate_column.caption(f"About {planned} frames to analyse" + (" (the limit)" if planned == MAX_FRAMES else ""))

key = (hashlib.sha256(data).hexdigest(), sample_fps, annotate)
analysis = st.session_state.get("video_analysis")
if analysis is None or analysis.key != key:
    st.session_state.pop("video_analysis", None)
    slot = st.empty()  # the button goes once clicked, rather than staying until the next rerun
    if not slot.button("Analyse", type="primary", key="analyse"):
        st.stop()
    slot.empty()
    common.loaded(common.predictor)
    analysis = run(key, name, data, sample_fps, annotate)
    if analysis is None:
        st.stop()
    st.session_state["video_analysis"] = analysis

result = analysis.result
tracks_column, frames_column, speed_column = st.columns(3)
tracks_column.metric("Faces followed", len(result.tracks))
frames_column.metric("Frames analysed", f"{len(result.frames):,} of {result.info.frames_read:,}")
speed_column.metric("Speed", f"{result.speed:.2f}× real time",
                    help=f"{result.info.seconds_read:.1f} s of video analysed in {result.seconds:.1f} s.")
for note in result.notes:
    st.warning(note.capitalize() + ".")
rows = track_rows(result)
if result.tracks:
    st.subheader("Each face followed")
    st.dataframe(track_table(rows), hide_index=True, column_config={
        column: st.column_config.ProgressColumn(column, format="percent", min_value=0, max_value=1)
        for column in ("P(female)", "P(ethnicity)")})
    st.caption("Probabilities are averaged over the face's frames; the age is the median of its frames' ages, with "
               "the 80% interval of the pooled age distribution. A face that leaves and comes back, or crosses "
               "another, may be counted twice.")
    st.plotly_chart(viz.track_timeline(pd.DataFrame(rows), pd.DataFrame(sighting_rows(result))), key="timeline")
else:
    st.warning(f"No face found in {name}: {result.reason}. Faces need to be large enough and turned towards the "
               "camera; a higher frame rate may catch a face that is only briefly visible.")
if analysis.annotated:
    st.subheader("Annotated video")
    st.video(analysis.annotated, format="video/mp4")
    st.caption(f"The {len(result.frames)} analysed frames, shown at {min(sample_fps, info.fps or sample_fps):g} "
               "frames per second.")

stem = name.rsplit(".", 1)[0] or "video"
downloads = st.columns(3)
downloads[0].download_button("Tracks (CSV)", csv_text(rows), f"{stem}-tracks.csv", "text/csv")
downloads[1].download_button("Frames (JSON)", json_text(frame_document(result), indent=1), f"{stem}-frames.json",
                             "application/json")
if analysis.annotated:
    downloads[2].download_button("Annotated video (MP4)", analysis.annotated, f"{stem}-annotated.mp4", "video/mp4")
st.caption(CAVEAT)
st.caption(model_licence(common.predictor().metadata))
