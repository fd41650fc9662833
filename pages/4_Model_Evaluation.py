"""Model Evaluation: how well the model does, for whom it does worse, and where it is most wrong.

A thin page over saved evaluations (``facekit evaluate --out DIR``): it reads the JSON and
the per-face CSV, never runs the model for the numbers. Tables come from ``facekit.evaluation.report``,
figures from ``facekit.viz``. Grad-CAM of a mistake is computed on request only.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, TypeVar

import streamlit as st

from facekit import labels, viz
from facekit.app import common
from facekit.evaluation.evaluate import (SPLIT_ALL, Evaluation, evaluate, evaluation_zip, image_reference,
                                        load_evaluation)
from facekit.evaluation.detection import MATCH_IOU, load_detection
from facekit.evaluation.report import (FEATURE_NAMES, HEAD_NAMES, METRIC_NAMES, YEARS, by_group_table,
                                       committed_detection_reports, committed_reports, datasets_table, evaluation_facts, fmt,
                                       gap_sentence, headline_table, key_gaps, metric_rows, mistakes, model_card,
                                       per_class_table, same_model_reports)
from facekit.evaluation.summary import EvaluationSummary, made_from
from facekit.evaluation.uploads import MAX_PHOTOS, evaluate_upload
from facekit.models.model import DEFAULT_MODEL
from facekit.training.history import curve_groups, read_curves
from facekit.vision.io import thumbnail_jpeg

ON_DISK = "A report folder on disk"
ON_SERVER = "A run folder on this server"
# The curves each recipe's run left, committed beside the recipes (the repository's layout; the app runs from it).
CURVES = Path(__file__).resolve().parents[1] / "training" / "curves"
OWN = "Your own labelled photos"
OWN_NAME = "your photos"
T = TypeVar("T")
NOTHING = "Nothing"
GALLERY = 12
HEADS = {"Gender": "gender", "Ethnicity": "race", "Ethnicity (7)": "race7", "Age": "age",
         "Age groups (the model's own)": "age_class"}

REPORTS = committed_reports(first=DEFAULT_MODEL.stem)  # the default model's reports lead

st.set_page_config(page_title="Model Evaluation · facekit", page_icon=":material/fact_check:", layout="wide")


@st.cache_data(show_spinner="Reading the report…", max_entries=8)
def load(folder: str, modified: float) -> Evaluation:
    """``modified`` only keys the cache: a regenerated report is read again."""
    return load_evaluation(folder)


@st.cache_data(show_spinner=False, max_entries=8)
def cached_same_model(sha256: str, modified: tuple[float, ...]) -> dict[str, EvaluationSummary]:
    """``modified`` (the committed summaries' times) only keys the cache."""
    return same_model_reports(sha256)


def same_model(summary: EvaluationSummary) -> dict[str, EvaluationSummary]:
    """The committed evaluations of this report's weights, by folder: one per dataset."""
    return cached_same_model(summary.model.sha256,
                             tuple(folder.joinpath("evaluation.json").stat().st_mtime for folder in REPORTS.values()))


@st.cache_data(show_spinner=False, max_entries=500)
def face_image(ref: str) -> bytes:
    from facekit.data import read_image_bytes

    return read_image_bytes(ref)


def choose(choice: str, key: str) -> tuple[Optional[str], Optional[Evaluation]]:
    """The report picked in the sidebar: (name, evaluation), or (None, None)."""
    if choice == NOTHING:
        return None, None
    folder = REPORTS.get(choice) or common.sidebar_path(key, "Folder", "reports/my-model",
                                                        "A folder written by `facekit evaluate --out`.",
                                                        "Enter the folder of a saved evaluation.")
    if folder is None:
        return None, None
    try:
        return folder.name, load(str(folder), common.modified(folder / "evaluation.json"))
    except (FileNotFoundError, ValueError) as error:
        st.sidebar.error(str(error))
        return None, None


@dataclass
class OwnReport:
    """The evaluation of an upload, kept for the browser session with the folder its photos were unpacked to."""

    evaluation: Evaluation
    skipped: list[tuple[str, str]]
    folder: Optional[tempfile.TemporaryDirectory]  # None for a dataset already on this server


def take_upload() -> None:
    photos, labels_csv = st.session_state.get("own_zip"), st.session_state.get("own_csv")
    st.session_state["own_files"] = (photos.getvalue() if photos else None,
                                     labels_csv.getvalue() if labels_csv else None)


def with_progress(reading: str, failure: str, work: Callable[[Callable[[int, int], None]], T]) -> Optional[T]:
    """``work(progress)`` under a progress bar; None, with ``failure`` and the reason shown, when it raises
    one of the errors a bad dataset gives."""
    bar = st.progress(0.0, text=reading)
    try:
        return work(lambda done, total: bar.progress(done / total, text=f"{done} of {total} photos"))
    except (ValueError, FileNotFoundError) as error:  # a DatasetError is a ValueError
        st.error(f"{failure}: {error}")
    finally:
        bar.empty()
    return None


def evaluate_own(photos: bytes, labels_csv: Optional[bytes]) -> Optional[OwnReport]:
    """Unpack and evaluate the upload with a progress bar; None (with the reason shown) when it cannot be."""
    folder = tempfile.TemporaryDirectory(prefix="facekit-own-")
    done = with_progress("Reading the upload…", "The upload cannot be evaluated",
                         lambda progress: evaluate_upload(photos, Path(folder.name), labels_csv, progress=progress))
    if done is None:
        folder.cleanup()
        return None
    evaluation, unpacked = done
    return OwnReport(evaluation, unpacked.skipped, folder)


def evaluate_on_server(path: Path) -> Optional[OwnReport]:
    """Evaluate a labelled dataset already on this server (any reader's layout), a seeded sample of at most
    MAX_PHOTOS of it, with a progress bar; None (with the reason shown) when it cannot be."""
    evaluation = with_progress(f"Reading {path.name}…", f"{path} cannot be evaluated",
                               lambda progress: evaluate(data=path, split=SPLIT_ALL, limit=MAX_PHOTOS,
                                                         progress=progress))
    return None if evaluation is None else OwnReport(evaluation, [], None)


def own_photos() -> Optional[Evaluation]:
    """The report of the visitor's own labelled photos, made once and kept for the session."""
    st.subheader("Your own labelled photos")
    source = st.radio("From", ["An upload", "A dataset on this server"], horizontal=True, key="own_source")
    if source == "An upload":
        st.markdown(f"Upload a ZIP of up to {MAX_PHOTOS:,} photos and a labels CSV (or put the CSV in the ZIP). The "
                    "CSV has a `path` column (the photo's name inside the ZIP) and any of `gender` (male, female), "
                    "`race` (UTKFace's 5 or FairFace's 7 classes), `age` (years) and `age_bin` (0-2, 3-9, …, 70+). "
                    "Every photo is evaluated with the default model; the photos stay on this server for your "
                    "session only.")
        left, right = st.columns(2)
        left.file_uploader("Photos (ZIP)", type=["zip"], key="own_zip", on_change=take_upload)
        right.file_uploader("Labels CSV (if the ZIP has none)", type=["csv"], key="own_csv", on_change=take_upload)
        photos, labels_csv = st.session_state.get("own_files") or (None, None)
        if photos and st.button("Evaluate these photos", key="own_evaluate", type="primary"):
            st.session_state["own_report"] = evaluate_own(photos, labels_csv)
    else:
        st.markdown(f"Any labelled dataset the readers know (a manifest CSV beside its photos, a UTKFace folder, "
                    f"FairFace's CSV, Kaggle's `age_gender.csv`, …), every split of it, at most a seeded sample of "
                    f"{MAX_PHOTOS:,} photos.")
        path = common.sidebar_path("own", "Dataset", "/data/my-photos/labels.csv", "A labelled dataset on this server.",
                                   "Enter the path of a labelled dataset in the sidebar.")
        if path is not None and st.button(f"Evaluate {path.name}", key="own_evaluate_path", type="primary"):
            st.session_state["own_report"] = evaluate_on_server(path)
    kept: Optional[OwnReport] = st.session_state.get("own_report")
    if kept is None:
        st.stop()
    if kept.skipped:
        with st.expander(f"{len(kept.skipped)} file(s) of the ZIP not used"):
            st.dataframe([{"file": name, "reason": reason} for name, reason in kept.skipped], hide_index=True)
    st.download_button("Download this report (ZIP: evaluation.json, predictions.csv)",
                       lambda: evaluation_zip(kept.evaluation), file_name="facekit-report.zip",
                       mime="application/zip")  # made when clicked, not on every rerun
    return kept.evaluation


def detection_tab() -> None:
    """The committed detection reports: how many of a group photo's faces the detector finds, by face size."""
    reports = committed_detection_reports()
    if not reports:
        st.info("No detection report: make one with `facekit evaluate --data photos.csv --out DIR` on a CSV of "
                "every face's box (photo, x, y, w, h).")
        return
    for name, folder in reports.items():
        try:
            report = load_detection(folder)
        except (FileNotFoundError, ValueError) as error:
            st.error(str(error))
            continue
        st.markdown(f"**{name}**: {report.photos} photos with {report.faces:,} labelled faces (`{report.source}`); "
                    f"{report.false_boxes_per_photo:.2f} false boxes per photo, precision "
                    f"{fmt('race.accuracy', report.precision)}, {report.seconds_per_photo * 1000:.0f} ms per photo "
                    f"(made {report.created or 'n/a'} by `{report.command or 'facekit evaluate'}`).")
        st.dataframe(report.table(), hide_index=True, key=f"detection_{name}", column_config={
            "recall": st.column_config.ProgressColumn("recall", format="percent", min_value=0, max_value=1)})
    st.caption(f"A face counts as found when a detected box overlaps it with IoU ≥ {MATCH_IOU} (greedy matching). "
               f"Faces under {labels.MIN_ATTRIBUTE_FACE} px tall are not looked for by default, and their answers "
               "are flagged `low_resolution` when they are found.")


def curves_tab() -> None:
    """A training run's curves by epoch: a committed recipe's, or any run folder under the app's roots."""
    committed = sorted(CURVES.glob("*.csv")) if CURVES.is_dir() else []
    choice = st.selectbox("Run", [path.stem for path in committed] + [ON_SERVER], key="curves_run",
                          help="The runs of the recipes in training/ (their command, time and metrics are in "
                               "training/README.md), or the folder `facekit train` wrote.")
    if choice == ON_SERVER:
        path = common.sidebar_path("curves", "Run folder", "~/.cache/facekit/runs/my-run", "A training run's folder.",
                                   "Enter the folder of a training run (it holds metrics.csv and history.json).",
                                   place=st)
        if path is None:
            return
    else:
        path = CURVES / f"{choice}.csv"
    try:
        curves = read_curves(path)
    except (FileNotFoundError, ValueError) as error:
        st.error(str(error))
        return
    groups = curve_groups(curves)
    left, right = st.columns(2)
    left.plotly_chart(viz.training_curves(curves, groups["losses"], "Training losses"), key="curves_losses")
    right.plotly_chart(viz.training_curves(curves, groups["validation"], "Validation", shares=True),
                       key="curves_validation")
    st.dataframe(curves, hide_index=True, key="curves_table")
    st.caption("One row per epoch. `val_score` is the average of the datasets' errors the recipes are chosen on "
               "(lower is better); the validation parts were never a test part.")


def model_file_note(evaluation: Evaluation) -> None:
    """Say so when the model file on this machine is not the one the report measured (it was retrained)."""
    summary = evaluation.summary
    same = made_from(summary)
    if same is None:
        st.caption(f"The model file {summary.model.path} is not on this machine; the numbers are the saved ones.")
    elif not same:
        st.warning(f"{summary.model.path} has changed since this report was made (retrained?): regenerate it with "
                   f"`{summary.command or 'facekit evaluate --out DIR'}`.")


def datasets_view(summary: EvaluationSummary) -> None:
    """The committed evaluations of this report's model side by side, one row per dataset."""
    same = same_model(summary)
    if len(same) < 2:
        return
    st.markdown(f"**{summary.model.name} on each dataset** (committed evaluations of the same weights)")
    table = datasets_table(list(same.values()))
    st.dataframe(table.assign(report=list(same)).set_index("report"), key="datasets")


def headline(reports: dict[str, Evaluation]) -> None:
    (name, first), *rest = reports.items()
    other = rest[0][1].summary if rest else None
    shown = [("gender", "accuracy", "gender.accuracy"), ("race", "accuracy", "race.accuracy"),
             ("age", "mae", "age.mae"), ("age", "interval_coverage", "age.interval_coverage")]

    def read(summary: EvaluationSummary, head: str, key: str) -> Optional[float]:
        metrics = summary.head(head)
        return getattr(metrics, key) if metrics is not None else None

    columns = st.columns(len(shown) + 1)
    for column, (head, key, metric) in zip(columns, shown):
        value = read(first.summary, head, key)
        delta = None
        if other is not None and read(other, head, key) is not None and value is not None:
            difference = value - read(other, head, key)
            delta = f"{difference:+.2f} years" if metric in YEARS else f"{difference * 100:+.1f} points"
        column.metric(METRIC_NAMES[metric], fmt(metric, value), delta,
                      delta_color="inverse" if metric in YEARS else "normal",
                      help=f"compared with {rest[0][0]}" if rest else None)
    hit_rate = first.summary.detector.hit_rate
    columns[-1].metric("detector hit rate", "n/a (archive crops)" if hit_rate is None else f"{hit_rate:.1%}",
                       help=first.summary.detector.note)


def classes_tab(reports: dict[str, Evaluation]) -> None:
    head = HEADS[st.radio("Head", list(HEADS), horizontal=True, key="classes_head")]
    normalize = st.toggle("Normalize rows (share of each true class)", value=True, key="normalize")
    for column, (name, evaluation) in zip(st.columns(len(reports)), reports.items()):
        with column:
            summary = evaluation.summary
            metrics = summary.head(head)
            if metrics is None:
                st.info(f"{name}: no {HEAD_NAMES[head]} labels, head skipped.")
                continue
            st.plotly_chart(viz.confusion_heatmap(metrics.confusion_matrix, normalize,
                                                  f"{name}: {HEAD_NAMES[head]}"), key=f"confusion_{name}")
            table = per_class_table(summary, head)
            st.dataframe(table, hide_index=True, column_config={
                c: st.column_config.ProgressColumn(c, format="percent", min_value=0, max_value=1)
                for c in ("precision", "recall", "f1")})
            accuracy = metrics.bin_accuracy if head == "age" else metrics.accuracy
            balanced = None if head == "age" else metrics.balanced_accuracy
            st.caption(f"accuracy {fmt('race.accuracy', accuracy)}"
                       + (f", balanced accuracy {balanced:.1%}" if balanced else "")
                       + (f"; one age group off allowed {fmt('race.accuracy', metrics.bin_one_off_accuracy)}"
                          if head == "age" else ""))


def groups_tab(reports: dict[str, Evaluation]) -> None:
    first = next(iter(reports.values())).summary
    features = list(first.features)
    left, right = st.columns(2)
    metric = left.selectbox("Metric", list(METRIC_NAMES), format_func=METRIC_NAMES.get, key="group_metric")
    feature = right.selectbox("By", features, format_func=FEATURE_NAMES.get, key="group_feature")
    rows = {name: metric_rows(e.summary, metric, feature) for name, e in reports.items()}
    names = {name: name for name in rows} if len(rows) > 1 else {name: "" for name in rows}
    st.plotly_chart(viz.group_bars({names[n]: r for n, r in rows.items()}, metric in YEARS,
                                   f"{METRIC_NAMES[metric]} by {FEATURE_NAMES[feature]} (95% CI)"), key="group_bars")
    minimum = first.group_settings.min_size
    for name, evaluation in reports.items():
        gaps = [gap for gap in key_gaps(evaluation.summary, [metric]) if gap.feature == feature]
        prefix = f"**{name}**: " if len(reports) > 1 else ""
        if gaps:
            st.markdown(prefix + gap_sentence(gaps[0]))
        else:
            st.markdown(prefix + f"no gap: fewer than two groups of at least {minimum} faces.")
    st.caption(f"Pale bars marked (small) are groups under {minimum} faces: shown, not compared. The dashed line is "
               "all faces. Intervals are 95% bootstrap intervals.")
    for name, evaluation in reports.items():
        st.dataframe(by_group_table(evaluation.summary, metric, feature), hide_index=True, key=f"group_table_{name}")


def age_tab(reports: dict[str, Evaluation]) -> None:
    present = {name: e.summary for name, e in reports.items() if e.summary.age and e.summary.age.mae is not None}
    if not present:
        st.info("No ages in years in this evaluation.")
        return
    label = (lambda n: n) if len(present) > 1 else (lambda n: "")
    st.plotly_chart(viz.decade_errors({label(n): s.age.mae_by_decade for n, s in present.items()}),
                    key="decades")
    feature = st.selectbox("Age error by", next(iter(present.values())).features,
                           format_func=FEATURE_NAMES.get, key="age_feature")
    for metric in ("age.mae", "age.interval_coverage"):
        rows = {label(n): metric_rows(s, metric, feature) for n, s in present.items()}
        st.plotly_chart(viz.group_bars(rows, metric in YEARS, f"{METRIC_NAMES[metric]} by {FEATURE_NAMES[feature]}"),
                        key=f"age_{metric}")
    st.caption("The 80% interval should hold the true age for about 80% of faces in every group; far less means "
               "the model is overconfident for that group.")


def calibration_tab(reports: dict[str, Evaluation]) -> None:
    heads = list(dict.fromkeys(h for e in reports.values() for h in e.summary.calibration))
    label = (lambda n: n) if len(reports) > 1 else (lambda n: "")
    for column, head in zip(st.columns(len(heads) or 1), heads):
        data = {label(n): e.summary.calibration[head] for n, e in reports.items() if head in e.summary.calibration}
        eces = ", ".join(fmt("gender.ece", d.ece) for d in data.values())
        column.plotly_chart(viz.reliability_diagram(data, f"{HEAD_NAMES.get(head, head)} (ECE {eces})"),
                            key=f"reliability_{head}")
    st.caption("Points on the diagonal mean the stated confidence is the real accuracy; below it, overconfident. "
               "Marker size follows the number of faces in the bin.")


def grad_cam(evaluation: Evaluation, data: bytes, head: str) -> Optional[object]:
    """The Grad-CAM overlay of the predicted class on one mistake, or None when it cannot be made here."""
    from facekit.vision.io import load_image

    model = evaluation.summary.model.file()
    image = load_image(data)
    result = common.predictor(model).predict(image)
    if not result.faces:
        return None
    explanation = common.explainer(model).explain(image, result.faces[:1], "age" if head == "age" else head)
    return viz.heat_overlay(image, *explanation.photo_heat())


def explain_available(evaluation: Evaluation) -> bool:
    """Grad-CAM needs the faces as the detector crops them."""
    return evaluation.summary.crop == "detect"


def mistakes_tab(name: str, evaluation: Evaluation) -> None:
    present = [label for label, head in HEADS.items() if evaluation.summary.head(head) is not None]
    head = HEADS[st.radio("Head", present, horizontal=True, key="mistake_head")]
    wrong = mistakes(evaluation.predictions, head)
    if wrong.empty:
        st.info("No mistakes of this head in this evaluation.")
        return
    order = "largest age errors first" if head == "age" else "most confident wrong answers first"
    st.caption(f"{name}: {len(wrong):,} wrong, {order}. True label, then the model's answer. The most confident "
               "'mistakes' are often wrong labels in the dataset itself: look before trusting an accuracy to the point.")
    show_cam = explain_available(evaluation) and st.toggle(
        "Grad-CAM of the predicted answer", key="mistake_cam",
        help="Computed now for the faces shown (a few seconds each on a CPU).")
    images, captions, missing = [], [], 0
    for _, row in wrong.head(GALLERY).iterrows():
        try:
            data = face_image(image_reference(row, evaluation.summary.dataset))
            shown = thumbnail_jpeg(data)
        except (ValueError, OSError):  # ImageError is a ValueError: a file that is not an image is not shown
            missing += 1
            continue
        if head == "age":
            caption = f"true {row['age_true']:.0f}, predicted {row['age_pred']:.0f} ({row['age_low']:.0f}–{row['age_high']:.0f})"
        else:
            caption = (f"true {labels.display(row[f'{head}_true'])}, predicted {labels.display(row[f'{head}_pred'])} "
                       f"{row['confidence']:.0%}")
        overlay = grad_cam(evaluation, data, head) if show_cam else None
        images.append(shown if overlay is None else overlay)
        captions.append(caption)
    if missing:
        st.info(f"{missing} image(s) could not be read on this machine: the dataset ({evaluation.summary.dataset.source}) "
                "is not here. For UTKFace, set FACEKIT_UTKFACE to the archive.")
    if images:
        st.image(images, caption=captions, width=150)
    columns = ["file", f"{head}_true", f"{head}_pred", "error" if head == "age" else "confidence"]
    st.dataframe(wrong[columns].head(200), hide_index=True, key="mistake_table")


st.title("Model Evaluation")
st.caption("How accurate the model is, for whom it is less accurate, how well its confidence can be trusted, and "
           "where it goes most wrong, from saved evaluations (`facekit evaluate --out DIR`).")
choice = st.sidebar.selectbox("Report", [*REPORTS, ON_DISK, OWN], key="report")
first_name, first = (OWN_NAME, own_photos()) if choice == OWN else choose(choice, key="report")
if first is None:
    st.info("No report to show: choose a report folder in the sidebar, or make one with "
            "`facekit evaluate --out DIR`.")
    st.stop()
second_name, second = choose(st.sidebar.selectbox("Compare with", [NOTHING, *REPORTS, ON_DISK], key="compare"),
                             key="compare")
reports = {first_name: first}
if second is not None and second_name != first_name:
    reports[second_name] = second

for fact in evaluation_facts(first.summary):
    st.markdown(f"- {fact}")
for note in first.summary.notes:
    st.caption(note)
model_file_note(first)
datasets_view(first.summary)
if len(reports) > 1:
    st.caption(f"Compared with **{second_name}**: " + "; ".join(evaluation_facts(second.summary)[1:3]))
headline(reports)
if first.summary.group_settings is None:
    st.warning("This evaluation has no metrics (no face was evaluated).")
    st.stop()

tabs = st.tabs(["Overview", "Classes", "Groups", "Age", "Calibration", "Worst mistakes", "Face detection",
               "Training curves", "Model card"])
with tabs[0]:
    for column, (name, evaluation) in zip(st.columns(len(reports)), reports.items()):
        column.markdown(f"**{name}**")
        column.dataframe(headline_table(evaluation.summary), hide_index=True, key=f"headline_{name}")
    st.markdown("**Largest gaps between groups**")
    for gap in key_gaps(first.summary):
        st.markdown(f"- {gap_sentence(gap)}")
with tabs[1]:
    classes_tab(reports)
with tabs[2]:
    groups_tab(reports)
with tabs[3]:
    age_tab(reports)
with tabs[4]:
    calibration_tab(reports)
with tabs[5]:
    mistakes_tab(first_name, first)
with tabs[6]:
    detection_tab()
with tabs[7]:
    curves_tab()
with tabs[8]:
    others = [s for name, s in same_model(first.summary).items() if name != first_name]
    card = model_card([first.summary, *others])
    st.markdown(card)
    st.download_button("Download the model card", card, file_name="MODEL_CARD.md", mime="text/markdown")
