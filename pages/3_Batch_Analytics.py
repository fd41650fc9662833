"""Batch analytics: who is in a set of photos, as counts and shares with error bars.

A thin page: inputs come from ``facekit.vision.io.collect_uploads``, predictions from
``Predictor.predict_items``, the breakdown from ``facekit.evaluation.segments`` (the same numbers as
``facekit predict --summary``) and the figures from ``facekit.viz``. The files in play are
``st.session_state["batch_files"]`` (name, bytes) pairs, set by the uploader (or a test);
results stay in the session until the files change.
"""
from __future__ import annotations

import hashlib
import time

import pandas as pd
import streamlit as st

from facekit import labels, viz
from facekit.app import common
from facekit.vision.io import collect_uploads
from facekit.labels import MIN_ATTRIBUTE_FACE
from facekit.rows import csv_text, prediction_rows
from facekit.evaluation.segments import CAVEAT, breakdown

MAX_PHOTOS = 500  # per run; about a minute per hundred photos on two CPU cores
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "zip"]

st.set_page_config(page_title="Batch Analytics · facekit", page_icon=":material/groups:", layout="wide")


def take_files() -> None:
    files = st.session_state.get("batch_upload") or []
    st.session_state["batch_files"] = [(file.name, file.getvalue()) for file in files]


def files_key(files: list[tuple[str, bytes]]) -> str:
    digest = hashlib.sha256()
    for name, data in files:
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def run(files: list[tuple[str, bytes]]) -> list[dict]:
    """Predict every photo with a progress bar; rows as ``prediction_rows`` gives them."""
    items = list(collect_uploads(files))
    if len(items) > MAX_PHOTOS:
        st.warning(f"{len(items)} photos given; analysing the first {MAX_PHOTOS}. Split larger sets into several runs.")
        items = items[:MAX_PHOTOS]
    bar = st.progress(0.0, text=f"0 of {len(items)} photos")
    rows: list[dict] = []
    started = time.perf_counter()
    for done, result in enumerate(common.predictor().predict_items(items), start=1):
        rows.extend(prediction_rows([result]))
        bar.progress(done / len(items), text=f"{done} of {len(items)} photos")
    bar.empty()
    st.session_state["batch_seconds"] = time.perf_counter() - started
    return rows


st.title("Batch analytics")
st.info("Photos are processed in memory and not stored: nothing is written to disk or kept after you close the page.",
        icon=":material/lock:")
if elsewhere := common.beyond_portraits():
    st.info(elsewhere, icon=":material/travel_explore:")
st.warning(
    "**Read these numbers as rough estimates.** Each face's gender, ethnicity and age is a guess with a probability, "
    "not a fact, and the model is wrong more often for some groups than for others (the evaluation page shows "
    "how much). Ethnicity and gender cannot be read reliably from a face at all. The intervals cover only the "
    "chance of a small sample, not the model's errors. Use this for statistics about groups of photos, never to "
    "decide anything about a person.",
    icon=":material/warning:",
)
st.file_uploader(f"Photos or ZIP files of photos (up to {MAX_PHOTOS} photos per run)", type=UPLOAD_TYPES,
                 accept_multiple_files=True, key="batch_upload", on_change=take_files,
                 help=f"JPEG, PNG, WebP, BMP or ZIP, up to {st.get_option('server.maxUploadSize')} MB each.")
files = st.session_state.get("batch_files") or []
if not files:
    st.caption("Upload photos, or a ZIP of them, to see who is in them.")
    st.stop()

key = files_key(files)
if st.session_state.get("batch_key") != key:
    st.session_state.pop("batch_rows", None)
    slot = st.empty()  # the button goes once clicked, rather than staying until the next rerun
    if slot.button(f"Analyse {len(files)} file{'s' * (len(files) > 1)}", type="primary", key="analyse"):
        slot.empty()
        common.loaded(common.predictor)
        st.session_state["batch_rows"] = run(files)
        st.session_state["batch_key"] = key
if "batch_rows" not in st.session_state:
    st.stop()

rows = st.session_state["batch_rows"]
summary = breakdown(rows)
faces_column, photos_column, missing_column, per_photo_column, small_column = st.columns(5)
faces_column.metric("Faces", f"{len(summary.faces):,}")
photos_column.metric("Photos with a face", f"{summary.inputs - summary.without_face:,} of {summary.inputs:,}")
missing_column.metric("Unreadable or without a face", f"{summary.without_face:,}")
if len(summary.faces):
    per_photo = summary.faces_per_photo
    per_photo_column.metric("Faces per photo", f"{per_photo.mean():.1f}",
                            help=f"Mean over the photos with a face; from {per_photo.min()} to {per_photo.max()}.")
    small_column.metric("Too small to read reliably", f"{summary.low_resolution:,}",
                        help=f"Faces under {MIN_ATTRIBUTE_FACE} px tall: their answers are less reliable.")
st.caption(f"Analysed in {st.session_state['batch_seconds']:.1f} s.")

st.subheader("Every face")
st.dataframe(summary.faces, hide_index=True)
problems = pd.DataFrame([row for row in rows if row["face"] is None], columns=["file", "error"])
if len(problems):
    with st.expander(f"{len(problems)} input{'s' * (len(problems) > 1)} without a face"):
        st.dataframe(problems, hide_index=True)
st.download_button("All rows (CSV)", csv_text(rows), "facekit-batch.csv", "text/csv")

if len(summary.faces):
    st.subheader("Breakdown")
    st.caption(CAVEAT)
    left, right = st.columns(2)
    left.plotly_chart(viz.age_pyramid(summary.faces, "Age group by gender (predicted)"), key="pyramid")
    right.plotly_chart(viz.share_intervals(summary.race, f"Ethnicity shares with {summary.confidence:.0%} intervals"),
                       key="race")
    left.plotly_chart(viz.share_intervals(summary.gender, f"Gender shares with {summary.confidence:.0%} intervals"),
                      key="gender")
    right.plotly_chart(viz.crossing_heatmap(summary.faces, "age_bin", "gender", "Faces per age group and gender"),
                       key="age-gender")
    level = f"{summary.confidence:.0%}"
    names = {"count": "faces", "share": "share", "low": f"{level} low", "high": f"{level} high",
             "mean_prob": "mean probability"}
    tables = {"Ethnicity": summary.race, "Gender": summary.gender, "Age group": summary.age_bin}
    for title, table in tables.items():
        st.markdown(f"**{title}**: faces, share and its {level} Wilson interval"
                    + (", and the mean probability the model gave each label" if "mean_prob" in table else ""))
        shown = table.rename(index=labels.display, columns=names).rename_axis(title.lower())
        st.dataframe(shown.style.format("{:.1%}", subset=[names[c] for c in table if c != "count"], na_rep="-"))
