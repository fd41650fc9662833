"""The Model Evaluation page under Streamlit's AppTest: it renders saved reports and never recomputes them."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from facekit.data.paths import locate_utkface
from facekit.evaluation.evaluate import load_summary, save_evaluation
from facekit.evaluation.report import committed_reports
from test_evaluate import synthetic_evaluation

pytestmark = pytest.mark.slow

PAGE = str(Path(__file__).parents[1] / "pages" / "4_Model_Evaluation.py")


@pytest.fixture(autouse=True)
def no_recomputing(monkeypatch):
    """Any attempt to run the model for the page's numbers fails the test."""
    import facekit.evaluation.evaluate
    import facekit.predict

    def refuse(*args, **kwargs):
        raise AssertionError("the page recomputed an evaluation")

    monkeypatch.setattr(facekit.evaluation.evaluate, "predict_faces", refuse)
    monkeypatch.setattr(facekit.evaluation.evaluate, "evaluate", refuse)
    monkeypatch.setattr(facekit.predict.Predictor, "predict_images", refuse)


def page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def open_folder(at: AppTest, folder: Path, key: str = "report") -> AppTest:
    at.sidebar.selectbox(key=key).set_value("A report folder on disk").run()
    at.sidebar.text_input(key=f"{key}_path").set_value(str(folder)).run()
    assert not at.exception, at.exception
    return at


def test_committed_report_renders_without_recomputing() -> None:
    if not committed_reports():
        pytest.skip("no committed report under facekit/assets/reports yet (run `facekit evaluate --out ...`)")
    at = page()
    assert [m.label for m in at.metric][:4] == ["gender accuracy", "ethnicity accuracy", "age MAE (years)",
                                                "80% age interval coverage"]
    first = next(iter(committed_reports().values()))
    summary = load_summary(first)
    assert at.metric[0].value.endswith("%") and at.metric[1].value.endswith("%")
    has_years = summary.age is not None and summary.age.mae is not None
    assert at.metric[3].value.endswith("%") if has_years else at.metric[3].value == "n/a"
    # confusion, groups, reliability per head, and the three age charts where the data has ages in years
    assert len(at.get("plotly_chart")) >= (8 if has_years else 5)
    assert any("gap" in m.value for m in at.markdown)
    assert any("## Intended use" in m.value for m in at.markdown)  # the model card tab
    if locate_utkface() is not None:  # the report's faces are read from the archive: the gallery shows them
        assert len(at.get("image")) == 1
    else:
        assert any("could not be read" in i.value for i in at.info)


def test_synthetic_report_every_tab_and_comparison(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    save_evaluation(synthetic_evaluation(300, seed=0), first)
    save_evaluation(synthetic_evaluation(200, seed=1), second)
    at = open_folder(page(), first)
    assert at.metric[0].value.endswith("%") and at.metric[4].value == "96.0%"  # detector hit rate: 288 of 300
    at.toggle(key="normalize").set_value(False).run()
    assert not at.exception, at.exception
    at.radio(key="classes_head").set_value("Age").run()
    at.selectbox(key="group_metric").set_value("age.mae").run()
    at.selectbox(key="group_feature").set_value("race_gender").run()
    assert not at.exception, at.exception
    assert any(m.value.startswith("age MAE (years) by ethnicity × gender") for m in at.markdown)
    # The synthetic images are not on this machine: the gallery says so instead of failing.
    assert any("could not be read on this machine" in i.value for i in at.info)
    open_folder(at, second, key="compare")
    assert at.metric[0].delta is not None  # the headline shows the difference to the second report
    assert len(at.get("plotly_chart")) >= 8


def test_bad_folder_is_a_sidebar_error(tmp_path: Path) -> None:
    at = open_folder(page(), tmp_path)
    assert any("no evaluation in" in e.value for e in at.sidebar.error)


def test_the_detection_tab_shows_recall_by_face_size_of_the_committed_report() -> None:
    from facekit.evaluation.detection import load_detection
    from facekit.evaluation.report import committed_detection_reports

    reports = committed_detection_reports()
    if not reports:
        pytest.skip("no committed detection report")
    at = page()
    name, folder = next(iter(reports.items()))
    report = load_detection(folder)
    table = next(frame.value for frame in at.dataframe if "face height" in frame.value.columns)
    assert list(table["face height"]) == [s.size for s in report.by_size]
    assert list(table["found"]) == [s.found for s in report.by_size]
    assert any(f"**{name}**" in item.value and "false boxes per photo" in item.value for item in at.markdown)


def test_the_training_curves_tab_draws_a_committed_run_and_a_run_folder(tmp_path: Path) -> None:
    from facekit.training.history import CURVES_FILE, read_curves

    def curves_table(at: AppTest):
        return next(frame.value for frame in at.dataframe if "epoch" in frame.value.columns)

    committed = sorted((Path(PAGE).parents[1] / "training" / "curves").glob("*.csv"))
    at = page()
    assert at.selectbox(key="curves_run").value == committed[0].stem
    assert len(curves_table(at)) == len(read_curves(committed[0]))
    run = tmp_path / "run"
    run.mkdir()
    (run / CURVES_FILE).write_text("epoch,seconds,train_loss_gender,val_gender_accuracy,val_score\n"
                                   "1,3.0,0.6,0.81,0.4\n2,3.1,0.4,0.86,0.3\n")
    at.selectbox(key="curves_run").set_value("A run folder on this server").run()
    at.text_input(key="curves_path").input(str(run)).run()
    assert not at.exception, at.exception
    assert list(curves_table(at)["val_gender_accuracy"]) == [0.81, 0.86]
    at.text_input(key="curves_path").input("/etc").run()
    assert any("outside the folders this app may open" in error.value for error in at.error)
    (run / CURVES_FILE).write_text("not,a,table\n")
    at.text_input(key="curves_path").input(str(run) + "/").run()
    assert any("no epoch rows" in error.value for error in at.error)
