"""Plotly figures shared by the app pages and the reports: plain functions of tables, no state.

Labels are shown through ``labels.display`` and categories keep the schema's order, so a
figure reads the same on every page and two datasets line up on the same axes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import cv2
import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont

from facekit import labels
from facekit.data.stats import COLUMN_NAMES, crossing
from facekit.data.table import CATEGORIES
from facekit.rows import Answer

if TYPE_CHECKING:  # predict pulls in torch; figures of tables should not need it
    from facekit.evaluation.metrics import Calibration, ConfusionMatrix, DecadeError
    from facekit.predict import FacePrediction

GENDER_COLORS = {"Male": "#1f6feb", "Female": "#d6336c"}
DATASET_COLORS = px.colors.qualitative.Safe


def _names(values) -> list[str]:
    return [labels.display(str(value)) for value in values]


def _tidy(figure: go.Figure, title: str, height: int = 360) -> go.Figure:
    figure.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=50, b=10), legend_title_text="")
    return figure


def count_bars(counts: pd.Series, title: str) -> go.Figure:
    """Faces per label (the output of ``stats.label_counts``), with each bar's share in its hover."""
    total = counts.sum() or 1
    figure = go.Figure(
        go.Bar(
            x=_names(counts.index),
            y=counts.to_numpy(),
            customdata=counts.to_numpy() / total,
            hovertemplate="%{x}: %{y:,} faces (%{customdata:.1%})<extra></extra>",
            marker_color="#1f6feb",
        )
    )
    figure.update_yaxes(title_text="faces")
    return _tidy(figure, title)


def age_histogram(frame: pd.DataFrame, title: str = "Age in years") -> go.Figure:
    """One bar per year of age, so spikes (babies, round ages) stay visible."""
    figure = px.histogram(frame.dropna(subset=["age"]), x="age", nbins=int(frame["age"].max() or 1) + 1)
    figure.update_traces(marker_color="#1f6feb", hovertemplate="age %{x}: %{y:,} faces<extra></extra>")
    figure.update_xaxes(title_text="age (years)")
    figure.update_yaxes(title_text="faces")
    return _tidy(figure, title)


def crossing_heatmap(frame: pd.DataFrame, rows: str, columns: str, title: str) -> go.Figure:
    """Faces per pair of labels as an annotated heatmap: empty and thin cells stand out."""
    table = crossing(frame, rows, columns)
    return _heatmap(table, ",d", COLUMN_NAMES.get(columns, columns), COLUMN_NAMES.get(rows, rows), "faces", title)


def _heatmap(table: pd.DataFrame, text: str, x: str, y: str, color: str, title: str) -> go.Figure:
    """A labelled table as an annotated blue heatmap (counts or shares, per ``text`` format)."""
    figure = px.imshow(
        table.to_numpy(),
        x=_names(table.columns),
        y=_names(table.index),
        text_auto=text,
        color_continuous_scale="Blues",
        aspect="auto",
        labels=dict(x=x, y=y, color=color),
    )
    return _tidy(figure, title)


def age_by_group(frame: pd.DataFrame, column: str = "race", title: str = "Age by ethnicity") -> go.Figure:
    """Age distribution within each group: box plots of years, or age-group shares when there are no years."""
    name = COLUMN_NAMES.get(column, column)
    known = frame.dropna(subset=[column])
    if known["age"].notna().any():
        data = known.dropna(subset=["age"]).assign(group=lambda f: _names(f[column]))
        order = [g for g in _names(CATEGORIES[column]) if g in set(data["group"])]
        figure = px.box(data, x="group", y="age", category_orders={"group": order}, points=False)
        figure.update_traces(marker_color="#1f6feb")
        figure.update_xaxes(title_text=name)
        figure.update_yaxes(title_text="age (years)")
        return _tidy(figure, title)
    shares = crossing(known, "age_bin", column)
    shares = shares / shares.sum().where(shares.sum() > 0, 1)
    return _heatmap(shares, ".0%", name, "age group", "share", f"{title} (share of each group per age group)")


def _nice_step(raw: float) -> int:
    """The smallest of 1, 2, 5 x 10^k at least ``raw``: whole-number axis ticks for counts."""
    magnitude = 10 ** int(np.floor(np.log10(max(raw, 1))))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def age_pyramid(frame: pd.DataFrame, title: str = "Age group by gender") -> go.Figure:
    """Population pyramid: men to the left, women to the right, one row per age group."""
    table = crossing(frame, "age_bin", "gender")
    figure = go.Figure()
    for gender, sign in (("male", -1), ("female", 1)):
        shown = labels.display(gender)
        figure.add_trace(
            go.Bar(
                y=list(table.index),
                x=sign * table[gender].to_numpy(),
                customdata=table[gender].to_numpy(),
                name=shown,
                orientation="h",
                marker_color=GENDER_COLORS[shown],
                hovertemplate=f"{shown}, %{{y}}: %{{customdata:,}} faces<extra></extra>",
            )
        )
    limit = int(table.to_numpy().max() or 1)
    step = _nice_step(limit / 3)
    ticks = np.arange(-(limit // step) * step, limit + 1, step)
    figure.update_layout(barmode="relative", bargap=0.1)
    figure.update_xaxes(title_text="faces", range=[-limit * 1.05, limit * 1.05], tickvals=ticks,
                        ticktext=[f"{abs(int(t)):,}" for t in ticks])  # counts on both sides are positive
    figure.update_yaxes(title_text="age group")
    return _tidy(figure, title)


def compare_bars(long: pd.DataFrame, title: str) -> go.Figure:
    """Each dataset's share per label side by side (``stats.compare``): shares, so sizes do not matter."""
    data = long.assign(shown=_names(long["label"]))
    figure = px.bar(
        data,
        x="shown",
        y="share",
        color="dataset",
        barmode="group",
        custom_data=["count"],
        color_discrete_sequence=DATASET_COLORS,
        category_orders={"shown": list(dict.fromkeys(data["shown"]))},
    )
    figure.update_traces(hovertemplate="%{x}: %{y:.1%} (%{customdata[0]:,} faces)<extra></extra>")
    figure.update_yaxes(title_text="share of faces", tickformat=".0%")
    figure.update_xaxes(title_text="")
    return _tidy(figure, title)


# ---- single photos: boxes, heat maps and one face's probabilities (Predict page, `facekit explain`)

HEAT_ALPHA = 0.5


def face_label(number: int, face: Answer) -> str:
    """'3: Female 97%, White 88%, 34 y (27-41)': the face's number, each head's answer, the 80% age interval.

    Age is never drawn as a bare number: its interval says how sure the model is.
    """
    return (f"{number}: {labels.display(face.gender)} {face.gender_probs[face.gender]:.0%}, "
            f"{labels.display(face.race)} {face.race_probs[face.race]:.0%}, "
            f"{face.age:.0f} y ({face.age_low:.0f}-{face.age_high:.0f})")


Rect = tuple[float, float, float, float]  # left, top, right, bottom


@dataclass(frozen=True)
class LabelPlacement:
    """Where one face's tag goes: its number always, the full label only where it fits."""

    number: int
    text: str  # the full label, or just the number where the full one would overlap or leave the photo
    rect: Rect  # the tag's background, inside the photo


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _candidates(box: Rect, width: float, height: float, size: tuple[int, int]) -> list[Rect]:
    """Above the box, below it, then inside its top: each slid sideways to stay inside the photo."""
    x1, y1, x2, y2 = box
    left = min(max(x1, 0.0), max(size[0] - width, 0.0))
    spots = [(left, y1 - height), (left, y2), (left, y1)]
    return [(x, y, x + width, y + height) for x, y in spots]


def label_layout(size: tuple[int, int], boxes: Sequence[Rect], texts: Sequence[str],
                 measure: Callable[[str], tuple[float, float]]) -> list[LabelPlacement]:
    """Tags that never overlap each other and never leave the photo, faces in the given order.

    Each face gets its full label at the first spot (above, below, inside the box's top) that
    is inside the photo, clear of the tags placed so far and of the other faces; failing that
    its number alone, at the first spot clear of the tags; failing that the number inside the
    box's top-left corner, cut to the photo. ``measure`` gives a text's (width, height) in pixels.
    """
    placed: list[LabelPlacement] = []

    def clear(rect: Rect, own: int, of_faces: bool) -> bool:
        if rect[0] < 0 or rect[1] < 0 or rect[2] > size[0] or rect[3] > size[1]:
            return False
        if any(_overlaps(rect, p.rect) for p in placed):
            return False
        return not of_faces or not any(_overlaps(rect, b) for i, b in enumerate(boxes) if i != own)

    for number, (box, text) in enumerate(zip(boxes, texts), start=1):
        chosen = None
        for shown in (text, str(number)):
            for rect in _candidates(box, *measure(shown), size):
                if clear(rect, number - 1, of_faces=shown == text):
                    chosen = LabelPlacement(number, shown, rect)
                    break
            if chosen:
                break
        if chosen is None:  # a crowd too dense for any clear spot: the number inside its own box
            width, height = measure(str(number))
            x1, y1 = max(box[0], 0.0), max(box[1], 0.0)
            chosen = LabelPlacement(number, str(number), (x1, y1, min(x1 + width, size[0]), min(y1 + height, size[1])))
        placed.append(chosen)
    return placed


def _tag_style(image: Image.Image) -> tuple[ImageFont.ImageFont, int]:
    scale = max(image.size) / 800
    return ImageFont.load_default(size=max(12, round(16 * scale))), max(2, round(3 * scale))


def face_tags(image: Image.Image, faces: Sequence[FacePrediction]) -> list[LabelPlacement]:
    """The tag layout ``annotate_faces`` draws, for a page that lists faces by the same numbers."""
    font, width = _tag_style(image)
    draw = ImageDraw.Draw(image)

    def measure(text: str) -> tuple[float, float]:
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        return right - left + 2 * width, bottom - top + 2 * width

    return label_layout(image.size, [face.box for face in faces],
                        [face_label(i + 1, face) for i, face in enumerate(faces)], measure)


def annotate_faces(image: Image.Image, faces: Sequence[FacePrediction], highlight: int | None = None) -> Image.Image:
    """A copy of the photo with each face (``FacePrediction``) boxed, numbered and, where it fits,
    labelled (``label_layout``): no tag covers another or is cut at the photo's edge.

    ``highlight`` (an index into ``faces``) draws that face's box three times as thick; the tags stay where they are.
    """
    annotated = image.convert("RGB").copy()
    draw = ImageDraw.Draw(annotated)
    font, width = _tag_style(annotated)
    for index, face in enumerate(faces):
        color = GENDER_COLORS[labels.display(face.gender)]
        draw.rectangle(face.box, outline=color, width=3 * width if index == highlight else width)
    for face, tag in zip(faces, face_tags(annotated, faces)):
        color = GENDER_COLORS[labels.display(face.gender)]
        draw.rectangle(tag.rect, fill=color)
        left, top, _, _ = draw.textbbox((0, 0), tag.text, font=font)
        draw.text((tag.rect[0] + width - left, tag.rect[1] + width - top), tag.text, fill="white", font=font)
    return annotated


def heat_overlay(image: Image.Image, heat: np.ndarray, coverage: np.ndarray, alpha: float = HEAT_ALPHA) -> Image.Image:
    """The photo with a Grad-CAM heat map (0..1) blended in where ``coverage`` > 0, at the heat map's size
    (``Explanation.photo_heat`` gives it at most ``explain.OVERLAY_SIDE`` pixels long).

    Outside the explained crops the photo is left as it is: no heat there means "not
    looked at", not "cold".
    """
    size = (heat.shape[1], heat.shape[0])
    if image.size != size:
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    colors = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_JET)[..., ::-1]
    weight = (alpha * np.clip(coverage, 0, 1))[..., None]
    pixels = np.asarray(image.convert("RGB"), np.float32)
    return Image.fromarray(np.uint8(pixels * (1 - weight) + colors * weight + 0.5))


def probability_bars(probs: Mapping[str, float], title: str) -> go.Figure:
    """One head's class probabilities as horizontal bars, in schema order."""
    names = _names(probs)
    figure = go.Figure(go.Bar(x=list(probs.values()), y=names, orientation="h", marker_color="#1f6feb",
                              text=[f"{p:.0%}" for p in probs.values()], textposition="auto",
                              hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    figure.update_xaxes(range=[0, 1], tickformat=".0%", title_text="probability")
    figure.update_yaxes(autorange="reversed")
    return _tidy(figure, title, height=240)


def age_distribution(face: FacePrediction, title: str = "Age") -> go.Figure:
    """P(age) per year with the 80% interval shaded (unlabelled: pages state it in words) and the expected age marked."""
    years = np.arange(len(face.age_probs))
    figure = go.Figure(go.Scatter(x=years, y=face.age_probs, mode="lines", fill="tozeroy", line_color="#1f6feb",
                                  hovertemplate="%{x} years: %{y:.1%}<extra></extra>"))
    figure.add_vrect(x0=face.age_low, x1=face.age_high, fillcolor="#1f6feb", opacity=0.12, line_width=0)
    figure.add_vline(x=face.age, line_dash="dash", line_color="#d6336c",
                     annotation_text=f"expected {face.age:.0f}", annotation_position="top right")
    figure.update_xaxes(title_text="age (years)", range=[0, min(len(years) - 1, face.age_high + 25)])
    figure.update_yaxes(title_text="probability", tickformat=".0%")
    return _tidy(figure, title, height=240)


def share_intervals(table: pd.DataFrame, title: str) -> go.Figure:
    """Shares per label with their confidence intervals (``segments.Breakdown`` tables) as error bars."""
    figure = go.Figure(go.Bar(
        x=_names(table.index), y=table["share"], marker_color="#1f6feb", customdata=table[["count", "low", "high"]],
        error_y=dict(type="data", symmetric=False, array=table["high"] - table["share"],
                     arrayminus=table["share"] - table["low"]),
        hovertemplate="%{x}: %{y:.1%} (%{customdata[0]:,} faces), interval %{customdata[1]:.1%} to "
                      "%{customdata[2]:.1%}<extra></extra>",
    ))
    figure.update_yaxes(title_text="share of faces", tickformat=".0%", rangemode="tozero")
    return _tidy(figure, title)


# ---- model evaluation (Model Evaluation page, `facekit evaluate` reports): figures of the evaluation JSON

EVALUATION_COLORS = px.colors.qualitative.Safe


def confusion_heatmap(matrix: ConfusionMatrix, normalize: bool = True, title: str = "Confusion matrix") -> go.Figure:
    """True classes down, predicted across."""
    counts = np.asarray(matrix.counts)
    values = np.asarray(matrix.normalized) if normalize else counts
    names = _names(matrix.labels)
    figure = go.Figure(go.Heatmap(
        z=values, x=names, y=names, colorscale="Blues", customdata=counts,
        text=[[f"{v:.0%}" if normalize else f"{v:,}" for v in row] for row in values], texttemplate="%{text}",
        hovertemplate="true %{y}, predicted %{x}: %{customdata:,} faces<extra></extra>",
        colorbar=dict(title="share of row" if normalize else "faces", tickformat=".0%" if normalize else ",d"),
    ))
    figure.update_yaxes(title_text="true", autorange="reversed")
    figure.update_xaxes(title_text="predicted")
    return _tidy(figure, title, height=300 + 25 * len(names))


def group_bars(reports: Mapping[str, pd.DataFrame], years: bool, title: str) -> go.Figure:
    """One metric by group with 95% CI error bars, one colour per report (a single report: one colour).

    Each frame holds the JSON's ``groups`` rows of one metric and feature, "all" included: it
    becomes the dashed reference line. Groups below the minimum size are drawn pale and marked "(small)".
    """
    figure = go.Figure()
    for index, (name, rows) in enumerate(reports.items()):
        color = EVALUATION_COLORS[index % len(EVALUATION_COLORS)]
        groups = rows[rows["group"] != "all"]
        shown = [labels.display(g.split("/")[0]) + (" " + g.split("/")[1] if "/" in g else "")
                 + (" (small)" if small else "") for g, small in zip(groups["group"], groups["small"])]
        figure.add_trace(go.Bar(
            x=shown, y=groups["value"], name=name or None, showlegend=bool(name), marker_color=color,
            marker_opacity=[0.4 if small else 1.0 for small in groups["small"]],
            customdata=groups[["n", "ci_low", "ci_high"]],
            error_y=dict(type="data", symmetric=False, array=groups["ci_high"] - groups["value"],
                         arrayminus=groups["value"] - groups["ci_low"]),
            hovertemplate="%{x}: %{y:" + (".2f" if years else ".1%") + "} (95% CI %{customdata[1]:"
                          + (".2f" if years else ".1%") + "} to %{customdata[2]:" + (".2f" if years else ".1%")
                          + "}), %{customdata[0]:,} faces<extra>" + (name or "") + "</extra>",
        ))
        overall = rows[rows["group"] == "all"]
        if len(overall):
            figure.add_hline(y=float(overall["value"].iloc[0]), line_dash="dash", line_color=color,
                             annotation_text=f"all faces{' (' + name + ')' if name else ''}",
                             annotation_position="top left")
    figure.update_layout(barmode="group")
    figure.update_yaxes(title_text="years" if years else "", tickformat="" if years else ".0%", rangemode="tozero")
    return _tidy(figure, title)


def training_curves(curves: pd.DataFrame, columns: Sequence[str], title: str, shares: bool = False) -> go.Figure:
    """One line per column of a run's curves (``training.history.read_curves``) against the epoch;
    ``shares`` draws the y axis as percentages."""
    figure = go.Figure([go.Scatter(x=curves["epoch"], y=curves[column], mode="lines+markers",
                                   name=column.removeprefix("val_").removeprefix("train_").replace("_", " "))
                        for column in columns])
    figure.update_xaxes(title_text="epoch", dtick=1 if len(curves) <= 20 else None)
    if shares:
        figure.update_yaxes(tickformat=".0%")
    return _tidy(figure, title)


def decade_errors(reports: Mapping[str, Sequence[DecadeError]], title: str = "Age MAE by true age") -> go.Figure:
    """Age MAE per decade of true age (``AgeMetrics.mae_by_decade``), one colour per report."""
    figure = go.Figure()
    for index, (name, rows) in enumerate(reports.items()):
        table = pd.DataFrame(list(rows), columns=["decade", "mae", "n"])
        figure.add_trace(go.Bar(x=table["decade"], y=table["mae"], name=name or None, showlegend=bool(name),
                                marker_color=EVALUATION_COLORS[index % len(EVALUATION_COLORS)], customdata=table["n"],
                                hovertemplate="age %{x}: MAE %{y:.1f} years, %{customdata:,} faces<extra></extra>"))
    figure.update_layout(barmode="group")
    figure.update_xaxes(title_text="true age")
    figure.update_yaxes(title_text="MAE (years)", rangemode="tozero")
    return _tidy(figure, title)


def reliability_diagram(reports: Mapping[str, Calibration], title: str = "Reliability") -> go.Figure:
    """Accuracy against confidence per bin of one head's ``Calibration``; the diagonal is perfect calibration.

    Marker size follows the bin's number of faces, so a far-off bin with three faces is seen to be one.
    """
    figure = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"),
                                  name="perfectly calibrated", hoverinfo="skip"))
    for index, (name, data) in enumerate(reports.items()):
        bins = pd.DataFrame(list(data.bins), columns=["low", "high", "count", "confidence", "accuracy"])
        size = 6 + 24 * np.sqrt(bins["count"] / max(bins["count"].max(), 1))
        figure.add_trace(go.Scatter(
            x=bins["confidence"], y=bins["accuracy"], mode="lines+markers", name=name or "model",
            marker=dict(size=size, color=EVALUATION_COLORS[index % len(EVALUATION_COLORS)]),
            customdata=bins[["count", "low", "high"]],
            hovertemplate="confidence %{customdata[1]:.2f}–%{customdata[2]:.2f}: mean %{x:.2f}, accuracy %{y:.1%}, "
                          "%{customdata[0]:,} faces<extra></extra>"))
    figure.update_xaxes(title_text="confidence (top-class probability)", range=[0, 1.02])
    figure.update_yaxes(title_text="accuracy", range=[0, 1.02], tickformat=".0%")
    _tidy(figure, title, height=420)
    figure.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0))
    return figure


# ---- video (Video page, `facekit predict clip.mp4 --annotated`): followed faces

def annotate_tracks(image: Image.Image, faces: Sequence[FacePrediction], tracks: Sequence[int]) -> Image.Image:
    """``annotate_faces`` plus each face's track id inside the bottom of its box, as the track table names it."""
    annotated = annotate_faces(image, faces)
    draw = ImageDraw.Draw(annotated)
    font = ImageFont.load_default(size=max(12, round(16 * max(annotated.size) / 800)))
    pad = 3
    for face, track in zip(faces, tracks):
        x1, _, _, y2 = face.box
        text = f"track {track}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        draw.rectangle((x1, y2 - (bottom - top) - 2 * pad, x1 + right - left + 2 * pad, y2),
                       fill=GENDER_COLORS[labels.display(face.gender)])
        draw.text((x1 + pad - left, y2 - (bottom - top) - pad - top), text, fill="white", font=font)
    return annotated


def track_timeline(tracks: pd.DataFrame, sightings: pd.DataFrame, title: str = "When each face is seen") -> go.Figure:
    """One row per followed face (``video.track_rows``), a marker at each analysed frame it is in
    (``sightings``: track, time), coloured by predicted gender; the hover gives its pooled answer."""
    figure = go.Figure()
    for row in tracks.to_dict("records"):
        gender = labels.display(row["gender"])
        times = sightings.loc[sightings["track"] == row["track"], "time"]
        p_gender = row["p_female"] if row["gender"] == "female" else 1 - row["p_female"]
        answer = (f"{gender} {p_gender:.0%}, "
                  f"{labels.display(row['race'])} {row['p_' + row['race']]:.0%}, "
                  f"age {row['age']:.0f} ({row['age_low']:.0f}–{row['age_high']:.0f})")
        figure.add_trace(go.Scatter(
            x=times, y=[f"track {row['track']}"] * len(times), mode="lines+markers", name=gender, legendgroup=gender,
            showlegend=gender not in {trace.name for trace in figure.data}, line_color=GENDER_COLORS[gender],
            hovertemplate=f"track {row['track']} at %{{x:.1f}} s: {answer}<extra></extra>"))
    figure.update_xaxes(title_text="time in the video (s)", rangemode="tozero")
    figure.update_yaxes(type="category", autorange="reversed")
    return _tidy(figure, title, height=200 + 30 * len(tracks))
