"""Model Evaluation: how well the model does, for whom it does worse, and where it is most wrong.

A thin page over saved evaluations (``facekit evaluate --out DIR``): it reads the JSON and
the per-face CSV, never runs the model for the numbers. Tables come from ``facekit.evaluation.report``,
figures from ``facekit.viz``. Grad-CAM of a mistake is computed on request only.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

import streamlit as st

from facekit import labels, viz
from facekit.evaluation.evaluate import Evaluation, image_reference, load_evaluation
from facekit.evaluation.report import (FEATURE_NAMES, HEAD_NAMES, KEY_METRICS, METRIC_NAMES, YEARS, by_group_table,
                            committed_reports, evaluation_facts, fmt, gap_sentence, gap_table, headline_table,
                            metric_rows, mistakes, model_card, per_class_table)

ON_DISK = "A report folder on disk"
NOTHING = "Nothing"
GALLERY = 12
HEADS = {"Gender": "gender", "Ethnicity": "race", "Age": "age"}

REPORTS = committed_reports()

st.set_page_config(page_title="Model Evaluation · facekit", page_icon=":material/fact_check:", layout="wide")


@st.cache_data(show_spinner="Reading the report…", max_entries=8)
def load(folder: str, modified: float) -> Evaluation:
    """``modified`` only keys the cache: a regenerated report is read again."""
    return load_evaluation(folder)


@st.cache_data(show_spinner=False, max_entries=8)
def file_digest(path: str, modified: float) -> Optional[str]:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).is_file() else None


@st.cache_data(show_spinner=False, max_entries=500)
def face_image(ref: str) -> bytes:
    from facekit.data import read_image_bytes

    return read_image_bytes(ref)


def choose(label: str, options: list[str], key: str) -> tuple[Optional[str], Optional[Evaluation]]:
    """A report picked in the sidebar: (name, evaluation), or (None, None)."""
    choice = st.sidebar.selectbox(label, options, key=key)
    if choice == NOTHING:
        return None, None
    folder = REPORTS.get(choice)
    if folder is None:
        path = st.sidebar.text_input("Folder", key=f"{key}_path", placeholder="reports/my-model",
                                     help="A folder written by `facekit evaluate --out`.")
        if not path.strip():
            st.sidebar.info("Enter the folder of a saved evaluation.")
            return None, None
        folder = Path(path.strip()).expanduser()
    summary_file = Path(folder) / "evaluation.json"
    try:
        return Path(folder).name, load(str(folder), summary_file.stat().st_mtime if summary_file.exists() else 0.0)
    except (FileNotFoundError, ValueError) as error:
        st.sidebar.error(str(error))
        return None, None


def model_file_note(evaluation: Evaluation) -> None:
    """Say so when the model file on this machine is not the one the report measured (it was retrained)."""
    from facekit.data.paths import resolve_shown

    model = evaluation.summary["model"]
    path = resolve_shown(model["path"])
    digest = file_digest(str(path), path.stat().st_mtime if path.exists() else 0.0)
    if digest is None:
        st.caption(f"The model file {model['path']} is not on this machine; the numbers are the saved ones.")
    elif digest != model["sha256"]:
        st.warning(f"{model['path']} has changed since this report was made (retrained?): regenerate it with "
                   f"`{evaluation.summary.get('command', 'facekit evaluate --out DIR')}`.")


def headline(reports: dict[str, Evaluation]) -> None:
    (name, first), *rest = reports.items()
    other = rest[0][1].summary if rest else None
    shown = [("gender", "accuracy", "gender.accuracy"), ("race", "accuracy", "race.accuracy"),
             ("age", "mae", "age.mae"), ("age", "interval_coverage", "age.interval_coverage")]
    columns = st.columns(len(shown) + 1)
    for column, (head, key, metric) in zip(columns, shown):
        value = first.summary.get(head, {}).get(key)
        delta = None
        if other is not None and other.get(head, {}).get(key) is not None and value is not None:
            difference = value - other[head][key]
            delta = f"{difference:+.2f} years" if metric in YEARS else f"{difference * 100:+.1f} points"
        column.metric(METRIC_NAMES[metric], fmt(metric, value), delta,
                      delta_color="inverse" if metric in YEARS else "normal",
                      help=f"compared with {rest[0][0]}" if rest else None)
    hit_rate = first.summary["detector"].get("hit_rate")
    columns[-1].metric("detector hit rate", "n/a (archive crops)" if hit_rate is None else f"{hit_rate:.1%}",
                       help=first.summary["detector"]["note"])


def classes_tab(reports: dict[str, Evaluation]) -> None:
    head = HEADS[st.radio("Head", list(HEADS), horizontal=True, key="classes_head")]
    normalize = st.toggle("Normalize rows (share of each true class)", value=True, key="normalize")
    for column, (name, evaluation) in zip(st.columns(len(reports)), reports.items()):
        with column:
            summary = evaluation.summary
            if head not in summary:
                st.info(f"{name}: no {HEAD_NAMES[head]} labels, head skipped.")
                continue
            st.plotly_chart(viz.confusion_heatmap(summary[head]["confusion_matrix"], normalize,
                                                  f"{name}: {HEAD_NAMES[head]}"), key=f"confusion_{name}")
            table = per_class_table(summary, head)
            st.dataframe(table, hide_index=True, column_config={
                c: st.column_config.ProgressColumn(c, format="percent", min_value=0, max_value=1)
                for c in ("precision", "recall", "f1")})
            accuracy = summary[head]["bin_accuracy" if head == "age" else "accuracy"]
            balanced = summary[head].get("balanced_accuracy")
            st.caption(f"accuracy {accuracy:.1%}" + (f", balanced accuracy {balanced:.1%}" if balanced else "")
                       + (f"; one age group off allowed {summary['age']['bin_one_off_accuracy']:.1%}"
                          if head == "age" else ""))


def groups_tab(reports: dict[str, Evaluation]) -> None:
    first = next(iter(reports.values())).summary
    features = first.get("group_settings", {}).get("features", [])
    left, right = st.columns(2)
    metric = left.selectbox("Metric", list(METRIC_NAMES), format_func=METRIC_NAMES.get, key="group_metric")
    feature = right.selectbox("By", features, format_func=FEATURE_NAMES.get, key="group_feature")
    rows = {name: metric_rows(e.summary, metric, feature) for name, e in reports.items()}
    names = {name: name for name in rows} if len(rows) > 1 else {name: "" for name in rows}
    st.plotly_chart(viz.group_bars({names[n]: r for n, r in rows.items()}, metric in YEARS,
                                   f"{METRIC_NAMES[metric]} by {FEATURE_NAMES[feature]} (95% CI)"), key="group_bars")
    minimum = first.get("group_settings", {}).get("min_size")
    for name, evaluation in reports.items():
        gaps = gap_table(evaluation.summary)
        gaps = gaps[(gaps["metric"] == metric) & (gaps["feature"] == feature)]
        prefix = f"**{name}**: " if len(reports) > 1 else ""
        if len(gaps):
            st.markdown(prefix + gap_sentence(gaps.iloc[0]))
        else:
            st.markdown(prefix + f"no gap: fewer than two groups of at least {minimum} faces.")
    st.caption(f"Pale bars marked (small) are groups under {minimum} faces: shown, not compared. The dashed line is "
               "all faces. Intervals are 95% bootstrap intervals.")
    for name, evaluation in reports.items():
        st.dataframe(by_group_table(evaluation.summary, metric, feature), hide_index=True, key=f"group_table_{name}")


def age_tab(reports: dict[str, Evaluation]) -> None:
    present = {name: e.summary for name, e in reports.items() if e.summary.get("age", {}).get("mae") is not None}
    if not present:
        st.info("No ages in years in this evaluation.")
        return
    label = (lambda n: n) if len(present) > 1 else (lambda n: "")
    st.plotly_chart(viz.decade_errors({label(n): s["age"]["mae_by_decade"] for n, s in present.items()}),
                    key="decades")
    feature = st.selectbox("Age error by", next(iter(present.values()))["group_settings"]["features"],
                           format_func=FEATURE_NAMES.get, key="age_feature")
    for metric in ("age.mae", "age.interval_coverage"):
        rows = {label(n): metric_rows(s, metric, feature) for n, s in present.items()}
        st.plotly_chart(viz.group_bars(rows, metric in YEARS, f"{METRIC_NAMES[metric]} by {FEATURE_NAMES[feature]}"),
                        key=f"age_{metric}")
    st.caption("The 80% interval should hold the true age for about 80% of faces in every group; far less means "
               "the model is overconfident for that group.")


def calibration_tab(reports: dict[str, Evaluation]) -> None:
    heads = list(dict.fromkeys(h for e in reports.values() for h in e.summary.get("calibration", {})))
    label = (lambda n: n) if len(reports) > 1 else (lambda n: "")
    for column, head in zip(st.columns(len(heads) or 1), heads):
        data = {label(n): e.summary["calibration"][head] for n, e in reports.items() if head in e.summary["calibration"]}
        eces = ", ".join(f"{d['ece']:.3f}" for d in data.values())
        column.plotly_chart(viz.reliability_diagram(data, f"{HEAD_NAMES.get(head, head)} (ECE {eces})"),
                            key=f"reliability_{head}")
    st.caption("Points on the diagonal mean the stated confidence is the real accuracy; below it, overconfident. "
               "Marker size follows the number of faces in the bin.")


def grad_cam(evaluation: Evaluation, data: bytes, head: str) -> Optional[object]:
    """The Grad-CAM overlay of the predicted class on one mistake, or None when it cannot be made here."""
    from facekit.data.paths import resolve_shown
    from facekit.vision.io import load_image

    path = resolve_shown(evaluation.summary["model"]["path"])
    predictor, explainer = gradcam_tools(str(path))
    image = load_image(data)
    result = predictor.predict(image)
    if not result.faces:
        return None
    explanation = explainer.explain(image, result.faces[:1], "age" if head == "age" else head)
    return viz.heat_overlay(image, *explanation.photo_heat())


@st.cache_resource(show_spinner="Loading the model for Grad-CAM…")
def gradcam_tools(model_path: str):
    from facekit.explain import Explainer
    from facekit.predict import Predictor

    predictor = Predictor(model_path, max_faces=1)
    return predictor, Explainer(predictor.model)


def explain_available(evaluation: Evaluation) -> bool:
    try:
        import facekit.explain  # noqa: F401  (another module's feature: used only when present)
    except ImportError:
        return False
    return evaluation.summary["crop"] == "detect"


def mistakes_tab(name: str, evaluation: Evaluation) -> None:
    head = HEADS[st.radio("Head", list(HEADS), horizontal=True, key="mistake_head")]
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
            data = face_image(image_reference(row, evaluation.summary["dataset"]))
        except (ValueError, OSError):
            missing += 1
            continue
        if head == "age":
            caption = f"true {row['age_true']:.0f}, predicted {row['age_pred']:.0f} ({row['age_low']:.0f}–{row['age_high']:.0f})"
        else:
            caption = (f"true {labels.display(row[f'{head}_true'])}, predicted {labels.display(row[f'{head}_pred'])} "
                       f"{row['confidence']:.0%}")
        overlay = grad_cam(evaluation, data, head) if show_cam else None
        images.append(data if overlay is None else overlay)
        captions.append(caption)
    if missing:
        st.info(f"{missing} image(s) could not be read on this machine: the dataset ({evaluation.summary['dataset']['source']}) "
                "is not here. For UTKFace, set FACEKIT_UTKFACE to the archive.")
    if images:
        st.image(images, caption=captions, width=150)
    columns = ["file", f"{head}_true", f"{head}_pred", "error" if head == "age" else "confidence"]
    st.dataframe(wrong[columns].head(200), hide_index=True, key="mistake_table")


st.title("Model Evaluation")
st.caption("How accurate the model is, for whom it is less accurate, how well its confidence can be trusted, and "
           "where it goes most wrong, from saved evaluations (`facekit evaluate --out DIR`).")
first_name, first = choose("Report", [*REPORTS, ON_DISK], key="report")
if first is None:
    st.info("No report to show: choose a report folder in the sidebar, or make one with "
            "`facekit evaluate --out DIR`.")
    st.stop()
second_name, second = choose("Compare with", [NOTHING, *REPORTS, ON_DISK], key="compare")
reports = {first_name: first}
if second is not None and second_name != first_name:
    reports[second_name] = second

for fact in evaluation_facts(first.summary):
    st.markdown(f"- {fact}")
for note in first.summary.get("notes", []):
    st.caption(note)
model_file_note(first)
if len(reports) > 1:
    st.caption(f"Compared with **{second_name}**: " + "; ".join(evaluation_facts(second.summary)[1:3]))
headline(reports)
if "groups" not in first.summary:
    st.warning("This evaluation has no metrics (no face was evaluated).")
    st.stop()

tabs = st.tabs(["Overview", "Classes", "Groups", "Age", "Calibration", "Worst mistakes", "Model card"])
with tabs[0]:
    for column, (name, evaluation) in zip(st.columns(len(reports)), reports.items()):
        column.markdown(f"**{name}**")
        column.dataframe(headline_table(evaluation.summary), hide_index=True, key=f"headline_{name}")
    gaps = gap_table(first.summary)
    st.markdown("**Largest gaps between groups**")
    for _, gap in gaps[gaps["metric"].isin(KEY_METRICS)].iterrows():
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
    st.markdown(model_card(first.summary))
    st.download_button("Download the model card", model_card(first.summary), file_name="MODEL_CARD.md",
                       mime="text/markdown")
