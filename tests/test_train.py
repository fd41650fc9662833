"""The training loop on synthetic features: losses for every kind of label, resume, a killed
checkpoint, and two DDP ranks agreeing."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from facekit import labels
from facekit.models.backbones import build_inception_resnet_v1
from facekit.models.model import FEATURE_SIZE, FaceModel, ModelConfig
from facekit.training import checkpoint
from facekit.training.loop import fit
from facekit.training.recipe import TrainConfig
from facekit.training.targets import Targets, age_targets, multitask_loss, race_sets

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def synthetic(faces: int = 96, seed: int = 0) -> tuple[np.ndarray, Targets]:
    """Pooled-feature-shaped inputs whose first dimensions carry the labels, so training can learn."""
    rng = np.random.default_rng(seed)
    gender = rng.integers(0, 2, faces)
    race = rng.integers(0, len(labels.RACE7), faces)
    allowed = np.eye(len(labels.RACE7), dtype=bool)[race]
    allowed[::7] = False  # unknown ethnicity, as UTKFace has
    age = rng.uniform(1, 80, faces)
    x = rng.normal(size=(faces, 2, FEATURE_SIZE)).astype(np.float32)
    x[:, :, :32] += 2 * gender[:, None, None]
    x[:, :, 32:64] += race[:, None, None]
    x[:, :, 64:96] += age[:, None, None] / 20
    return x, Targets(gender, allowed, age, np.full((faces, 2), np.nan), np.zeros(faces, np.int64),
                      np.full(faces, -1, np.int64))


def heads_model() -> FaceModel:
    torch.manual_seed(0)
    return FaceModel(ModelConfig(), backbone=build_inception_resnet_v1())


def test_age_target_is_a_distribution_peaking_at_the_age():
    target = age_targets(torch.tensor([0.0, 37.0, 150.0]), sigma=2.0)
    assert torch.allclose(target.sum(1), torch.ones(3))
    assert target.argmax(1).tolist() == [0, 37, labels.AGE_MAX]


def _outputs(n: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"gender": torch.randn(n, 2, requires_grad=True), "race": torch.randn(n, 7, requires_grad=True),
            "age": torch.randn(n, labels.AGE_CLASSES, requires_grad=True)}


def test_unknown_labels_are_masked_out_of_the_loss():
    outputs = _outputs(4)
    nan = float("nan")
    loss, parts = multitask_loss(outputs, torch.tensor([0, 1, 0, 1]), torch.zeros(4, 7, dtype=torch.bool),
                                 torch.tensor([20.0, 30, nan, 40]), torch.full((4, 2), nan), torch.full((4,), -1),
                                 TrainConfig(), {})
    loss.backward()
    assert "race" not in parts and np.isfinite(float(loss.detach()))
    assert outputs["race"].grad is None or float(outputs["race"].grad.abs().sum()) == 0.0
    assert float(outputs["age"].grad[2].abs().sum()) == 0.0  # the face without an age
    assert float(outputs["age"].grad[0].abs().sum()) > 0.0


def test_a_coarse_ethnicity_label_trains_the_sum_of_its_classes():
    import pandas as pd

    frame = pd.DataFrame({"race": ["asian", "others", "white", None], "race7": [None, None, None, "indian"]})
    allowed = race_sets(frame, labels.RACE7)
    names = [[labels.RACE7[i] for i in np.flatnonzero(row)] for row in allowed]
    assert names == [["east_asian", "southeast_asian"], ["latino_hispanic", "middle_eastern"], ["white"], ["indian"]]
    outputs = _outputs(1)
    nan = float("nan")
    _, parts = multitask_loss(outputs, torch.tensor([-1]), torch.from_numpy(allowed[:1]), torch.tensor([nan]),
                              torch.full((1, 2), nan), torch.tensor([-1]), TrainConfig(), {})
    probs = torch.softmax(outputs["race"][0], 0)
    assert parts["race"] == pytest.approx(-float(torch.log(probs[3] + probs[4])), rel=1e-5)


def test_an_age_range_trains_the_mass_inside_it():
    outputs = _outputs(1)
    _, parts = multitask_loss(outputs, torch.tensor([-1]), torch.zeros(1, 7, dtype=torch.bool),
                              torch.tensor([float("nan")]), torch.tensor([[20.0, 29.0]]), torch.tensor([-1]),
                              TrainConfig(), {})
    mass = torch.softmax(outputs["age"][0], 0)[20:30].sum()
    assert parts["age"] == pytest.approx(-float(torch.log(mass)), rel=1e-5)


def test_seed002_heads_learn_by_binary_cross_entropy_and_squared_error_of_the_years():
    torch.manual_seed(0)
    z, years = torch.randn(3, 1), torch.randn(3, 1)
    outputs = {"gender": z, "race": torch.randn(3, 5), "age": years}
    nan = float("nan")
    config = TrainConfig(gender_head="sigmoid", age_head="regression")
    _, parts = multitask_loss(outputs, torch.tensor([1, 0, -1]), torch.zeros(3, 5, dtype=torch.bool),
                              torch.tensor([35.0, 75.0, nan]), torch.full((3, 2), nan), torch.full((3,), -1),
                              config, {})
    expected_bce = -(np.log(torch.sigmoid(z[0, 0]).item()) + np.log(1 - torch.sigmoid(z[1, 0]).item())) / 2
    assert parts["gender"] == pytest.approx(expected_bce, rel=1e-5)
    # years are learnt in units of AGE_SPREAD around AGE_CENTRE; the face without an age is left out
    assert parts["age"] == pytest.approx(((years[0, 0].item() - 0) ** 2 + (years[1, 0].item() - 2) ** 2) / 2, rel=1e-5)


def test_an_age_group_head_learns_by_cross_entropy_of_the_group_and_skips_faces_without_one():
    outputs = {"gender": torch.zeros(2, 2), "race": torch.zeros(2, 5), "age": torch.tensor([[2.0, 0.0, 0.0],
                                                                                          [0.0, 0.0, 0.0]])}
    nan = float("nan")
    config = TrainConfig(age_head="groups", age_groups=[["YOUNG", 0, 29], ["MIDDLE", 30, 59], ["OLD", 60, 130]])
    _, parts = multitask_loss(outputs, torch.tensor([-1, -1]), torch.zeros(2, 5, dtype=torch.bool),
                              torch.tensor([nan, nan]), torch.full((2, 2), nan), torch.tensor([0, -1]), config, {})
    assert parts["age"] == pytest.approx(-float(torch.log_softmax(torch.tensor([2.0, 0.0, 0.0]), 0)[0]), rel=1e-5)


def test_a_corrupt_last_checkpoint_falls_back_to_the_previous_one(tmp_path):
    checkpoint.save_last(tmp_path, {"state": 1})
    checkpoint.save_last(tmp_path, {"state": 2})
    assert checkpoint.load_last(tmp_path)["state"] == 2
    (tmp_path / checkpoint.LAST).write_bytes((tmp_path / checkpoint.LAST).read_bytes()[:40])  # killed mid-write
    said = []
    assert checkpoint.load_last(tmp_path, said.append)["state"] == 1
    assert "cannot read" in said[0] and "previous" in said[0]


def test_training_learns_and_resume_matches_an_uninterrupted_run(tmp_path):
    x, targets = synthetic()
    rows = np.arange(len(x))
    config = TrainConfig(out=str(tmp_path / "straight"), epochs=4, batch_size=16, lr=3e-3, patience=10)
    straight = heads_model()
    result = fit(straight, x, "repeat_2", targets, rows[:72], rows[72:], config, log=lambda _: None)
    assert result.validation[0]["gender_accuracy"] >= 0.8  # the signal is strong: chance is 0.5

    # 4 steps per epoch: stop in the middle of the second epoch, then twice more mid-way.
    interrupted = TrainConfig(**{**config.__dict__, "out": str(tmp_path / "resumed"), "session_steps": 6,
                                 "checkpoint_every": 0})
    first = fit(heads_model(), x, "repeat_2", targets, rows[:72], rows[72:], interrupted, log=lambda _: None)
    assert not first.finished
    assert (tmp_path / "resumed" / "metrics.csv").read_text().count("\n") == 2  # header + 1 epoch
    for _ in range(2):
        resumed = heads_model()
        done = fit(resumed, x, "repeat_2", targets, rows[:72], rows[72:], interrupted, resume=True,
                   log=lambda _: None)
    assert done.finished
    assert (tmp_path / "resumed" / "metrics.csv").read_text().count("\n") == 5  # header + 4 epochs
    for key, value in straight.heads.state_dict().items():
        assert torch.allclose(value.float(), resumed.heads.state_dict()[key].float(), atol=1e-5), key


def test_a_last_epoch_cut_short_is_validated_and_kept(tmp_path):
    x, targets = synthetic()
    rows = np.arange(len(x))
    config = TrainConfig(out=str(tmp_path / "cut"), epochs=2, batch_size=16, stop_after_steps=2, patience=10)
    result = fit(heads_model(), x, "repeat_2", targets, rows[:72], rows[72:], config, log=lambda _: None)
    assert result.finished and result.best_epoch >= 1
    history = json.loads((tmp_path / "cut" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]  # the first epoch whole (4 steps), the last one 2 steps long


def test_two_ddp_ranks_end_with_the_same_parameters(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(textwrap.dedent(f"""
        import sys, torch, torch.distributed as dist
        sys.path.insert(0, {str(REPO / 'tests')!r})
        from test_train import synthetic, heads_model
        from facekit.training.loop import fit
        from facekit.training.recipe import TrainConfig
        import numpy as np
        x, targets = synthetic()
        rows = np.arange(len(x))
        model = heads_model()
        fit(model, x, "repeat_2", targets, rows[:72], rows[72:],
            TrainConfig(out={str(tmp_path / 'run')!r}, epochs=2, batch_size=8), log=lambda _: None)
        torch.save(model.heads.state_dict(), {str(tmp_path)!r} + f"/rank{{dist.get_rank()}}.pt")
        dist.destroy_process_group()
    """))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    first, second = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    start = heads_model().heads.state_dict()
    assert any(not torch.equal(first[k], start[k]) for k in first)  # training moved the weights
    for key in first:
        assert torch.allclose(first[key].float(), second[key].float(), atol=1e-6), key


def test_curves_read_the_same_from_a_run_folder_its_csv_and_its_json(tmp_path):
    import json

    import pandas as pd

    from facekit.training.history import CURVES_FILE, HISTORY_FILE, curve_groups, read_curves

    rows = [{"epoch": 2, "train_loss_age": 2.0, "val_utkface_gender_accuracy": 0.9, "val_utkface_age_mae": 4.5,
             "val_score": 0.5}, {"epoch": 1, "train_loss_age": 3.0, "val_utkface_gender_accuracy": 0.8,
                                 "val_utkface_age_mae": 5.0, "val_score": 0.6}]
    (tmp_path / HISTORY_FILE).write_text(json.dumps(rows))
    from_json = read_curves(tmp_path)
    assert list(from_json["epoch"]) == [1, 2]  # in epoch order
    from_json.to_csv(tmp_path / CURVES_FILE, index=False)
    pd.testing.assert_frame_equal(read_curves(tmp_path), from_json)
    assert curve_groups(from_json) == {"losses": ["train_loss_age"], "validation": ["val_utkface_gender_accuracy"],
                                       "other": ["val_utkface_age_mae", "val_score"]}
    with pytest.raises(FileNotFoundError, match="no training curves"):
        read_curves(tmp_path / "nothing")
