"""facekit.evaluation.metrics against independent computations (sklearn, fairlearn, hand-worked answers)."""
import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame
from sklearn import metrics as skm

from facekit import labels
from facekit.evaluation import metrics


@pytest.fixture(scope="module")
def synthetic():
    """2,000 faces: a race head right ~75% of the time, ages off by N(0, 6) years, 1% unknown race."""
    rng = np.random.default_rng(7)
    n = 2000
    race = rng.integers(0, 5, n)
    race_probs = rng.dirichlet(np.ones(5), n)
    right = rng.random(n) < 0.75
    race_probs[right] = np.eye(5)[race[right]] * 0.6 + race_probs[right] * 0.4
    race[rng.random(n) < 0.01] = -1
    gender = rng.integers(0, 2, n)
    gender_probs = rng.dirichlet(np.ones(2) * 0.4, n)
    age = rng.uniform(1, 95, n).round()
    age_pred = np.clip(age + rng.normal(0, 6, n), 0, 100)
    bins = np.array([labels.age_bin_index(labels.age_to_bin(a)) for a in age])
    bin_pred = np.array([labels.age_bin_index(labels.age_to_bin(a)) for a in age_pred])
    return dict(race=race, race_probs=race_probs, gender=gender, gender_probs=gender_probs, age=age,
                age_pred=age_pred, low=age_pred - 7, high=age_pred + 7, bins=bins, bin_pred=bin_pred)


def test_class_metrics_match_sklearn(synthetic):
    y, probs = synthetic["race"], synthetic["race_probs"]
    pred = probs.argmax(1)
    known = y >= 0
    report = metrics.classification_metrics(y, pred, labels.RACES)
    assert report.n == known.sum()
    assert report.accuracy == pytest.approx(skm.accuracy_score(y[known], pred[known]))
    assert report.balanced_accuracy == pytest.approx(skm.balanced_accuracy_score(y[known], pred[known]))
    precision, recall, f1, support = skm.precision_recall_fscore_support(y[known], pred[known], labels=range(5),
                                                                         zero_division=0)
    assert [c.precision for c in report.per_class] == pytest.approx(precision)
    assert [c.recall for c in report.per_class] == pytest.approx(recall)
    assert [c.f1 for c in report.per_class] == pytest.approx(f1)
    assert [c.support for c in report.per_class] == list(support)
    matrix = report.confusion_matrix
    assert np.array_equal(matrix.counts, skm.confusion_matrix(y[known], pred[known], labels=range(5)))
    assert np.allclose(matrix.normalized, skm.confusion_matrix(y[known], pred[known], labels=range(5), normalize="true"))


def test_class_with_no_faces_or_predictions_scores_zero():
    matrix = metrics.confusion_matrix(np.array([0, 0, 1]), np.array([0, 1, 1]), ["a", "b", "c"])
    by_label = {c.label: c for c in metrics.per_class_metrics(matrix)}
    assert by_label["c"] == metrics.ClassMetrics("c", 0.0, 0.0, 0.0, 0)
    assert matrix.normalized[2] == (0.0, 0.0, 0.0)
    assert metrics.balanced_accuracy(np.array([0, 0, 1]), np.array([0, 1, 1])) == pytest.approx(0.75)


def test_calibration_hand_worked():
    """Three faces, confidences .9 (right), .8 (right), .6 (wrong): gaps .1, .2, .6 in separate bins."""
    y = np.array([0, 1, 1, -1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    result = metrics.calibration(y, probs)
    assert result.ece == pytest.approx(0.3)
    assert metrics.expected_calibration_error(y, probs) == pytest.approx(0.3)
    assert [b.count for b in result.bins] == [1, 1, 1]
    assert [b.accuracy for b in result.bins] == [0.0, 1.0, 1.0]
    weighted = sum(b.count * abs(b.accuracy - b.confidence) for b in result.bins) / 3
    assert weighted == pytest.approx(result.ece)


def test_age_metrics(synthetic):
    s = synthetic
    report = metrics.age_metrics(s["age"], s["age_pred"], s["low"], s["high"], s["bins"], s["bin_pred"])
    error = np.abs(s["age"] - s["age_pred"])
    assert report.mae == pytest.approx(skm.mean_absolute_error(s["age"], s["age_pred"]))
    assert report.rmse == pytest.approx(np.sqrt(skm.mean_squared_error(s["age"], s["age_pred"])))
    assert report.cs5 == pytest.approx((error <= 5).mean())
    assert report.interval_coverage == pytest.approx((error <= 7).mean())
    assert report.bin_accuracy == pytest.approx(skm.accuracy_score(s["bins"], s["bin_pred"]))
    assert report.bin_one_off_accuracy == pytest.approx((np.abs(s["bins"] - s["bin_pred"]) <= 1).mean())
    decades = pd.Series(error).groupby(np.minimum(s["age"] // 10, 9)).agg(["mean", "size"])
    assert [d.mae for d in report.mae_by_decade] == pytest.approx(decades["mean"].tolist())
    assert [d.n for d in report.mae_by_decade] == decades["size"].tolist()
    assert report.mae_by_decade[-1].decade == "90+"


def test_age_metrics_with_bins_only():
    """FairFace has bins, no years: the year metrics are NaN, the bin metrics still count."""
    nan = np.full(3, np.nan)
    report = metrics.age_metrics(nan, np.array([20.0, 30, 40]), nan, nan, np.array([3, 4, 4]), np.array([3, 4, 5]))
    assert np.isnan(report.mae) and report.mae_by_decade == ()
    assert report.bin_accuracy == pytest.approx(2 / 3) and report.bin_one_off_accuracy == 1.0


@pytest.fixture(scope="module")
def analysis(synthetic):
    s = synthetic
    groups = {
        "gender": pd.Categorical(np.array(labels.GENDERS)[s["gender"]], categories=labels.GENDERS),
        "race": [labels.RACES[r] if r >= 0 else None for r in s["race"]],
    }
    groups["tiny"] = np.where(np.arange(len(s["age"])) < 10, "few", "many")
    measured = metrics.head_group_metrics(s["gender"], s["gender_probs"], s["race"], s["race_probs"], s["age"],
                                          s["age_pred"], s["low"], s["high"], s["bins"], s["bin_pred"])
    return groups, metrics.group_metrics(measured, groups, min_size=30, n_boot=200, seed=1)


def test_group_values_match_fairlearn(synthetic, analysis):
    groups, result = analysis
    s = synthetic
    known = s["race"] >= 0
    frame = MetricFrame(metrics=skm.accuracy_score, y_true=s["race"][known], y_pred=s["race_probs"].argmax(1)[known],
                        sensitive_features=pd.Series(np.asarray(groups["gender"])[known], name="gender"))
    ours = {v.group: v for v in result.values if v.metric == "race.accuracy" and v.feature == "gender"}
    for group, value in frame.by_group.items():
        assert ours[group].value == pytest.approx(value)
        assert ours[group].n == (np.asarray(groups["gender"])[known] == group).sum()
    gap = next(g for g in result.gaps if g.metric == "race.accuracy" and g.feature == "gender")
    assert gap.difference == pytest.approx(frame.difference())
    assert gap.ratio == pytest.approx(frame.ratio())
    mae = MetricFrame(metrics=skm.mean_absolute_error, y_true=s["age"], y_pred=s["age_pred"],
                      sensitive_features=pd.Series(np.asarray(groups["gender"]), name="gender"))
    ours = {v.group: v.value for v in result.values if v.metric == "age.mae" and v.feature == "gender"}
    assert ours == pytest.approx(mae.by_group.to_dict())
    worst = next(g for g in result.gaps if g.metric == "age.mae" and g.feature == "gender")
    assert worst.worst == pytest.approx(mae.by_group.max())  # lower is better: the worst group has the largest MAE


def test_groups_keep_order_unknowns_and_small_groups(analysis):
    _, result = analysis
    race = [v for v in result.values if v.metric == "gender.accuracy" and v.feature == "race"]
    assert [v.group for v in race] == ["asian", "black", "indian", "others", "unknown", "white"]  # sorted, not category
    assert next(v for v in race if v.group == "unknown").small
    gender = [v.group for v in result.values if v.metric == "gender.accuracy" and v.feature == "gender"]
    assert gender == list(labels.GENDERS)  # categorical order
    few = next(v for v in result.values if v.feature == "tiny" and v.group == "few" and v.metric == "age.mae")
    assert few.small and few.n == 10  # flagged, not hidden
    assert not any(g.feature == "tiny" for g in result.gaps)  # one large group: nothing to compare
    race_gap = next(g for g in result.gaps if g.metric == "gender.accuracy" and g.feature == "race")
    assert race_gap.small_groups == ("unknown",) and race_gap.groups_compared == 5


def test_bootstrap_cis_are_seeded_and_plausible(synthetic, analysis):
    _, result = analysis
    for value in result.values:
        if not value.small and not np.isnan(value.value):
            assert value.ci_low <= value.value + 1e-9 and value.value - 1e-9 <= value.ci_high
    overall = next(v for v in result.values if v.metric == "gender.accuracy" and v.feature == "all")
    p, n = overall.value, overall.n
    assert overall.ci_high - overall.ci_low == pytest.approx(2 * 1.96 * np.sqrt(p * (1 - p) / n), rel=0.25)
    metric = metrics.GroupMetric("x", np.ones(50, int), np.ones(50, int), metrics._batched_accuracy)
    rows = np.arange(50)
    assert metrics.bootstrap_ci(metric, rows, np.random.default_rng(0)) == (1.0, 1.0)
    again = metrics.group_metrics(metrics.head_group_metrics(
        synthetic["gender"], synthetic["gender_probs"], synthetic["race"], synthetic["race_probs"], synthetic["age"],
        synthetic["age_pred"], synthetic["low"], synthetic["high"], synthetic["bins"], synthetic["bin_pred"])[:1],
        {}, seed=1)
    assert again.values[0] == overall


def test_head_summary_still_serves_training(synthetic):
    s = synthetic
    age_probs = np.zeros((3, labels.AGE_CLASSES))
    age_probs[:, 30] = 1
    summary = metrics.head_summary(s["gender"][:3], s["race"][:3], np.array([30.0, 31, np.nan]),
                                   {"gender": s["gender_probs"][:3], "race": s["race_probs"][:3], "age": age_probs})
    assert summary["age"]["mae"] == pytest.approx(0.5)
    assert summary["age"]["interval_coverage"] == pytest.approx(0.5)


def test_age_in_group_counts_ages_inside_the_perceived_groups_years():
    from facekit.evaluation.metrics import head_group_metrics

    groups = np.array([0, 3, 3, 1, -1])  # young_adult (0-34), senior (55+), senior, adult (25-54), unknown
    predicted = np.array([30.0, 60.0, 50.0, 54.0, 99.0])
    n = len(groups)
    found = head_group_metrics(np.zeros(n, int), np.full((n, 2), 0.5), np.zeros(n, int), np.full((n, 5), 0.2),
                               np.full(n, np.nan), predicted, predicted - 5, predicted + 5, np.full(n, -1),
                               np.zeros(n, int), groups)
    in_group = next(m for m in found if m.name == "age.in_group")
    known = in_group.y_true >= 0
    assert float(in_group.core(in_group.y_true[known], in_group.y_pred[known])) == 0.75  # the 50-year "senior" is out
    assert "age.in_group" not in {m.name for m in head_group_metrics(
        np.zeros(n, int), np.full((n, 2), 0.5), np.zeros(n, int), np.full((n, 5), 0.2), np.full(n, np.nan), predicted,
        predicted - 5, predicted + 5, np.full(n, -1), np.zeros(n, int))}
