"""Predict: one photo in; every face boxed, each head's answer with its uncertainty, and why.

A thin page: predictions come from ``facekit.predict``, maps from ``facekit.explain`` and
figures from ``facekit.viz``. The photo in play is ``st.session_state["photo"]``, a
(name, bytes) pair that the uploader, the webcam and the sample button set (and tests can
set directly). Its results stay in the session under the bytes' SHA-256, so changing a
widget never runs detection again.
"""
from __future__ import annotations

import hashlib
import io
import time
from dataclasses import asdict, dataclass, field

import pandas as pd
import streamlit as st
from PIL import Image

from facekit import labels, viz
from facekit.app import common
from facekit.explain import EXPECTED_AGE, HEAD_TARGETS, METHODS, Explanation
from facekit.vision.io import SAMPLE_PHOTO, ImageError, displayable, load_image
from facekit.labels import MIN_ATTRIBUTE_FACE
from facekit.predict import FacePrediction, ImageResult
from facekit.rows import csv_text, json_text, prediction_rows

UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp"]
HEADS = {"gender": "Gender", "race": "Ethnicity", "age": "Age"}
METHOD_NAMES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++"}
KEPT_OVERLAYS = 4  # Grad-CAM choices a browser session keeps; older ones are computed again if chosen
TABLE_COLUMNS = {
    "face": st.column_config.NumberColumn("Face", help="The number on the photo"),
    "gender": st.column_config.TextColumn("Gender"),
    "p_female": st.column_config.ProgressColumn("P(female)", format="percent", min_value=0.0, max_value=1.0),
    "race": st.column_config.TextColumn("Ethnicity"),
    "age": st.column_config.NumberColumn("Age", format="%.0f"),
    "age_low": st.column_config.NumberColumn("Age from", format="%.0f", help="The 80% interval's low end"),
    "age_high": st.column_config.NumberColumn("Age to", format="%.0f", help="The 80% interval's high end"),
    "det_score": st.column_config.ProgressColumn("Detector", format="percent", min_value=0.0, max_value=1.0),
    "low_resolution": st.column_config.CheckboxColumn(
        "Too small", help=f"Under {MIN_ATTRIBUTE_FACE} px tall: read its answers with care"),
}
SMALL_FACE = f"Small face (under {MIN_ATTRIBUTE_FACE} px tall): read these answers with care."

st.set_page_config(page_title="Predict · facekit", page_icon=":material/face:", layout="wide")


@dataclass
class Analysis:
    """One photo's results for this session; explanations fill in as heads are chosen."""

    key: str
    image: Image.Image
    result: ImageResult
    explanations: dict[tuple, tuple[Explanation, Image.Image]] = field(default_factory=dict)


def take(widget: str) -> None:
    """Uploader and webcam callback: their file becomes the photo in play."""
    file = st.session_state.get(widget)
    if file is not None:
        st.session_state["photo"] = (file.name, file.getvalue())


def take_sample() -> None:
    st.session_state["photo"] = (SAMPLE_PHOTO.name, SAMPLE_PHOTO.read_bytes())
    # A new key empties the uploader, which would otherwise still show the file it took last.
    st.session_state["uploads"] = st.session_state.get("uploads", 0) + 1


def analyse(name: str, data: bytes) -> Analysis | None:
    """The session's results for these bytes, computed once; None (with an error shown) if unreadable."""
    key = hashlib.sha256(data).hexdigest()
    current = st.session_state.get("analysis")
    if current is not None and current.key == key:
        return current
    st.session_state.pop("analysis", None)
    started = time.perf_counter()
    try:
        image = load_image(data)
    except ImageError as error:
        st.error(f"Could not use {name}: {error}.")
        return None
    read = time.perf_counter() - started
    with st.spinner("Finding and reading faces…"):
        result = common.predictor().predict(image, name)
    result.timings["read"] = read
    st.session_state["analysis"] = Analysis(key=key, image=image, result=result)
    return st.session_state["analysis"]


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def target_name(target: str | None) -> str:
    if target is None:
        return "each face's prediction"
    return "expected age" if target == EXPECTED_AGE else labels.display(target)


def face_card(index: int, face: FacePrediction, image: Image.Image) -> None:
    with st.container(border=True):
        x1, y1, x2, y2 = face.box
        pad = 0.2 * max(x2 - x1, y2 - y1)
        thumb, gender, race, age = st.columns([1, 2, 3, 4])
        thumb.image(image.crop((x1 - pad, y1 - pad, x2 + pad, y2 + pad)), caption=f"Face {index + 1}")
        p_female = face.gender_probs["female"]
        gender.metric("Gender", labels.display(face.gender))
        gender.progress(p_female, text=f"female {p_female:.0%} · male {1 - p_female:.0%}")
        gender.caption(f"Detector confidence {face.det_score:.0%}")
        if face.low_resolution:
            gender.warning(SMALL_FACE, icon=":material/zoom_in:")
        race.plotly_chart(viz.probability_bars(face.race_probs, "Ethnicity"), key=f"race-{index}")
        age.metric("Age", f"{face.age:.0f} years", help="Expected age; the interval holds the true age 80% of the time "
                                                        "when the model is calibrated.")
        age.caption(f"80% interval: {face.age_low:.0f} to {face.age_high:.0f} years")
        age.plotly_chart(viz.age_distribution(face, "Age distribution"), key=f"age-{index}")


def explanation_for(analysis: Analysis, head: str, target: str | None, method: str) -> tuple[Explanation, Image.Image]:
    """The explanation and its overlay (display-sized), computed once per choice; the session keeps the
    last KEPT_OVERLAYS choices only, so trying every head and target does not grow its memory."""
    key = (head, target, method)
    if key not in analysis.explanations:
        with st.spinner(f"Computing {METHOD_NAMES[method]}…"):
            explanation = common.explainer().explain(analysis.image, analysis.result.faces, head, target, method)
            overlay = viz.heat_overlay(analysis.image, *explanation.photo_heat())
        while len(analysis.explanations) >= KEPT_OVERLAYS:
            analysis.explanations.pop(next(iter(analysis.explanations)))
        analysis.explanations[key] = (explanation, overlay)
    return analysis.explanations[key]


def grad_cam(analysis: Analysis) -> Explanation:
    st.subheader("Why: Grad-CAM")
    head_column, target_column, method_column = st.columns(3)
    head = head_column.selectbox("Head", list(HEADS), format_func=HEADS.get, key="cam_head")
    target = target_column.selectbox("Explain", [None, *HEAD_TARGETS[head]], format_func=target_name,
                                     key=f"cam_target_{head}")
    method = method_column.radio("Method", list(METHODS), format_func=METHOD_NAMES.get, horizontal=True,
                                 key="cam_method")
    explanation, overlay = explanation_for(analysis, head, target, method)
    scale = overlay.width / analysis.image.width  # the overlay is display-sized
    st.image(overlay, caption=f"{METHOD_NAMES[method]} of the {HEADS[head].lower()} head, target: "
                              f"{target_name(target)}")
    columns = st.columns(min(len(explanation.faces), 5))
    for index, face in enumerate(explanation.faces):
        x1, y1, x2, y2 = (value * scale for value in face.box)
        pad = 0.25 * max(x2 - x1, y2 - y1)
        columns[index % len(columns)].image(overlay.crop((x1 - pad, y1 - pad, x2 + pad, y2 + pad)),
                                            caption=f"Face {index + 1}: {target_name(face.target)}")
    st.caption(
        "Warm colours mark the regions whose features raised the explained output the most (layer: the last "
        "8×8 block of the backbone, so the map is coarse). It shows where the model looked, not whether it "
        "was right: a wrong answer gets a plausible-looking map too."
    )
    return explanation


def face_table(result: ImageResult) -> int | None:
    """Every face's answer by the photo's numbers, sortable; the index of the row selected, if any."""
    rows = pd.DataFrame(prediction_rows([result])).assign(face=lambda frame: frame["face"] + 1)
    event = st.dataframe(rows[list(TABLE_COLUMNS)], column_config=TABLE_COLUMNS, hide_index=True,
                         on_select="rerun", selection_mode="single-row", key="face_table")
    st.caption("Click a column's name to sort; select a row to mark its face on the photo.")
    chosen = event.selection.rows
    return chosen[0] if chosen else None


def downloads(analysis: Analysis, annotated: Image.Image) -> None:
    result = analysis.result
    stem = result.source.rsplit(".", 1)[0] or "photo"
    csv_column, json_column, image_column = st.columns(3)
    csv_column.download_button("Results (CSV)", csv_text(prediction_rows([result])), f"{stem}-faces.csv", "text/csv")
    json_column.download_button("Results (JSON)", json_text(asdict(result)), f"{stem}-faces.json",
                                "application/json")
    image_column.download_button("Annotated image (PNG)", lambda: png(annotated), f"{stem}-annotated.png", "image/png")


st.title("Predict")
st.info(
    "Photos are processed in memory and not stored: nothing is written to disk or kept after you close the page.",
    icon=":material/lock:",
)
if elsewhere := common.beyond_portraits():
    st.info(elsewhere, icon=":material/travel_explore:")
upload_column, other_column = st.columns([3, 1])
upload_key = f"upload-{st.session_state.get('uploads', 0)}"
upload_column.file_uploader("A photo with one or more faces", type=UPLOAD_TYPES, key=upload_key,
                            on_change=take, args=(upload_key,),
                            help=f"JPEG, PNG, WebP or BMP, up to {st.get_option('server.maxUploadSize')} MB.")
other_column.button("Try the sample photo", key="sample", on_click=take_sample,
                    help="NASA's portrait of astronaut Eileen Collins (public domain)")
if other_column.toggle("Use the webcam", key="webcam"):
    st.camera_input("Take a photo", key="camera", on_change=take, args=("camera",))

photo = st.session_state.get("photo")
if photo is None:
    st.caption("Upload a photo, take one with the webcam, or try the sample photo.")
    st.stop()

common.loaded(common.predictor)

name, data = photo
analysis = analyse(name, data)
if analysis is None:
    st.stop()
result = analysis.result
if not result.faces:
    st.warning(f"No face found in {name} ({result.reason}). Try a photo where faces are larger, sharper or "
               "turned more towards the camera.")
    if displayable(analysis.image):
        st.image(analysis.image, caption=name)
    st.stop()
if result.skipped_faces:
    st.warning(f"{len(result.faces) + result.skipped_faces} faces found; showing the largest {len(result.faces)}.")

st.subheader(f"{len(result.faces)} face{'s' * (len(result.faces) > 1)} in {name}")
photo_slot = st.empty()
chosen = face_table(result)
annotated = viz.annotate_faces(analysis.image, result.faces, highlight=chosen)
photo_slot.image(annotated, caption="Each face boxed and labelled" if chosen is None else
                 f"Each face boxed and labelled; face {chosen + 1} marked")
for index, face in enumerate(result.faces):
    face_card(index, face, analysis.image)
explanation = grad_cam(analysis)
downloads(analysis, annotated)
steps = {"read": "reading", "detect": "detection", "model": "the three heads"}
timings = [f"{label} {result.timings[step] * 1000:.0f} ms" for step, label in steps.items() if step in result.timings]
timings.append(f"{METHOD_NAMES[explanation.method]} {explanation.seconds * 1000:.0f} ms")
st.caption("Time per step: " + " · ".join(timings))
