"""The evaluation report and the model card, written from an evaluation's JSON and the checkpoint's sidecar.

Nothing here computes a metric: the numbers come from ``facekit.evaluation.evaluate`` (which calls
``facekit.evaluation.metrics``) and are only arranged into tables, sentences and figures. The same
table helpers feed the Model Evaluation page, so the page, the report and the card agree.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from facekit import labels
from facekit.evaluation.metrics import Gap
from facekit.evaluation.summary import EvaluationSummary, training_data, validation_scores

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
CARD_FILE = "MODEL_CARD.md"
REPORTS = Path(__file__).resolve().parents[1] / "assets" / "reports"  # committed reports: one folder per model and dataset
ECE_NOTE = ("ECE is biased upward on bootstrap resamples (repeated faces make bins noisier), so its interval "
            "can sit above the value itself; read it as the spread, not as bounds.")

METRIC_NAMES = {
    "gender.accuracy": "gender accuracy",
    "gender.balanced_accuracy": "gender balanced accuracy",
    "gender.ece": "gender ECE",
    "race.accuracy": "ethnicity accuracy",
    "race.balanced_accuracy": "ethnicity balanced accuracy",
    "race.ece": "ethnicity ECE",
    "age.mae": "age MAE (years)",
    "age.rmse": "age RMSE (years)",
    "age.cs5": "age within 5 years (CS@5)",
    "age.interval_coverage": "80% age interval coverage",
    "age.bin_accuracy": "age-group accuracy",
    "age.bin_one_off_accuracy": "age-group accuracy, one group off allowed",
    "age_class.accuracy": "accuracy on the model's age groups",
    "age_class.balanced_accuracy": "balanced accuracy on the model's age groups",
    "age.in_group": "age in the perceived age group",
}
YEARS = {"age.mae", "age.rmse"}  # metrics in years; every other one is a fraction
FEATURE_NAMES = {"all": "all faces", "gender": "gender", "race": "ethnicity", "race7": "ethnicity (7 classes)",
                 "skin": "skin tone", "age_group": "perceived age group", "face_size": "face size",
                 "age_bin": "age group", "race_gender": "ethnicity × gender"}
HEAD_NAMES = {"gender": "gender", "race": "ethnicity", "race7": "ethnicity (7 classes)", "age": "age group",
              "age_bin": "age group", "age_class": "the model's age groups"}
# The group features the card breaks the key metrics down by, when the dataset has them.
CARD_FEATURES = ("race", "race7", "gender", "age_bin", "skin", "age_group", "face_size")
# The per-group views the report and the card show, in order.
KEY_METRICS = ("gender.accuracy", "race.accuracy", "age.mae", "age.interval_coverage", "age.in_group")
# Test sets unlike the studio-like portraits of UTKFace, in the order the pages name them.
BEYOND_PORTRAITS = {"fairface": "web photos (FairFace)", "wider-dev": "faces in crowd photos (wider-dev)"}


def committed_reports(first: str = "") -> dict[str, Path]:
    """Name -> folder of each report shipped in the package; those whose names start with ``first``
    (a model's name, so its reports lead) come first, in name order."""
    if not REPORTS.is_dir():
        return {}
    folders = sorted(REPORTS.iterdir(), key=lambda folder: (not folder.name.startswith(first) if first else False,
                                                            folder.name))
    return {folder.name: folder for folder in folders if (folder / "evaluation.json").is_file()}


def committed_detection_reports() -> dict[str, Path]:
    """Name -> folder of each detection report shipped in the package (``facekit evaluate`` on a face-box CSV)."""
    from facekit.evaluation.detection import DETECTION_FILE

    if not REPORTS.is_dir():
        return {}
    return {folder.name: folder for folder in sorted(REPORTS.iterdir()) if (folder / DETECTION_FILE).is_file()}


def group_name(group: str) -> str:
    """'asian/female' -> 'Asian female', 'all' -> 'all faces'."""
    if group == "all":
        return "all faces"
    return " ".join(labels.display(part) if i == 0 else labels.display(part).lower()
                    for i, part in enumerate(group.split("/")))


def fmt(metric: str, value: Optional[float]) -> str:
    """A metric value as people read it: years with one decimal, fractions as percentages."""
    if value is None or pd.isna(value):
        return "n/a"
    if metric in YEARS:
        return f"{value:.2f}"
    return f"{value:.3f}" if metric.endswith(".ece") else f"{value:.1%}"


def group_table(summary: EvaluationSummary) -> pd.DataFrame:
    """The group values as a frame: metric, feature, group, value, ci_low, ci_high, n, small."""
    columns = ["metric", "feature", "group", "value", "ci_low", "ci_high", "n", "small"]
    return pd.DataFrame([g.to_dict() for g in summary.groups], columns=columns)


def metric_rows(summary: EvaluationSummary, metric: str, feature: str) -> pd.DataFrame:
    """The ``groups`` rows of one metric by one feature, with its all-faces row first (a figure's reference line)."""
    table = group_table(summary)
    return table[(table["metric"] == metric) & table["feature"].isin(["all", feature])]


def key_gaps(summary: EvaluationSummary, metrics: Sequence[str] = KEY_METRICS) -> list[Gap]:
    """The largest gaps of the key metrics, in the summary's order."""
    return [gap for gap in summary.gaps if gap.metric in metrics]


def gap_sentence(gap: Gap) -> str:
    """One gap written out, e.g. 'ethnicity accuracy by ethnicity: worst Others 71.2%, best White 86.0%, gap 14.8 points'."""
    metric = gap.metric
    unit = "years" if metric in YEARS else "points"
    size = gap.difference if metric in YEARS else gap.difference * 100
    small = f"; left out as too small: {', '.join(group_name(g) for g in gap.small_groups)}" if gap.small_groups else ""
    ratio = f"{gap.ratio:.2f}" if gap.ratio is not None else "n/a"
    return (f"{METRIC_NAMES.get(metric, metric)} by {FEATURE_NAMES.get(gap.feature, gap.feature)}: "
            f"worst {group_name(gap.worst_group)} {fmt(metric, gap.worst)}, best {group_name(gap.best_group)} "
            f"{fmt(metric, gap.best)}, gap {size:.1f} {unit}, min/max ratio {ratio}{small}")


def headline_table(summary: EvaluationSummary) -> pd.DataFrame:
    """Every metric on all faces with its 95% CI."""
    table = group_table(summary)
    table = table[table["feature"] == "all"]
    return pd.DataFrame({
        "metric": [METRIC_NAMES.get(m, m) for m in table["metric"]],
        "value": [fmt(m, v) for m, v in zip(table["metric"], table["value"])],
        "95% CI": [f"{fmt(m, lo)} – {fmt(m, hi)}" for m, lo, hi in zip(table["metric"], table["ci_low"], table["ci_high"])],
        "faces": table["n"].to_numpy(),
    })


def per_class_table(summary: EvaluationSummary, head: str) -> pd.DataFrame:
    """Precision, recall, F1 and support per class of one head (age: per age group)."""
    metrics = summary.head(head)
    rows = list(metrics.per_class) if metrics is not None else []
    table = pd.DataFrame(rows, columns=["label", "precision", "recall", "f1", "support"])
    table["label"] = [labels.display(str(v)) for v in table["label"]]
    return table


def by_group_table(summary: EvaluationSummary, metric: str, feature: str) -> pd.DataFrame:
    """One metric by one feature's groups, formatted: group, value, 95% CI, faces, note."""
    table = group_table(summary)
    table = table[(table["metric"] == metric) & (table["feature"] == feature)]
    minimum = summary.group_settings.min_size if summary.group_settings else 0
    return pd.DataFrame({
        "group": [group_name(g) for g in table["group"]],
        "value": [fmt(metric, v) for v in table["value"]],
        "95% CI": [f"{fmt(metric, lo)} – {fmt(metric, hi)}" for lo, hi in zip(table["ci_low"], table["ci_high"])],
        "faces": table["n"].to_numpy(),
        "note": [f"fewer than {minimum} faces" if s else "" for s in table["small"]],
    })


def mistakes(predictions: pd.DataFrame, head: str) -> pd.DataFrame:
    """Wrong answers of one head, most confident first (age: the largest errors in years first).

    Adds ``confidence`` (the predicted class's probability) or ``error`` (years) to the rows.
    """
    faces = predictions[predictions["status"] == "ok"]
    if head == "age":
        faces = faces.dropna(subset=["age_true"])
        error = (faces["age_pred"] - faces["age_true"]).abs()
        return faces.assign(error=error)[error > 0].sort_values("error", ascending=False)
    truth, predicted = faces[f"{head}_true"], faces[f"{head}_pred"]
    wrong = faces[truth.notna() & (truth != predicted)]
    confidence = [row[f"p_{head}_{row[f'{head}_pred']}"] for _, row in wrong.iterrows()]
    return wrong.assign(confidence=confidence).sort_values("confidence", ascending=False)


def _markdown(table: pd.DataFrame) -> str:
    """A frame as a GitHub Markdown table (no tabulate dependency)."""
    header = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _percent_table(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(**{c: [f"{v:.1%}" for v in table[c]] for c in ("precision", "recall", "f1")})


ENGINE_NAMES = {"int8": "an int8 ONNX graph", "onnx": "a float ONNX graph", "torch": "PyTorch"}
# Reports made before the detector was recorded were all detected by MTCNN.
DETECTOR_NAMES = {"retinaface": "RetinaFace", "mtcnn": "MTCNN"}


def evaluation_facts(summary: EvaluationSummary) -> list[str]:
    """Which model, which data, how many faces, how they were cropped: the lines every report starts with."""
    dataset, detector, model = summary.dataset, summary.detector, summary.model
    limit = f", a seeded sample of {dataset.limit}" if dataset.limit else ""
    engine = f", run as {ENGINE_NAMES[summary.engine]}" if summary.engine in ENGINE_NAMES else ""
    facts = [
        f"model `{model.path}` (sha256 {model.sha256[:12]}){engine}",
        f"data: {dataset.name} `{Path(dataset.source).name}`, split `{dataset.split}`{limit}: {detector.images:,} images",
    ]
    if summary.crop == "detect":
        hit_rate = "n/a" if detector.hit_rate is None else f"{detector.hit_rate:.1%}"
        found_by = DETECTOR_NAMES.get((detector.settings or {}).get("detector", "mtcnn"), "the detector")
        facts.append(f"crop: re-detected by {found_by}, largest face; a face was found in {detector.faces_found:,} images "
                     f"(hit rate {hit_rate}); {detector.note}")
    else:
        facts.append("crop: the archive image itself resized to the model's input (no detection)")
    facts.append(f"faces evaluated: {detector.evaluated:,}")
    if summary.created:
        facts.append(f"created {summary.created}")
    return facts


def age_order_text(summary: EvaluationSummary) -> str:
    """The perceived age-group check in a few words, e.g. 'rising; Senior at 50+ 62%'."""
    order = summary.age_group
    if order is None:
        return "n/a"
    senior = f"{order.senior_at_least:.0%}" if order.senior_at_least is not None else "n/a"
    return f"{'rising' if order.rising else 'not rising'}; Senior at {order.senior_age}+ {senior}"


def dataset_name(summary: EvaluationSummary) -> str:
    """'fairface (test)', with the crop when it is not the re-detected face."""
    crop = ", archive crops" if summary.crop == "archive" else ""
    return f"{summary.dataset.name} ({summary.dataset.split}{crop})"


def datasets_table(summaries: Sequence[EvaluationSummary]) -> pd.DataFrame:
    """One row per evaluation of a model: the headline of each dataset side by side."""
    def value(summary: EvaluationSummary, head: str, name: str, metric: str) -> str:
        metrics = summary.head(head)
        return fmt(metric, getattr(metrics, name)) if metrics is not None else "n/a"

    return pd.DataFrame([{
        "dataset": dataset_name(s), "faces": f"{s.detector.evaluated:,}",
        "gender accuracy": value(s, "gender", "accuracy", "gender.accuracy"),
        "ethnicity (5) accuracy": value(s, "race", "accuracy", "race.accuracy"),
        "ethnicity (7) accuracy": value(s, "race7", "accuracy", "race.accuracy"),
        "age MAE (years)": value(s, "age", "mae", "age.mae"),
        "age-group accuracy": value(s, "age", "bin_accuracy", "age.bin_accuracy"),
        "perceived age-group order": age_order_text(s),
        "gender ECE": value(s, "gender", "ece", "gender.ece"),
        "ethnicity ECE": value(s, "race", "ece", "race.ece"),
    } for s in summaries])


def report_markdown(summary: EvaluationSummary) -> str:
    """The evaluation report as Markdown: the facts, headline numbers, per-class tables, gaps and groups."""
    settings = summary.group_settings
    lines = ["# facekit evaluation report", ""] + [f"- {fact}" for fact in evaluation_facts(summary)]
    if summary.command:
        lines.append(f"- regenerate with `{summary.command}`")
    lines += [f"- note: {note}" for note in summary.notes]
    lines += ["", "Figures: `report.html` beside this file.", "", "## Headline (all faces, 95% bootstrap CI)", "",
              _markdown(headline_table(summary)), "", ECE_NOTE]
    for head in ("gender", "race", "race7", "age_class", "age"):
        if summary.head(head) is not None:
            lines += ["", f"## Per class: {HEAD_NAMES[head]}", "", _markdown(_percent_table(per_class_table(summary, head)))]
    if summary.age_group is not None:
        order = pd.DataFrame([{"perceived age group": labels.display(g.group), "faces": g.faces,
                               "mean predicted age": fmt("age.mae", g.mean_age),
                               "median predicted age": fmt("age.mae", g.median_age)} for g in summary.age_group.groups])
        lines += ["", f"## Predicted age by perceived age group ({age_order_text(summary)})", "", _markdown(order)]
    if summary.age is not None:
        decades = pd.DataFrame(list(summary.age.mae_by_decade), columns=["decade", "mae", "n"])
        decades["mae"] = decades["mae"].map(lambda v: fmt("age.mae", v))
        lines += ["", "## Age error by true age (MAE in years)", "", _markdown(decades)]
    if settings is None:
        return "\n".join(lines) + "\n"
    gaps = key_gaps(summary)
    if gaps:
        lines += ["", f"## Largest gaps between groups (groups of at least {settings.min_size} faces)", ""]
        lines += [f"- {gap_sentence(gap)}" for gap in gaps]
    lines += ["", f"## By group ({settings.n_boot} bootstrap resamples, seed {settings.seed}; "
              f"groups under {settings.min_size} faces are flagged, not hidden)"]
    for metric in KEY_METRICS:
        for feature in settings.features:
            table = by_group_table(summary, metric, feature)
            if len(table):
                lines += ["", f"### {METRIC_NAMES[metric]} by {FEATURE_NAMES[feature]}", "", _markdown(table)]
    lines += ["", "All metrics by every group are in `evaluation.json` (`groups`, `gaps`); per-face predictions "
              "are in `predictions.csv`."]
    return "\n".join(lines) + "\n"


def report_figures(summary: EvaluationSummary) -> list:
    """The report's Plotly figures, in reading order."""
    from facekit import viz

    figures = []
    for head in ("gender", "race", "race7", "age_class", "age"):
        if summary.head(head) is not None:
            figures.append(viz.confusion_heatmap(summary.head(head).confusion_matrix, normalize=True,
                                                 title=f"Confusion matrix: {HEAD_NAMES[head]} (row-normalized)"))
    for metric in KEY_METRICS:
        for feature in summary.features:
            rows = metric_rows(summary, metric, feature)
            if len(rows) > 1:
                figures.append(viz.group_bars({"": rows}, metric in YEARS,
                                              f"{METRIC_NAMES[metric]} by {FEATURE_NAMES[feature]}"))
    if summary.age is not None:
        figures.append(viz.decade_errors({"": summary.age.mae_by_decade}, "Age MAE by true age"))
    for head, data in summary.calibration.items():
        figures.append(viz.reliability_diagram({"": data}, f"Reliability: {HEAD_NAMES.get(head, head)}"
                                               f" (ECE {fmt('gender.ece', data.ece)})"))
    return figures


def write_report(summary: EvaluationSummary, folder: os.PathLike | str) -> list[Path]:
    """report.md, report.html (Plotly figures; plotly.js from its CDN to stay small) and the model card.

    The card also holds the other committed evaluations of the same weights, one per dataset.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    markdown = folder / REPORT_MD
    markdown.write_text(report_markdown(summary))
    html = folder / REPORT_HTML
    parts = [figure.to_html(full_html=False, include_plotlyjs="cdn" if i == 0 else False)
             for i, figure in enumerate(report_figures(summary))]
    facts = "".join(f"<li>{fact}</li>" for fact in evaluation_facts(summary))
    html.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>facekit evaluation</title></head>"
                    f"<body style='font-family:sans-serif;max-width:1000px;margin:auto'><h1>facekit evaluation</h1>"
                    f"<ul>{facts}</ul>{''.join(parts)}</body></html>\n")
    card = folder / CARD_FILE
    others = [s for name, s in same_model_reports(summary.model.sha256).items()
              if REPORTS / name != folder.resolve()]
    card.write_text(model_card([summary, *others]))
    return [markdown, html, card]


def committed_summaries() -> dict[str, EvaluationSummary]:
    """Folder name -> summary of every committed report."""
    from facekit.evaluation.evaluate import load_summary

    return {name: load_summary(folder) for name, folder in committed_reports().items()}


def same_model_reports(sha256: str) -> dict[str, EvaluationSummary]:
    """The committed evaluations of the weights with this hash, by folder name: one per dataset (and crop)."""
    return {name: s for name, s in committed_summaries().items() if s.model.sha256 == sha256}


def beyond_portraits_sentence(summaries: Sequence[EvaluationSummary]) -> Optional[str]:
    """How often one model is right on photos unlike studio portraits (web and crowd photos), from its
    evaluations; None without any. A test part of a set the model trained on other parts of says so.

    Only the re-detected faces count (not archive crops): those are what the app reads.
    """
    if not summaries:
        return None
    parts = []
    for name, photos in BEYOND_PORTRAITS.items():
        summary = next((s for s in summaries if s.dataset.name == name and s.crop != "archive"), None)
        if summary is None:
            continue
        rates = [f"{head} {metrics.accuracy:.0%}" for head, metrics in (("gender", summary.gender),
                 ("ethnicity", summary.race)) if metrics is not None and metrics.accuracy is not None]
        trained = name in {d.dataset.lower() for d in training_data(summary.model.metadata)}
        if rates:
            parts.append(f"on {photos}{' held out from its training' if trained else ''}, " + " and ".join(rates))
    if not parts:
        return ("This model has not been measured on photos unlike studio portraits: expect it to be wrong "
                "more often on web and crowd photos than its evaluation says.")
    return (f"How often this model is right beyond studio portraits: {'; '.join(parts)}. Expect less on photos "
            "unlike these.")


# ---- the model card (Mitchell et al., "Model Cards for Model Reporting", FAT* 2019)


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else "n/a"


def model_licence(metadata: dict) -> str:
    """The licence a model inherits from its training data: the sidecar's own words, else its datasets' licences."""
    from facekit.data.licences import licence_note

    return metadata.get("licence") or licence_note([d.dataset.lower() for d in training_data(metadata)] or ["utkface"])


def _model_details(summary: EvaluationSummary, metadata: dict) -> list[str]:
    model = summary.model
    config = metadata.get("config", {})
    training = metadata.get("training", {})
    recipe = training.get("config", {})
    races = metadata.get("labels", {}).get("race", labels.RACES)
    fine = ", whose sums also give UTKFace's 5" if tuple(races) == labels.RACE7 else ""
    tuned = (f"fine-tuned from block `{config['trainable_from']}` on" if config.get("trainable_from")
             else "frozen;")
    lines = [
        f"- **Name**: `{model.name}`, weights sha256 `{model.sha256[:16]}`, file `{model.path}`.",
        f"- **Architecture**: InceptionResnetV1 face-recognition backbone (`{config.get('backbone', 'n/a')}`), "
        f"{tuned} a shared hidden layer ({config.get('hidden', 'n/a')} units) and three heads: gender (2 classes), "
        f"ethnicity ({len(races)} classes: {', '.join(labels.display(r) for r in races)}{fine}), and age as a "
        "probability distribution over 0–100 years, read as an expected age and an 80% interval.",
        f"- **Input**: one face, detected by RetinaFace (the default; MTCNN with `--detector mtcnn`) and aligned to a "
        f"{config.get('crop', {}).get('size', 160)} px crop on MTCNN's five landmarks.",
        "- **Calibration**: one temperature per head, fitted on the validation split: "
        + ", ".join(f"{h} {t:.2f}" for h, t in metadata.get("temperature", {}).items()) + ".",
    ]
    if recipe:
        lines.append(f"- **Training**: {recipe.get('epochs', 'n/a')} epochs at most, optimizer "
                     f"{recipe.get('optimizer', 'n/a')}, lr {recipe.get('lr', 'n/a')}, best epoch "
                     f"{training.get('best_epoch', 'n/a')}, seed {recipe.get('seed', 'n/a')}.")
    lines += [f"- **Licence**: {model_licence(metadata)}",
              "- **Produced by**: the facekit project (`facekit train`; recipes in `training/`)."]
    return lines


def _training_data(metadata: dict) -> list[str]:
    """The sidecar's datasets, one line each, then their validation numbers as a table."""
    lines = [f"- {d.dataset} (`{d.source}`, sha256 `{str(d.sha256 or 'n/a')[:16]}`, weight {d.weight:g}): "
             f"{_count(d.faces)} faces, of which {_count(d.train)} train and {_count(d.val)} validation; MTCNN (the training "
             f"crops' detector) found a face in {_count(d.detector_found)} (the archive chip is used for the rest)."
             for d in training_data(metadata)] or ["- not recorded in the checkpoint's metadata."]
    scores = validation_scores(metadata)
    if scores:
        table = pd.DataFrame([{
            "dataset": s.dataset, "faces": _count(s.faces), "gender accuracy": fmt("gender.accuracy", s.gender_accuracy),
            "ethnicity accuracy (head's classes)": fmt("race.accuracy", s.race_accuracy),
            "ethnicity (5) accuracy": fmt("race.accuracy", s.race5_accuracy), "age MAE": fmt("age.mae", s.age_mae),
            "age in labelled range": fmt("age.cs5", s.age_in_range),
            "80% interval coverage": fmt("age.interval_coverage", s.age_coverage)} for s in scores])
        lines += ["", "Validation (during training; model choice was made on these, never on test data):", "",
                  _markdown(table)]
    return lines


def _quantitative(summary: EvaluationSummary) -> list[str]:
    """One evaluation's headline and key metrics by group (skin tone and perceived age group included when labelled)."""
    lines = [f"### {dataset_name(summary)}", "", _markdown(headline_table(summary)), ""]
    for metric in KEY_METRICS:
        for feature in (f for f in CARD_FEATURES if f in summary.features):
            table = by_group_table(summary, metric, feature)
            if len(table):
                lines += [f"**{METRIC_NAMES[metric]} by {FEATURE_NAMES[feature]}**", "", _markdown(table), ""]
    gaps = key_gaps(summary)
    if gaps:
        lines += ["Largest gaps:", ""] + [f"- {gap_sentence(gap)}" for gap in gaps] + [""]
    return lines


def model_card(summaries: Sequence[EvaluationSummary], metadata: Optional[dict] = None) -> str:
    """The model card as Markdown from one model's evaluations (one per dataset; the first leads).

    ``metadata`` (a checkpoint sidecar) defaults to the one the first evaluation recorded.
    """
    summary = summaries[0]
    metadata = metadata if metadata is not None else summary.model.metadata
    trained = [d.dataset for d in training_data(metadata)]
    trained_names = {name.lower() for name in trained}
    evaluated = list(dict.fromkeys(s.dataset.name for s in summaries))
    lines = [*_card_front(summary, metadata), "## Evaluation data", "", _markdown(datasets_table(summaries)), ""]
    for each in summaries:
        lines += [f"**{dataset_name(each)}**", "", *[f"- {fact}" for fact in evaluation_facts(each)], ""]
    seen = [name for name in evaluated if name.lower() in trained_names]
    if seen:
        lines += [f"- Trained on other parts of {', '.join(seen)}: their test numbers are an upper bound for photos "
                  "from elsewhere.", ""]
    lines += ["## Training data", "", *_training_data(metadata), ""]
    if "utkface" in trained_names:
        lines += ["- UTKFace is imbalanced: about 42% of faces are White and 7% 'Others', and there are few old faces "
                  "of most ethnicities; see the Dataset Explorer page.", ""]
    lines += ["## Quantitative analyses", ""]
    for each in summaries:
        lines += _quantitative(each)
    lines += _card_back(evaluated)
    return "\n".join(lines)


def _card_front(summary: EvaluationSummary, metadata: dict) -> list[str]:
    """The card's first sections: model details, intended use, factors and metrics."""
    settings = summary.group_settings
    return [f"# Model card: {summary.model.name}", "",
            "Sections after Mitchell et al., *Model Cards for Model Reporting* (FAT* 2019). Generated by "
            "`facekit card` from the checkpoint's metadata and its evaluation reports.", "",
            "## Model details", "", *_model_details(summary, metadata), "",
            "## Intended use", "",
            "- **Primary uses**: research and teaching about automatic age, gender and ethnicity estimation: what "
            "such models get right, where they fail, and how biased data and models are.",
            "- **Primary users**: researchers, students, and engineers auditing similar systems.",
            "- **Out of scope**: any decision about a person (hiring, lending, policing, access, age verification, "
            "medical or legal use); identification or surveillance; inferring how a person identifies (the labels are "
            "perceived appearance, not identity); any use the training data's licences forbid (see Licence); photos "
            "unlike the training data (heavy make-up, masks, profile views, very low resolution) without evaluating "
            "on them first.", "",
            "## Factors", "",
            "- **Groups**: gender as the datasets label it (male, female: binary, annotated or perceived, not "
            "self-reported); ethnicity in the head's classes and in UTKFace's five coarse ones (White, Black, Asian, "
            "Indian, Others — 'Others' lumps Hispanic, Latino and Middle Eastern together); age in FairFace's nine age "
            "groups; ethnicity × gender; and, where a dataset labels them, skin tone, perceived age group and face "
            "size.",
            "- **Instrumentation**: the face detector (faces it misses are not classified), image resolution, pose, "
            "lighting, and the web photos the datasets were collected from.", "",
            "## Metrics", "",
            "- Gender and ethnicity: accuracy, balanced accuracy (each class weighed equally), per-class precision, "
            "recall and F1, confusion matrices, and expected calibration error (ECE, 15 bins) with reliability "
            "diagrams.",
            "- Age: mean absolute error (MAE) and RMSE in years, CS@5 (share within 5 years), age-group accuracy "
            "(exact and one group off), MAE by decade, and the coverage of the 80% interval (should be close to 80%); "
            "on perceived age groups, whether the predicted age rises from group to group.",
            f"- Uncertainty: 95% bootstrap confidence intervals ({settings.n_boot if settings else 'n/a'} resamples, "
            f"seeded) for every metric and group; gaps (max − min) and min/max ratios between groups of at least "
            f"{settings.min_size if settings else 'n/a'} faces; smaller groups are listed and flagged. {ECE_NOTE}", ""]


def _card_back(evaluated: list[str]) -> list[str]:
    """The card's last sections: ethical considerations, caveats and recommendations."""
    return ["The full breakdown (every metric by every group) is in each evaluation report.", "",
            "## Ethical considerations", "",
            "- Gender and ethnicity are sensitive attributes. Estimating them from a face can misgender people, "
            "reinforce stereotypes, and enable discrimination or surveillance; the categories are coarse, externally "
            "assigned, and do not describe how people identify.",
            "- The people in the datasets' photos did not consent to this use; the images were collected from the "
            "web.",
            "- Errors are not evenly spread: the per-group analyses above show which groups the model serves worse.",
            "- Photos given to the app are processed in memory and not stored.", "",
            "## Caveats and recommendations", "",
            f"- Evaluated on {', '.join(evaluated)}. Expect lower accuracy and larger gaps on other photos; evaluate "
            "on your own labelled data with `facekit evaluate --data PATH` before relying on any number here.",
            "- Labels are noisy (age especially) and perceived by annotators; UTKFace's 'Others' class is "
            "heterogeneous, so its accuracy is hard to interpret.",
            "- Treat every output as a probability, and the age as its interval, not its point estimate.",
            "- Groups with few faces have wide intervals: a gap involving them may be noise.",
            f"- Faces under {labels.MIN_ATTRIBUTE_FACE} px tall in the photo are flagged `low_resolution` in every row, "
            "card and summary: the heads are less accurate on them (the accuracy by face height is in each report "
            "whose dataset labels face boxes).",
            "- Do not use the model to make decisions about individuals.", ""]
