"""facekit.evaluation.evaluate, the report, the model card and their CLI: synthetic rows for the logic, the
real archive and shipped model (through the command, in a subprocess) for the end to end."""
from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from typer.testing import CliRunner

from conftest import CLI
from facekit import labels
from facekit.cli import app
from facekit.evaluation.evaluate import (PREDICTIONS_FILE, SUMMARY_FILE, Evaluation, image_reference, load_evaluation,
                              save_evaluation, summarize)
from facekit.models.model import DEFAULT_MODEL
from facekit.evaluation.report import committed_reports, model_card, beyond_portraits_sentence, write_report
from facekit.evaluation.summary import DatasetInfo, EvaluationSummary, ModelInfo

MODEL_INFO = ModelInfo(name="synthetic", path="nowhere/synthetic.safetensors", sha256="0" * 64,
                       metadata={"temperature": {"gender": 1.0}, "data": {"dataset": "UTKFace"}})
DATASET_INFO = DatasetInfo(name="utkface", source="/nowhere/UTKFace.tar.gz", split="test", images=0)


def synthetic_predictions(n: int = 300, seed: int = 0, no_face: int = 12) -> pd.DataFrame:
    """Per-image rows as ``predict_faces`` writes them: a noisy model, a few images without a face."""
    rng = np.random.default_rng(seed)
    gender = rng.integers(0, 2, n)
    race = rng.integers(0, 5, n)
    age = rng.integers(1, 90, n).astype(float)
    rows = pd.DataFrame({"file": [f"{int(a)}_{g}_{r}_2017{i:09d}.jpg.chip.jpg" for i, (a, g, r) in
                                  enumerate(zip(age, gender, race))],
                         "status": "ok", "det_score": 0.99,
                         "gender_true": np.array(labels.GENDERS)[gender], "race_true": np.array(labels.RACES)[race],
                         "age_true": age, "age_bin_true": [labels.age_to_bin(a) for a in age]})
    rows["image"] = "UTKFace/" + rows["file"]
    gender_p = np.eye(2)[gender] * 0.4 + rng.dirichlet(np.ones(2), n) * 0.6  # right ~83% of the time
    race_p = np.eye(5)[race] * 0.5 + rng.dirichlet(np.ones(5), n)
    gender_p, race_p = gender_p / gender_p.sum(1, keepdims=True), race_p / race_p.sum(1, keepdims=True)
    age_pred = np.clip(age + rng.normal(0, 6, n), 0, 100).round(2)
    bins = np.eye(9)[[labels.age_bin_index(labels.age_to_bin(a)) for a in age_pred]] * 0.5 + 0.5 / 9
    rows["gender_pred"] = np.array(labels.GENDERS)[gender_p.argmax(1)]
    rows["race_pred"] = np.array(labels.RACES)[race_p.argmax(1)]
    rows["age_pred"], rows["age_low"], rows["age_high"] = age_pred, age_pred - 8, age_pred + 8
    rows["age_bin_pred"] = np.array(labels.AGE_BIN_LABELS)[bins.argmax(1)]
    for head, classes, values in (("gender", labels.GENDERS, gender_p), ("race", labels.RACES, race_p),
                                  ("age_bin", labels.AGE_BIN_LABELS, bins)):
        for i, name in enumerate(classes):
            rows[f"p_{head}_{name}"] = values[:, i]
    missing = rows.index[:no_face]
    rows.loc[missing, "status"] = "no face"
    prediction_columns = [c for c in rows.columns if c.startswith("p_") or c.endswith("_pred") or c in ("age_low", "age_high")]
    rows.loc[missing, prediction_columns + ["det_score"]] = np.nan
    return rows


def synthetic_evaluation(n: int = 300, seed: int = 0) -> Evaluation:
    predictions = synthetic_predictions(n, seed)
    summary = summarize(predictions, model=MODEL_INFO, dataset=replace(DATASET_INFO, images=n), crop="detect", n_boot=50)
    return Evaluation(summary, predictions)


def test_summary_matches_sklearn_on_its_rows() -> None:
    evaluation = synthetic_evaluation()
    summary, faces = evaluation.summary, evaluation.predictions.query("status == 'ok'")
    assert summary.detector.images == 300 and summary.detector.faces_found == 288
    assert summary.detector.hit_rate == pytest.approx(288 / 300)
    assert any("no face" in note for note in summary.notes)
    for head in ("gender", "race"):
        metrics = summary.head(head)
        assert metrics.accuracy == pytest.approx(skm.accuracy_score(faces[f"{head}_true"], faces[f"{head}_pred"]))
        assert metrics.balanced_accuracy == pytest.approx(
            skm.balanced_accuracy_score(faces[f"{head}_true"], faces[f"{head}_pred"]))
        classes = list({"gender": labels.GENDERS, "race": labels.RACES}[head])
        matrix = skm.confusion_matrix(faces[f"{head}_true"], faces[f"{head}_pred"], labels=classes)
        assert [list(row) for row in metrics.confusion_matrix.counts] == matrix.tolist()
    assert summary.age.mae == pytest.approx(skm.mean_absolute_error(faces["age_true"], faces["age_pred"]))
    assert summary.age.interval_coverage == pytest.approx(
        ((faces["age_true"] >= faces["age_low"]) & (faces["age_true"] <= faces["age_high"])).mean())
    assert set(summary.calibration) == {"gender", "race", "age_bin"}
    assert {g.feature for g in summary.groups} == {"all", "gender", "race", "age_bin", "race_gender"}
    assert any(g.small for g in summary.groups if g.feature == "race_gender")  # 300 faces / 10 cells
    json.dumps(summary.to_dict(), allow_nan=False)  # valid JSON: no NaN


def test_unlabelled_heads_are_skipped_with_a_note() -> None:
    predictions = synthetic_predictions(80)
    predictions["race_true"] = np.nan
    predictions["age_true"] = np.nan  # bins stay: FairFace-like
    summary = summarize(predictions, model=MODEL_INFO, dataset=DATASET_INFO, crop="detect", n_boot=20)
    assert summary.race is None and "race" not in summary.calibration and "race" not in summary.to_dict()
    assert summary.age.mae is None and summary.age.bin_accuracy is not None
    assert any(note.startswith("race: no labels") for note in summary.notes)
    assert not any(g.metric.startswith("race.") for g in summary.groups)
    assert "race" not in summary.features


@pytest.mark.slow
def test_save_load_report_and_card(tmp_path: Path) -> None:
    evaluation = synthetic_evaluation()
    save_evaluation(evaluation, tmp_path)
    written = write_report(evaluation.summary, tmp_path)
    loaded = load_evaluation(tmp_path)
    assert loaded.summary == evaluation.summary
    assert len(loaded.predictions) == 300
    assert {p.name for p in written} == {"report.md", "report.html", "MODEL_CARD.md"}
    markdown = (tmp_path / "report.md").read_text()
    assert "## Headline" in markdown and "ethnicity accuracy by ethnicity" in markdown
    card = model_card([evaluation.summary])
    for section in ("Model details", "Intended use", "Factors", "Metrics", "Evaluation data", "Training data",
                    "Quantitative analyses", "Ethical considerations", "Caveats and recommendations"):
        assert f"## {section}" in card
    assert "non-commercial research purposes only" in card
    assert "plotly" in (tmp_path / "report.html").read_text()


def test_image_reference_points_at_the_local_archive(monkeypatch, tmp_path: Path) -> None:
    archive = tmp_path / "UTKFace.tar.gz"
    archive.write_bytes(b"")
    monkeypatch.setenv("FACEKIT_UTKFACE", str(archive))
    row = {"image": "UTKFace/1_0_0_x.jpg.chip.jpg"}
    assert image_reference(row, DATASET_INFO) == f"{archive}::UTKFace/1_0_0_x.jpg.chip.jpg"
    folder = DatasetInfo(name="manifest", source=str(tmp_path / "faces.csv"), split="all", images=1)
    assert image_reference({"image": "a/b.jpg"}, folder) == str(tmp_path / "a" / "b.jpg")


def test_committed_reports_load_and_round_trip() -> None:
    """The JSON keeps its keys: every committed report reads as a summary and writes back the same JSON."""
    if not committed_reports():
        pytest.skip("no committed report under facekit/assets/reports")
    for folder in committed_reports().values():
        saved = json.loads((folder / SUMMARY_FILE).read_text())
        summary = load_evaluation(folder).summary
        assert summary.to_dict() == saved and EvaluationSummary.from_dict(saved) == summary
        assert summary.gender.accuracy == saved["gender"]["accuracy"] and summary.groups[0].n == saved["groups"][0]["n"]


@pytest.mark.slow
def test_a_seven_class_summary_keeps_race7_and_the_age_group_order() -> None:
    predictions = synthetic_predictions(120)
    rng = np.random.default_rng(3)
    race7 = rng.integers(0, 7, len(predictions))
    probs = np.eye(7)[race7] * 0.5 + rng.dirichlet(np.ones(7), len(predictions)) * 0.5
    predictions["race7_true"] = np.array(labels.RACE7)[race7]
    predictions["race7_pred"] = np.array(labels.RACE7)[probs.argmax(1)]
    for i, name in enumerate(labels.RACE7):
        predictions[f"p_race7_{name}"] = probs[:, i]
    predictions["age_group_true"] = rng.choice(labels.AGE_GROUP_LABELS, len(predictions))
    predictions["skin_true"] = rng.choice(labels.SKIN_TONES, len(predictions))
    summary = summarize(predictions, model=MODEL_INFO, dataset=DATASET_INFO, crop="detect", n_boot=10)
    assert summary.race7.confusion_matrix.labels == labels.RACE7 and "race7" in summary.calibration
    assert [g.group for g in summary.age_group.groups] == list(labels.AGE_GROUP_LABELS)
    assert {"race7", "skin", "age_group"} <= set(summary.features)
    assert EvaluationSummary.from_dict(json.loads(json.dumps(summary.to_dict()))) == summary
    card = model_card([summary, replace(summary, dataset=replace(DATASET_INFO, name="wider-dev"))])
    assert "| utkface (test) |" in card and "| wider-dev (test) |" in card
    assert "accuracy by skin tone" in card and "by perceived age group" in card


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    for arguments in (["evaluate", "--data", str(tmp_path / "missing")],
                      ["evaluate", "--crop", "sideways"],
                      ["evaluate", "--detector", "haar"],
                      ["evaluate", "--model", str(tmp_path / "none.safetensors"), "--data", str(tmp_path / "missing")],
                      ["card", "--report", str(tmp_path), "--out", str(tmp_path / "card.md")]):
        result = runner.invoke(app, arguments)
        assert result.exit_code == 1, (arguments, result.output)
        assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
        assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, utkface_archive):
    if not DEFAULT_MODEL.exists():
        pytest.skip(f"the shipped model is missing at {DEFAULT_MODEL}")
    out = tmp_path_factory.mktemp("evaluation")
    done = subprocess.run([*CLI, "evaluate", "--split", "test", "--json", "--limit", "40", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), out


def test_real_evaluation_has_every_key(real_run) -> None:
    summary, _ = real_run
    for head, key in (("gender", "accuracy"), ("race", "accuracy"), ("age", "mae"), ("age", "interval_coverage")):
        assert summary[head][key] is not None
    for head in ("gender", "race", "age"):
        assert "confusion_matrix" in summary[head] and summary[head]["per_class"]
    assert {"groups", "calibration", "detector", "dataset", "model"} <= set(summary)
    assert summary["dataset"]["split"] == "test" and summary["dataset"]["images"] == 40
    assert 0.8 <= summary["detector"]["hit_rate"] <= 1.0
    assert summary["model"]["path"] == "facekit/assets/model/facekit-multi.safetensors"
    assert summary["engine"] == "int8"  # the shipped model carries its int8 calibration
    assert summary["gender"]["accuracy"] > 0.7  # a trained model, not chance
    assert summary["detector"]["settings"]["detector"] == "retinaface"  # the report says which detector cropped


def test_real_accuracy_equals_sklearn_on_saved_predictions(real_run) -> None:
    summary, out = real_run
    rows = pd.read_csv(out / PREDICTIONS_FILE)
    faces = rows[rows["status"] == "ok"]
    assert len(rows) == 40 and len(faces) == summary["detector"]["evaluated"]
    for head in ("gender", "race"):
        assert summary[head]["accuracy"] == pytest.approx(skm.accuracy_score(faces[f"{head}_true"], faces[f"{head}_pred"]))
    assert summary["age"]["mae"] == pytest.approx(skm.mean_absolute_error(faces["age_true"], faces["age_pred"]))
    assert json.loads((out / SUMMARY_FILE).read_text())["gender"] == summary["gender"]
    assert (out / "report.html").is_file() and (out / "MODEL_CARD.md").is_file()
    assert "run as an int8 ONNX graph" in (out / "report.md").read_text()
    assert "re-detected by RetinaFace" in (out / "report.md").read_text()


def test_the_pages_sentence_beyond_portraits_comes_from_the_evaluations() -> None:
    utkface = synthetic_evaluation(300, seed=0).summary
    fairface = replace(synthetic_evaluation(300, seed=1).summary, dataset=replace(DATASET_INFO, name="fairface"))
    assert beyond_portraits_sentence([]) is None
    assert "not been measured on photos unlike studio portraits" in beyond_portraits_sentence([utkface])
    sentence = beyond_portraits_sentence([utkface, fairface])
    gender, race = f"{fairface.gender.accuracy:.0%}", f"{fairface.race.accuracy:.0%}"
    assert sentence == (f"How often this model is right beyond studio portraits: "
                        f"on web photos (FairFace), gender {gender} and ethnicity {race}. Expect less on photos "
                        "unlike these.")
    from facekit.evaluation.report import committed_summaries  # the default model trained on FairFace's other part
    shipped = [s for name, s in committed_summaries().items() if name.startswith("facekit-multi")]
    if shipped:
        assert "on web photos (FairFace) held out from its training, gender" in \
            beyond_portraits_sentence(shipped)
    assert beyond_portraits_sentence([replace(fairface, crop="archive")]).startswith("This model has not been")
