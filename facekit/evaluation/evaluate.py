"""Evaluate a checkpoint on any labelled dataset the readers support, and keep the evidence.

``evaluate`` runs the ``Predictor`` over the chosen faces and returns an ``Evaluation``: one
row per image (``predictions``, saved as CSV so the app can show the worst mistakes without
recomputing) and an ``EvaluationSummary`` computed from those rows alone by ``summarize``, so
anyone can check the headline numbers against the CSV.

One face per image: the largest one the detector finds, cropped exactly as at inference.
Images where no face is found are counted (the detector hit rate) and left out of the head
metrics. ``crop="archive"`` skips detection and feeds the whole image as the face (a UTKFace
chip is already a face crop) to measure what re-detection costs or gains.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from facekit import labels
from facekit.evaluation import metrics
from facekit.rows import csv_text, json_text, read_csv, write_text
from facekit.evaluation.summary import (AgeGroupAge, AgeGroupOrder, DatasetInfo, DetectorCounts, EvaluationSummary,
                                        GroupSettings, ModelInfo, Timings, weights_sha256)

if TYPE_CHECKING:
    from facekit.vision.detect import DetectorSettings

CROPS = ("detect", "archive")
SPLIT_ALL = "all"
SUMMARY_FILE = "evaluation.json"
PREDICTIONS_FILE = "predictions.csv"
HEADS = ("gender", "race", "age")
CLASSES = {"gender": labels.GENDERS, "race": labels.RACES, "age_bin": labels.AGE_BIN_LABELS}
# Face height in the original photo, for the attributes of small faces.
# Extra label columns a dataset may have, kept beside the predictions.
EXTRA_TRUE = ("race7", "age_group", "skin", "face_px")
# Predicted ages that read as "Senior": the wider-dev check of the age order.
SENIOR_AGE = 50
MAX_FACES = 10  # faces classified per cut when the labelled one must be found among them
NO_FACE_NOTE = "images where the detector found no face are excluded from the head metrics"


@dataclass(frozen=True)
class Evaluation:
    """An evaluation's rows (one per image) and its summary (the JSON)."""

    summary: EvaluationSummary
    predictions: pd.DataFrame


def select_faces(data: Optional[os.PathLike | str], split: str = "test", limit: Optional[int] = None,
                 seed: int = 0) -> tuple[DatasetInfo, pd.DataFrame]:
    """Dataset info and the rows to evaluate: one split (or ``all``), with images, ``limit`` sampled.

    The default dataset is the UTKFace archive ``locate_utkface`` finds; the shipped datasets
    (UTKFace, FairFace val, wider-dev) get their committed splits, whose ``test`` part of
    wider-dev is its own ``val`` photos. ``limit`` draws a seeded random sample, not the first rows: UTKFace's
    files sort by age, so the first 40 would all be babies.
    """
    from facekit.data import DatasetError, locate_utkface, read_dataset
    from facekit.data.splits import with_committed_split

    path = Path(data) if data else locate_utkface()
    if path is None:
        raise DatasetError("no dataset given and no UTKFace archive found: pass --data or set FACEKIT_UTKFACE")
    table = read_dataset(path)
    if split != SPLIT_ALL:
        table = with_committed_split(table)
    frame = table.frame
    if split != SPLIT_ALL:
        if "split" not in frame:
            raise DatasetError(f"{path} has no train/val/test split: use --split all")
        if split not in set(frame["split"].dropna().astype(str)):
            found = ", ".join(sorted(set(frame["split"].dropna().astype(str))))
            raise DatasetError(f"{path} has no split {split!r} (it has {found or 'none'}; or use --split all)")
        frame = frame[frame["split"].astype(str) == split]
    frame = frame[frame["image"].notna()]
    if frame.empty:
        raise DatasetError(f"{path}: no images to evaluate (labels only?)")
    if not frame[[c for c in ("gender", "race", "age", "age_bin", "age_group") if c in frame]].notna().any().any():
        raise DatasetError(f"{path}: no labels to evaluate against")
    if limit is not None and limit < len(frame):
        frame = frame.sample(n=limit, random_state=seed).sort_index()
    info = DatasetInfo(name=table.dataset, source=str(Path(table.source).resolve()), split=split, images=len(frame),
                       limit=limit, sample_seed=seed if limit is not None else None)
    return info, frame.reset_index(drop=True)


def _relative_image(ref: str, source: str) -> str:
    """An image reference relative to the dataset's source, so a committed CSV is not tied to one machine."""
    from facekit.data.utkface import MEMBER_SEP

    container, sep, member = ref.partition(MEMBER_SEP)
    if sep and container == source:
        return member
    base = source if Path(source).is_dir() else str(Path(source).parent)
    return os.path.relpath(ref, base) if not sep and ref.startswith(base) else ref


def image_reference(row: pd.Series | dict, dataset: DatasetInfo) -> str:
    """The ``read_image_bytes`` reference of a predictions row on this machine.

    Resolved against the dataset's source; a UTKFace evaluation made elsewhere is pointed
    at the local archive (``locate_utkface``) when its recorded one is not here.
    """
    from facekit.data import locate_utkface
    from facekit.data.utkface import MEMBER_SEP, is_archive

    ref, source = str(row["image"]), dataset.source
    if MEMBER_SEP in ref or Path(ref).is_absolute():
        return ref
    if not Path(source).exists() and dataset.name == "utkface" and locate_utkface() is not None:
        source = str(locate_utkface())
    if is_archive(Path(source)):
        return f"{source}{MEMBER_SEP}{ref}"
    base = Path(source) if Path(source).is_dir() else Path(source).parent
    return str(base / ref)


def _probability_rows(probs: dict[str, np.ndarray], age_groups: Sequence[tuple[str, int, int]] = ()) -> pd.DataFrame:
    """Per-face prediction columns from head probabilities; the age point, interval and bin as the Predictor reads
    them, and the class of a model with an age-group head (``age_class``, its ``age_groups``)."""
    summary = metrics.age_point_and_interval(probs["age"])
    bins = np.array([list(labels.age_bin_probs(p).values()) for p in probs["age"]]).reshape(-1, len(labels.AGE_BIN_LABELS))
    heads = [("gender", labels.GENDERS, probs["gender"]), ("race", labels.RACES, probs["race"]),
             ("age_bin", labels.AGE_BIN_LABELS, bins)]
    columns: dict[str, object] = {
        "gender_pred": [labels.GENDERS[i] for i in probs["gender"].argmax(1)],
        "race_pred": [labels.RACES[i] for i in probs["race"].argmax(1)],
        "age_pred": summary[:, 0].round(2), "age_low": summary[:, 1], "age_high": summary[:, 2],
        "age_bin_pred": [labels.AGE_BIN_LABELS[i] for i in bins.argmax(1)],
    }
    if "race7" in probs:
        columns["race7_pred"] = [labels.RACE7[i] for i in probs["race7"].argmax(1)]
        heads.append(("race7", labels.RACE7, probs["race7"]))
    if age_groups:
        group_probs = labels.age_group_probs(probs["age"], age_groups)
        names = tuple(name for name, _, _ in age_groups)
        columns["age_class_pred"] = [names[i] for i in group_probs.argmax(1)]
        heads.append(("age_class", names, group_probs))
    for head, classes, values in heads:
        for i, name in enumerate(classes):
            columns[f"p_{head}_{name}"] = values[:, i].round(5)
    return pd.DataFrame(columns)


def predict_faces(frame: pd.DataFrame, predictor, crop: str = "detect", batch_size: int = 32,
                  log: Callable[[str], None] = lambda _: None,
                  progress: Callable[[int, int], None] = lambda done, total: None) -> pd.DataFrame:
    """One row per image of ``frame``: its ``status`` (ok, no face, unreadable), detector output and predictions.

    ``progress(done, total)`` is called after each batch of images, for a progress bar."""
    from facekit.data.table import labelled_boxes

    if crop not in CROPS:
        raise ValueError(f"crop must be one of {', '.join(CROPS)}, not {crop!r}")
    parts = []
    started = time.time()
    age_groups = predictor.model.config.age_groups
    boxes = labelled_boxes(frame)  # a face cut from a crowd: the labelled one, not the largest
    for start in range(0, len(frame), batch_size):
        chunk = frame.iloc[start:start + batch_size]
        data, status = _read_images(chunk["image"])
        scores = [np.nan] * len(chunk)
        if crop == "detect":
            probs, used = _detected_faces(predictor, data, chunk["file"].tolist(), boxes, status, scores)
        else:
            probs, used = _chip_faces(predictor, data, status)
        rows = pd.DataFrame({"file": chunk["file"].to_numpy(), "image": chunk["image"].to_numpy(), "status": status,
                             "det_score": scores})
        for column in ("gender", "race", "age", "age_bin", *EXTRA_TRUE):
            if column in chunk:
                rows[f"{column}_true"] = chunk[column].astype(object).to_numpy()
        if "age_group_true" in rows:  # perceived groups only; another scheme's (seed 003's) is read as age_class
            perceived = rows["age_group_true"].isin(labels.AGE_GROUP_LABELS)
            rows["age_group_true"] = rows["age_group_true"].where(perceived)
        if age_groups:
            rows["age_class_true"] = age_class_truth(chunk, age_groups)
        if used:
            predicted = _probability_rows({head: np.stack(values) for head, values in probs.items() if values},
                                          age_groups)
            predicted.index = used
            rows = rows.join(predicted)
        parts.append(rows)
        done = min(start + batch_size, len(frame))
        rate = done / max(time.time() - started, 1e-9)
        log(f"{done}/{len(frame)} images, {rate:.1f}/s")
        progress(done, len(frame))
    return pd.concat(parts, ignore_index=True)


def age_class_truth(frame: pd.DataFrame, groups: Sequence[tuple[str, int, int]]) -> list[Optional[str]]:
    """Each face's true class of a model's age groups, as training reads it; None where unknown."""
    from facekit.data.table import age_group_classes, age_ranges

    return [groups[i][0] if i >= 0 else None for i in age_group_classes(frame, tuple(groups), age_ranges(frame))]


def _read_images(refs: Iterable[str]) -> tuple[list[Optional[bytes]], list[str]]:
    """Each image's bytes and status "ok", or None and why it could not be read."""
    from facekit.data import read_image_bytes
    from facekit.vision.io import ImageError

    data, status = [], []
    for ref in refs:
        try:
            data.append(read_image_bytes(ref))
            status.append("ok")
        except (ImageError, OSError) as error:
            data.append(None)
            status.append(f"unreadable: {error}")
    return data, status


def _detected_faces(predictor, data: list[Optional[bytes]], files: list[str], boxes: dict, status: list[str],
                    scores: list[float]) -> tuple[dict[str, list[np.ndarray]], list[int]]:
    """Each readable photo through the predictor; the labelled face (else the largest) gives its probabilities.
    ``status`` and ``scores`` are filled in per photo; returns the probabilities and the photos they belong to."""
    from facekit.vision.detect import matching_face

    readable = [i for i, d in enumerate(data) if d is not None]
    probs: dict[str, list[np.ndarray]] = {"gender": [], "race": [], "age": [], "race7": []}
    used: list[int] = []
    results = predictor.predict_images([data[i] for i in readable], [str(i) for i in readable])
    for i, result in zip(readable, results):
        if result.error:
            status[i] = f"unreadable: {result.error}"
            continue
        pick = matching_face(np.array([f.box for f in result.faces]).reshape(-1, 4), boxes.get(files[i]))
        if pick is None:
            status[i] = "no face"
            continue
        face = result.faces[pick]
        scores[i] = face.det_score
        probs["gender"].append(np.array(list(face.gender_probs.values())))
        probs["race"].append(np.array(list(face.race_probs.values())))
        probs["age"].append(np.array(face.age_probs))
        if face.race7_probs is not None:
            probs["race7"].append(np.array(list(face.race7_probs.values())))
        used.append(i)
    return probs, used


def _chip_faces(predictor, data: list[Optional[bytes]], status: list[str]) -> tuple[dict[str, list[np.ndarray]], list[int]]:
    """Each readable image taken as the face itself (a dataset's own chip), resized to the model's crop."""
    from facekit.vision.align import resize_chip
    from facekit.vision.io import ImageError, load_image

    crops, used = [], []
    for i, image in enumerate(data):
        if image is None:
            continue
        try:
            crops.append(resize_chip(load_image(image), predictor.model.config.crop))
            used.append(i)
        except ImageError as error:
            status[i] = f"unreadable: {error}"
    probs = {head: list(values) for head, values in predictor.probabilities(crops).items()} if crops else {}
    return probs, used


def _categories(faces: pd.DataFrame, column: str, categories: tuple[str, ...]) -> pd.Series:
    values = faces[column] if column in faces else pd.Series([None] * len(faces))
    return pd.Series(pd.Categorical(values.astype(object).where(values.notna(), None), categories=categories))


def _face_sizes(faces: pd.DataFrame) -> pd.Series:
    """Each face's height in its original photo as one of ``labels.FACE_SIZES``' groups."""
    names = [name for _, _, name in labels.FACE_SIZES]
    if "face_px_true" not in faces:
        return pd.Series(pd.Categorical([None] * len(faces), categories=names))
    heights = pd.to_numeric(faces["face_px_true"], errors="coerce")
    return pd.Series(pd.Categorical([labels.face_size_group(h) for h in heights], categories=names))


def age_group_order(faces: pd.DataFrame) -> AgeGroupOrder | None:
    """Predicted age per perceived age group: do means rise from Young Adult to Senior, and how often
    is a Senior face predicted at least ``SENIOR_AGE``? None without age-group labels."""
    if "age_group_true" not in faces or faces["age_group_true"].isna().all():
        return None
    rows = []
    for group in labels.AGE_GROUP_LABELS:
        ages = faces.loc[faces["age_group_true"] == group, "age_pred"].astype(float)
        rows.append(AgeGroupAge(group, int(len(ages)), float(ages.mean()) if len(ages) else None,
                                float(ages.median()) if len(ages) else None))
    means = [r.mean_age for r in rows if r.mean_age is not None]
    seniors = faces.loc[faces["age_group_true"] == "senior", "age_pred"].astype(float)
    return AgeGroupOrder(tuple(rows), rising=bool(all(a < b for a, b in zip(means, means[1:]))), senior_age=SENIOR_AGE,
                         senior_at_least=float((seniors >= SENIOR_AGE).mean()) if len(seniors) else None)


def _group_features(faces: pd.DataFrame) -> dict[str, pd.Series]:
    """True-label groups of each evaluated face, in the schema's order; features nobody is labelled with are left out."""
    gender = pd.Categorical(faces["gender_true"], categories=labels.GENDERS)
    race = pd.Categorical(faces["race_true"], categories=labels.RACES)
    crossed = [f"{r}/{g}" for r in labels.RACES for g in labels.GENDERS]
    features = {
        "gender": pd.Series(gender),
        "race7": _categories(faces, "race7_true", labels.RACE7),
        "skin": _categories(faces, "skin_true", labels.SKIN_TONES),
        "age_group": _categories(faces, "age_group_true", labels.AGE_GROUP_LABELS),
        "face_size": _face_sizes(faces),
        "race": pd.Series(race),
        "age_bin": pd.Series(pd.Categorical(faces["age_bin_true"], categories=labels.AGE_BIN_LABELS)),
        "race_gender": pd.Series(pd.Categorical(
            [f"{r}/{g}" if isinstance(r, str) and isinstance(g, str) else None
             for r, g in zip(faces["race_true"], faces["gender_true"])], categories=crossed)),
    }
    return {name: values for name, values in features.items() if values.notna().any()}


def summarize(predictions: pd.DataFrame, *, model: ModelInfo, dataset: DatasetInfo, crop: str,
              min_group: int = metrics.MIN_GROUP, n_boot: int = metrics.N_BOOT, seed: int = 0,
              detector_settings: Optional[dict] = None) -> EvaluationSummary:
    """The evaluation summary from the per-image rows alone (no model, no images needed).

    It goes through its JSON once, so the summary in memory is the one a saved report reads back.
    It reads top to bottom in the order of that JSON (detector, heads, calibration, age, groups).
    """
    faces = predictions[predictions["status"] == "ok"].reset_index(drop=True)
    unreadable = int(predictions["status"].str.startswith("unreadable").sum())
    read = len(predictions) - unreadable
    detector = DetectorCounts(
        images=len(predictions), unreadable=unreadable, faces_found=len(faces) if crop == "detect" else None,
        hit_rate=len(faces) / read if crop == "detect" and read else None, evaluated=len(faces),
        note=NO_FACE_NOTE if crop == "detect" else "archive crops: the whole image is the face, no detection",
        settings=detector_settings if crop == "detect" else None)
    notes: list[str] = []
    if crop == "detect" and len(faces) < read:
        notes.append(f"{read - len(faces)} of {read} images had no face found: {NO_FACE_NOTE}")
    if faces.empty:
        notes.append("no face was evaluated: no metrics")
        return EvaluationSummary(model=model, dataset=dataset, crop=crop, detector=detector, notes=tuple(notes))
    gender = np.array(labels.encode(faces["gender_true"], labels.GENDERS), np.int64)
    race = np.array(labels.encode(faces["race_true"], labels.RACES), np.int64)
    bins = np.array(labels.encode(faces["age_bin_true"], labels.AGE_BIN_LABELS), np.int64)
    age = pd.to_numeric(faces["age_true"], errors="coerce").to_numpy(float)
    probs = {head: faces[[f"p_{head}_{c}" for c in classes]].to_numpy(float) for head, classes in CLASSES.items()}
    age_pred, low, high = (faces[c].to_numpy(float) for c in ("age_pred", "age_low", "age_high"))
    bin_pred = probs["age_bin"].argmax(1)
    heads: dict[str, metrics.ClassificationMetrics] = {}
    calibration: dict[str, metrics.Calibration] = {}
    truths = {"gender": (gender, CLASSES["gender"]), "race": (race, CLASSES["race"])}
    if "race7_true" in faces and "race7_pred" in faces:
        probs["race7"] = faces[[f"p_race7_{c}" for c in labels.RACE7]].to_numpy(float)
        truths["race7"] = (np.array(labels.encode(faces["race7_true"], labels.RACE7), np.int64), labels.RACE7)
    if "age_class_true" in faces and "age_class_pred" in faces:
        classes = tuple(c.removeprefix("p_age_class_") for c in faces.columns if c.startswith("p_age_class_"))
        probs["age_class"] = faces[[f"p_age_class_{c}" for c in classes]].to_numpy(float)
        truths["age_class"] = (np.array(labels.encode(faces["age_class_true"], classes), np.int64), classes)
    for head, (truth, classes) in truths.items():
        if (truth >= 0).any():
            calibration[head] = metrics.calibration(truth, probs[head])
            heads[head] = replace(metrics.classification_metrics(truth, probs[head].argmax(1), classes),
                                  ece=calibration[head].ece)
        elif head != "race7":
            notes.append(f"{head}: no labels in this dataset, head skipped")
    age_metrics = None
    if (bins >= 0).any():
        age_metrics = metrics.age_metrics(age, age_pred, low, high, bins, bin_pred)
        calibration["age_bin"] = metrics.calibration(bins, probs["age_bin"])
        if np.isnan(age).all():
            notes.append("age: no ages in years, only age bins; MAE, CS@5 and coverage skipped")
    else:
        notes.append("age: no labels in this dataset, head skipped")
    features = _group_features(faces)
    age_group = (np.array(labels.encode(faces["age_group_true"], labels.AGE_GROUP_LABELS), np.int64)
                 if "age_group_true" in faces else None)
    groups = metrics.group_metrics(
        metrics.head_group_metrics(gender, probs["gender"], race, probs["race"], age, age_pred, low, high, bins,
                                   bin_pred, age_group,
                                   (truths["age_class"][0], probs["age_class"]) if "age_class" in truths else None),
        features, min_size=min_group, n_boot=n_boot, seed=seed)
    summary = EvaluationSummary(
        model=model, dataset=dataset, crop=crop, detector=detector, notes=tuple(notes), **heads,
        age_group=age_group_order(faces), age=age_metrics, calibration=calibration, groups=groups.values,
        gaps=groups.gaps,
        group_settings=GroupSettings(min_size=min_group, n_boot=n_boot, ci=metrics.CI, seed=seed,
                                     features=tuple(features)))
    return EvaluationSummary.from_dict(summary.to_dict())


def model_info(checkpoint: Optional[os.PathLike | str], metadata: dict) -> ModelInfo:
    """Which model: its name, path (named from the package's folder when shipped), weights hash and sidecar."""
    from facekit.data.paths import shown_path
    from facekit.models.model import DEFAULT_MODEL

    path = Path(checkpoint or DEFAULT_MODEL).resolve()
    return ModelInfo(name=path.stem, path=str(shown_path(path)), sha256=weights_sha256(path), metadata=metadata)


def evaluate(checkpoint: Optional[os.PathLike | str] = None, data: Optional[os.PathLike | str] = None,
             split: str = "test", limit: Optional[int] = None, crop: str = "detect", batch_size: int = 32,
             engine: str = "auto", detector: Optional[DetectorSettings] = None,
             min_group: int = metrics.MIN_GROUP, n_boot: int = metrics.N_BOOT, seed: int = 0,
             log: Callable[[str], None] = lambda _: None,
             progress: Callable[[int, int], None] = lambda done, total: None) -> Evaluation:
    """Select the faces, predict them, summarize. Raises DatasetError / FileNotFoundError / ValueError.

    ``log`` gets a line per batch, ``progress(done, total)`` the images done so far; ``detector``: the
    face detector's settings (default: ``DetectorSettings()``, as the predictor's)."""
    from facekit.predict import Predictor
    from facekit.vision.detect import DetectorSettings

    detector = detector or DetectorSettings()

    if crop not in CROPS:
        raise ValueError(f"--crop must be one of {', '.join(CROPS)}, not {crop!r}")
    dataset, frame = select_faces(data, split, limit, seed)
    # Faces cut from crowds are matched to their labelled box among every face found; else the largest counts.
    predictor = Predictor(checkpoint, detector=detector, engine=engine,
                          max_faces=MAX_FACES if {"x", "y", "w", "h"} <= set(frame) else 1)
    started = time.time()
    predictions = predict_faces(frame, predictor, crop, batch_size, log, progress)
    seconds = time.time() - started
    unreadable = predictions["status"].str.startswith("unreadable")
    if len(predictions) and unreadable.all():
        first = predictions.iloc[0]
        raise ValueError(f"none of the {len(predictions):,} images could be read (e.g. {first['file']}: "
                         f"{first['status']})")
    predictions["image"] = [_relative_image(ref, dataset.source) for ref in predictions["image"]]
    summary = summarize(predictions, model=model_info(checkpoint, predictor.metadata), dataset=dataset, crop=crop,
                        min_group=min_group, n_boot=n_boot, seed=seed, detector_settings=detector.to_dict())
    summary = replace(summary, engine=predictor.engine,
                      created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      timings=Timings(round(seconds, 1), round(seconds / max(len(frame), 1), 4)))
    return Evaluation(summary, predictions)


def save_evaluation(evaluation: Evaluation, folder: os.PathLike | str) -> list[Path]:
    """Write evaluation.json and predictions.csv into ``folder``; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [write_text(folder / name, text) for name, text in _evaluation_files(evaluation).items()]


def _evaluation_files(evaluation: Evaluation) -> dict[str, str]:
    """The text of an evaluation's two files by name, as saved and as downloaded."""
    return {SUMMARY_FILE: json_text(evaluation.summary.to_dict(), indent=1) + "\n",
            PREDICTIONS_FILE: csv_text(evaluation.predictions)}


def evaluation_zip(evaluation: Evaluation) -> bytes:
    """The evaluation's two files (evaluation.json, predictions.csv) as one ZIP, for a download."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in _evaluation_files(evaluation).items():
            archive.writestr(name, text)
    return buffer.getvalue()


def load_summary(folder: os.PathLike | str) -> EvaluationSummary:
    """A saved evaluation's summary alone; FileNotFoundError / ValueError with a one-line reason when it is not one."""
    path = Path(folder) / SUMMARY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no evaluation in {folder} (need {SUMMARY_FILE} and {PREDICTIONS_FILE})")
    try:
        return EvaluationSummary.from_dict(json.loads(path.read_text()))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a complete evaluation summary ({error!r})") from None


def load_evaluation(folder: os.PathLike | str) -> Evaluation:
    """A saved evaluation; FileNotFoundError / ValueError with a one-line reason when it is not one."""
    predictions_path = Path(folder) / PREDICTIONS_FILE
    summary = load_summary(folder)
    if not predictions_path.is_file():
        raise FileNotFoundError(f"no evaluation in {folder} (need {SUMMARY_FILE} and {PREDICTIONS_FILE})")
    return Evaluation(summary, read_csv(predictions_path))
