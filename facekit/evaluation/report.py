"""The evaluation report and the model card, written from an evaluation's JSON and the checkpoint's sidecar.

Nothing here computes a metric: the numbers come from ``facekit.evaluation.evaluate`` (which calls
``facekit.evaluation.metrics``) and are only arranged into tables, sentences and figures. The same
table helpers feed the Model Evaluation page, so the page, the report and the card agree.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import pandas as pd

from facekit import labels

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
CARD_FILE = "MODEL_CARD.md"
REPORTS = Path(__file__).resolve().parents[1] / "assets" / "reports"  # committed reports, one folder per model
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
}
YEARS = {"age.mae", "age.rmse"}  # metrics in years; every other one is a fraction
FEATURE_NAMES = {"all": "all faces", "gender": "gender", "race": "ethnicity", "age_bin": "age group",
                 "race_gender": "ethnicity × gender"}
HEAD_NAMES = {"gender": "gender", "race": "ethnicity", "age": "age group", "age_bin": "age group"}
# The per-group views the report and the card show, in order.
KEY_METRICS = ("gender.accuracy", "race.accuracy", "age.mae", "age.interval_coverage")


def committed_reports() -> dict[str, Path]:
    """Name -> folder of each report shipped in the package."""
    if not REPORTS.is_dir():
        return {}
    return {folder.name: folder for folder in sorted(REPORTS.iterdir()) if (folder / "evaluation.json").is_file()}


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


def group_table(summary: dict) -> pd.DataFrame:
    """The ``groups`` list as a frame: metric, feature, group, value, ci_low, ci_high, n, small."""
    columns = ["metric", "feature", "group", "value", "ci_low", "ci_high", "n", "small"]
    return pd.DataFrame(summary.get("groups", []), columns=columns)


def metric_rows(summary: dict, metric: str, feature: str) -> pd.DataFrame:
    """The ``groups`` rows of one metric by one feature, with its all-faces row first (a figure's reference line)."""
    table = group_table(summary)
    return table[(table["metric"] == metric) & table["feature"].isin(["all", feature])]


def gap_table(summary: dict) -> pd.DataFrame:
    columns = ["metric", "feature", "worst_group", "worst", "best_group", "best", "difference", "ratio",
               "groups_compared", "small_groups"]
    return pd.DataFrame(summary.get("gaps", []), columns=columns)


def gap_sentence(gap: pd.Series | dict) -> str:
    """One gap written out, e.g. 'ethnicity accuracy by ethnicity: worst Others 71.2%, best White 86.0%, gap 14.8 points'."""
    metric = gap["metric"]
    unit = "years" if metric in YEARS else "points"
    size = gap["difference"] if metric in YEARS else gap["difference"] * 100
    small = f"; left out as too small: {', '.join(group_name(g) for g in gap['small_groups'])}" if len(
        gap["small_groups"]) else ""
    return (f"{METRIC_NAMES.get(metric, metric)} by {FEATURE_NAMES.get(gap['feature'], gap['feature'])}: "
            f"worst {group_name(gap['worst_group'])} {fmt(metric, gap['worst'])}, best {group_name(gap['best_group'])} "
            f"{fmt(metric, gap['best'])}, gap {size:.1f} {unit}, min/max ratio {gap['ratio']:.2f}{small}")


def headline_table(summary: dict) -> pd.DataFrame:
    """Every metric on all faces with its 95% CI."""
    table = group_table(summary)
    table = table[table["feature"] == "all"]
    return pd.DataFrame({
        "metric": [METRIC_NAMES.get(m, m) for m in table["metric"]],
        "value": [fmt(m, v) for m, v in zip(table["metric"], table["value"])],
        "95% CI": [f"{fmt(m, lo)} – {fmt(m, hi)}" for m, lo, hi in zip(table["metric"], table["ci_low"], table["ci_high"])],
        "faces": table["n"].to_numpy(),
    })


def per_class_table(summary: dict, head: str) -> pd.DataFrame:
    """Precision, recall, F1 and support per class of one head (age: per age group)."""
    rows = summary.get(head, {}).get("per_class", [])
    table = pd.DataFrame(rows, columns=["label", "precision", "recall", "f1", "support"])
    table["label"] = [labels.display(str(v)) for v in table["label"]]
    return table


def by_group_table(summary: dict, metric: str, feature: str) -> pd.DataFrame:
    """One metric by one feature's groups, formatted: group, value, 95% CI, faces, note."""
    table = group_table(summary)
    table = table[(table["metric"] == metric) & (table["feature"] == feature)]
    minimum = summary.get("group_settings", {}).get("min_size", 0)
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


def evaluation_facts(summary: dict) -> list[str]:
    """Which model, which data, how many faces, how they were cropped: the lines every report starts with."""
    dataset, detector, model = summary["dataset"], summary["detector"], summary["model"]
    limit = f", a seeded sample of {dataset['limit']}" if dataset.get("limit") else ""
    engine = f", run as {ENGINE_NAMES[summary['engine']]}" if summary.get("engine") in ENGINE_NAMES else ""
    facts = [
        f"model `{model['path']}` (sha256 {model['sha256'][:12]}){engine}",
        f"data: {dataset['name']} `{Path(dataset['source']).name}`, split `{dataset['split']}`{limit}: "
        f"{detector['images']:,} images",
    ]
    if summary["crop"] == "detect":
        facts.append(f"crop: re-detected by MTCNN, largest face; a face was found in {detector['faces_found']:,} images "
                     f"(hit rate {detector['hit_rate']:.1%}); {summary['detector']['note']}")
    else:
        facts.append("crop: the archive image itself resized to the model's input (no detection)")
    facts.append(f"faces evaluated: {detector['evaluated']:,}")
    if summary.get("created"):
        facts.append(f"created {summary['created']}")
    return facts


def report_markdown(summary: dict) -> str:
    """The evaluation report as Markdown: the facts, headline numbers, per-class tables, gaps and groups."""
    settings = summary.get("group_settings", {})
    lines = ["# facekit evaluation report", ""] + [f"- {fact}" for fact in evaluation_facts(summary)]
    if summary.get("command"):
        lines.append(f"- regenerate with `{summary['command']}`")
    lines += [f"- note: {note}" for note in summary.get("notes", [])]
    lines += ["", "Figures: `report.html` beside this file.", "", "## Headline (all faces, 95% bootstrap CI)", "",
              _markdown(headline_table(summary)), "", ECE_NOTE]
    for head in ("gender", "race", "age"):
        if head in summary:
            lines += ["", f"## Per class: {HEAD_NAMES[head]}", "", _markdown(_percent_table(per_class_table(summary, head)))]
    if "age" in summary:
        decades = pd.DataFrame(summary["age"]["mae_by_decade"], columns=["decade", "mae", "n"])
        decades["mae"] = decades["mae"].map(lambda v: fmt("age.mae", v))
        lines += ["", "## Age error by true age (MAE in years)", "", _markdown(decades)]
    gaps = gap_table(summary)
    if len(gaps):
        lines += ["", f"## Largest gaps between groups (groups of at least {settings.get('min_size')} faces)", ""]
        key = gaps[gaps["metric"].isin(KEY_METRICS)]
        lines += [f"- {gap_sentence(row)}" for _, row in key.iterrows()]
    lines += ["", f"## By group ({settings.get('n_boot')} bootstrap resamples, seed {settings.get('seed')}; "
              f"groups under {settings.get('min_size')} faces are flagged, not hidden)"]
    for metric in KEY_METRICS:
        for feature in settings.get("features", []):
            table = by_group_table(summary, metric, feature)
            if len(table):
                lines += ["", f"### {METRIC_NAMES[metric]} by {FEATURE_NAMES[feature]}", "", _markdown(table)]
    lines += ["", "All metrics by every group are in `evaluation.json` (`groups`, `gaps`); per-face predictions "
              "are in `predictions.csv`."]
    return "\n".join(lines) + "\n"


def report_figures(summary: dict) -> list:
    """The report's Plotly figures, in reading order."""
    from facekit import viz

    figures = []
    for head in ("gender", "race", "age"):
        if head in summary:
            figures.append(viz.confusion_heatmap(summary[head]["confusion_matrix"], normalize=True,
                                                 title=f"Confusion matrix: {HEAD_NAMES[head]} (row-normalized)"))
    for metric in KEY_METRICS:
        for feature in summary.get("group_settings", {}).get("features", []):
            rows = metric_rows(summary, metric, feature)
            if len(rows) > 1:
                figures.append(viz.group_bars({"": rows}, metric in YEARS,
                                              f"{METRIC_NAMES[metric]} by {FEATURE_NAMES[feature]}"))
    if "age" in summary:
        figures.append(viz.decade_errors({"": summary["age"]["mae_by_decade"]}, "Age MAE by true age"))
    for head, data in summary.get("calibration", {}).items():
        figures.append(viz.reliability_diagram({"": data}, f"Reliability: {HEAD_NAMES.get(head, head)}"
                                               f" (ECE {data['ece']:.3f})"))
    return figures


def write_report(summary: dict, folder: os.PathLike | str) -> list[Path]:
    """report.md, report.html (Plotly figures; plotly.js from its CDN to stay small) and the model card."""
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
    card.write_text(model_card(summary))
    return [markdown, html, card]


# ---- the model card (Mitchell et al., "Model Cards for Model Reporting", FAT* 2019)

UTKFACE_LICENCE = ("UTKFace is available for non-commercial research purposes only; the copyright of the images "
                   "belongs to their original owners. This model is trained on it and inherits that restriction.")


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else "n/a"


def _model_details(summary: dict, metadata: dict) -> list[str]:
    model = summary["model"]
    config = metadata.get("config", {})
    training = metadata.get("training", {})
    recipe = training.get("config", {})
    tuned = (f"fine-tuned from block `{config['trainable_from']}` on" if config.get("trainable_from")
             else "frozen;")
    lines = [
        f"- **Name**: `{model['name']}`, weights sha256 `{model['sha256'][:16]}`, file `{model['path']}`.",
        f"- **Architecture**: InceptionResnetV1 face-recognition backbone (`{config.get('backbone', 'n/a')}`), "
        f"{tuned} a shared hidden layer ({config.get('hidden', 'n/a')} units) and three "
        "heads: gender (2 classes), ethnicity (UTKFace's 5), and age as a probability distribution over 0–100 "
        "years, read as an expected age and an 80% interval.",
        f"- **Input**: one face, detected by MTCNN and aligned to a {config.get('crop', {}).get('size', 160)} px crop "
        "on five landmarks.",
        "- **Calibration**: one temperature per head, fitted on the validation split: "
        + ", ".join(f"{h} {t:.2f}" for h, t in metadata.get("temperature", {}).items()) + ".",
    ]
    if recipe:
        lines.append(f"- **Training**: {recipe.get('epochs', 'n/a')} epochs at most, optimizer "
                     f"{recipe.get('optimizer', 'n/a')}, lr {recipe.get('lr', 'n/a')}, best epoch "
                     f"{training.get('best_epoch', 'n/a')}, seed {recipe.get('seed', 'n/a')}.")
    lines += [f"- **Licence**: {metadata.get('licence') or UTKFACE_LICENCE}",
              "- **Produced by**: the facekit project (`facekit train`; recipes in `training/`)."]
    return lines


def model_card(summary: dict, metadata: Optional[dict] = None) -> str:
    """The model card as Markdown; ``metadata`` (a checkpoint sidecar) defaults to the one the evaluation recorded."""
    metadata = metadata if metadata is not None else summary["model"].get("metadata", {})
    data = metadata.get("data", {})
    validation = metadata.get("metrics", {}).get("validation", {})
    gaps = gap_table(summary)
    settings = summary.get("group_settings", {})
    lines = [f"# Model card: {summary['model']['name']}", "",
             "Sections after Mitchell et al., *Model Cards for Model Reporting* (FAT* 2019). Generated by "
             "`facekit card` from the checkpoint's metadata and an evaluation report.", "",
             "## Model details", "", *_model_details(summary, metadata), "",
             "## Intended use", "",
             "- **Primary uses**: research and teaching about automatic age, gender and ethnicity estimation: what "
             "such models get right, where they fail, and how biased data and models are.",
             "- **Primary users**: researchers, students, and engineers auditing similar systems.",
             "- **Out of scope**: any decision about a person (hiring, lending, policing, access, age verification, "
             "medical or legal use); identification or surveillance; inferring how a person identifies (the labels are "
             "perceived appearance, not identity); any commercial use (UTKFace licence); photos unlike UTKFace's "
             "(heavy make-up, masks, profile views, very low resolution) without evaluating on them first.", "",
             "## Factors", "",
             "- **Groups**: gender as UTKFace labels it (male, female: binary, annotated, not self-reported); "
             "ethnicity in UTKFace's five coarse categories (White, Black, Asian, Indian, Others — 'Others' lumps "
             "Hispanic, Latino and Middle Eastern together); age in FairFace's nine age groups; and ethnicity × gender.",
             "- **Instrumentation**: the face detector (faces it misses are not classified), image resolution, pose, "
             "lighting, and the web photos UTKFace was collected from.", "",
             "## Metrics", "",
             "- Gender and ethnicity: accuracy, balanced accuracy (each class weighed equally), per-class precision, "
             "recall and F1, confusion matrices, and expected calibration error (ECE, 15 bins) with reliability "
             "diagrams.",
             "- Age: mean absolute error (MAE) and RMSE in years, CS@5 (share within 5 years), age-group accuracy "
             "(exact and one group off), MAE by decade, and the coverage of the 80% interval (should be close to 80%).",
             f"- Uncertainty: 95% bootstrap confidence intervals ({settings.get('n_boot', 'n/a')} resamples, seeded) "
             f"for every metric and group; gaps (max − min) and min/max ratios between groups of at least "
             f"{settings.get('min_size', 'n/a')} faces; smaller groups are listed and flagged. {ECE_NOTE}", "",
             "## Evaluation data", "", *[f"- {fact}" for fact in evaluation_facts(summary)],
             "- The test split is drawn from the same archive as the training data (stratified by gender × "
             "ethnicity × age group, 10%), so these numbers are an upper bound for photos from elsewhere.", "",
             "## Training data", "",
             f"- {data.get('dataset', 'UTKFace')} (`{data.get('archive', 'n/a')}`, sha256 "
             f"`{str(data.get('sha256', 'n/a'))[:16]}`): {_count(data.get('faces'))} faces, of which "
             f"{_count(data.get('train'))} train and {_count(data.get('val'))} validation; MTCNN found a face in "
             f"{_count(data.get('detector_found'))} (the archive chip is used for the rest).",
             "- UTKFace is imbalanced: about 42% of faces are White and 7% 'Others', and there are few old faces of "
             "most ethnicities; see the Dataset Explorer page.",
             f"- {UTKFACE_LICENCE}", ""]
    if validation:
        lines += ["Validation (during training): " + ", ".join(
            f"{head} {name} {value:.3f}" for head, values in validation.items() if isinstance(values, dict)
            for name, value in values.items() if isinstance(value, (int, float)) and name != "interval") + ".", ""]
    lines += ["## Quantitative analyses", "", _markdown(headline_table(summary)), ""]
    for metric in KEY_METRICS:
        for feature in ("race", "gender", "age_bin"):
            table = by_group_table(summary, metric, feature)
            if len(table):
                lines += [f"**{METRIC_NAMES[metric]} by {FEATURE_NAMES[feature]}**", "", _markdown(table), ""]
    if len(gaps):
        lines += ["Largest gaps:", ""] + [f"- {gap_sentence(row)}" for _, row in
                                          gaps[gaps["metric"].isin(KEY_METRICS)].iterrows()] + [""]
    lines += ["The full breakdown (every metric by gender, ethnicity, age group and ethnicity × gender) is in the "
              "evaluation report.", "",
              "## Ethical considerations", "",
              "- Gender and ethnicity are sensitive attributes. Estimating them from a face can misgender people, "
              "reinforce stereotypes, and enable discrimination or surveillance; the categories are coarse, externally "
              "assigned, and do not describe how people identify.",
              "- The people in UTKFace did not consent to this use; the images were collected from the web.",
              "- Errors are not evenly spread: the per-group analyses above show which groups the model serves worse.",
              "- Photos given to the app are processed in memory and not stored.", "",
              "## Caveats and recommendations", "",
              "- Evaluated on UTKFace only: the same source as the training data. Expect lower accuracy and larger "
              "gaps on other photos; evaluate on your own labelled data with `facekit evaluate --data PATH` before "
              "relying on any number here.",
              "- UTKFace's labels are noisy (age especially) and its 'Others' class is heterogeneous, so its accuracy "
              "is hard to interpret.",
              "- Treat every output as a probability, and the age as its interval, not its point estimate.",
              "- Groups with few faces have wide intervals: a gap involving them may be noise.",
              "- Do not use the model to make decisions about individuals.", ""]
    return "\n".join(lines)
