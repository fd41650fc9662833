"""Every backbone behind one interface, end to end on real data: trained a few steps from random
initialisation on real UTKFace faces by the training loop, saved, loaded, predicting and explaining a
real photo, exported to ONNX with the same outputs and quantized to int8 with nearly the same."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import ASTRONAUT_FACE, CLI, REPO, box_iou, write_small_utkface

from facekit.explain import Explainer
from facekit.models.architectures import ARCHITECTURES, NO_WEIGHTS, WeightsMissing, build_backbone
from facekit.models.export import calibrate_int8, int8_ranges_path
from facekit.models.model import FaceModel, ModelConfig, load_checkpoint, to_batch
from facekit.predict import Predictor
from facekit.training.calibrate import mirrored_batches
from facekit.training.recipe import TrainConfig
from facekit.training.run import run
from facekit.vision.align import crop_face

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_utkface(tmp_path_factory, utkface_archive):
    return write_small_utkface(tmp_path_factory.mktemp("utk"), utkface_archive, train=4, val=2)


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_every_backbone_trains_saves_loads_predicts_explains_and_exports(name, small_utkface, tmp_path, monkeypatch,
                                                                        astronaut):
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path / "cache"))  # its own ONNX graph, nothing shared
    folder, split = small_utkface
    config = TrainConfig(data=str(folder), split=str(split), out=str(tmp_path / "run"), backbone=name,
                         weights=NO_WEIGHTS, detect=False, epochs=2, batch_size=2, warmup_epochs=0,
                         fp16_backbone=False)
    path = run(config, log=lambda _: None)

    history = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert len(history) == 2 and np.isfinite(history.filter(like="train_loss_")).all(axis=None)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    spec = ARCHITECTURES[name]
    assert (sidecar["config"]["backbone"], sidecar["config"]["weights"]) == (name, NO_WEIGHTS)
    assert sidecar["preprocessing"]["crop"]["size"] == spec.input_size
    assert sidecar["preprocessing"]["channels"] == spec.channels

    # The whole trained backbone is in the checkpoint: two loads agree, and differ from a fresh network.
    crops = to_batch([astronaut.resize((spec.input_size, spec.input_size))] * 2)
    first, second = load_checkpoint(path).model, load_checkpoint(path).model
    with torch.no_grad():
        a, b = first(crops), second(crops)
        torch.manual_seed(1)
        fresh = FaceModel(first.config).eval()(crops)
    assert all(torch.equal(a[head], b[head]) for head in a)
    assert not torch.allclose(a["gender"], fresh["gender"])

    torch_predictor = Predictor(path, engine="torch")
    predicted = torch_predictor.predict(astronaut)
    assert len(predicted.faces) == 1 and box_iou(predicted.faces[0].box, ASTRONAUT_FACE) > 0.5
    face = predicted.faces[0]
    assert sum(face.gender_probs.values()) == pytest.approx(1, abs=1e-5)
    assert face.age_low <= face.age <= face.age_high

    # Some head's map must show where it looked, unless four steps left every head saturated on this face
    # (batch-norm statistics of a barely trained deep network: a one-hot softmax has no gradient to map).
    explainer = Explainer(first)
    heats = [explainer.explain(astronaut, predicted.faces, head).faces[0].cam for head in ("gender", "race", "age")]
    assert all(heat.shape == (spec.input_size, spec.input_size) and np.isfinite(heat).all() for heat in heats)
    saturated = all(max(probs.values()) > 1 - 1e-6 for probs in (face.gender_probs, face.race_probs))
    assert any(heat.max() > heat.min() for heat in heats) or saturated

    exported = Predictor(path, engine="onnx").predict(astronaut).faces[0]
    for head in ("gender_probs", "race_probs"):
        ours, theirs = getattr(face, head), getattr(exported, head)
        assert max(abs(ours[k] - theirs[k]) for k in ours) < 1e-4
    assert exported.age == pytest.approx(face.age, abs=0.05)

    # Ranges measured on the face as the predictor cuts it and its mirror, as `facekit quantize` measures real crops.
    found = torch_predictor.detector(astronaut)
    face_crop = crop_face(astronaut, found.boxes[0], found.landmarks[0], first.config.crop)
    calibrate_int8(first, mirrored_batches([face_crop]), int8_ranges_path(path))
    quantized = Predictor(path, engine="int8").predict(astronaut).faces[0]
    assert max(abs(quantized.gender_probs[k] - face.gender_probs[k]) for k in face.gender_probs) < 0.05


def test_torchvision_weights_by_name_fail_in_one_line_without_internet(monkeypatch):
    def offline(*_, **__):
        raise OSError("network is unreachable")

    import torchvision.models._api

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)  # what get_state_dict calls
    with pytest.raises(WeightsMissing) as error:
        build_backbone("resnet18", "IMAGENET1K_V1")
    assert "\n" not in str(error.value) and "--weights none" in str(error.value)
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        build_backbone("resnet18", "IMAGENET9K")


def test_a_local_state_dict_initialises_a_backbone_and_a_wrong_one_is_refused(tmp_path):
    torch.manual_seed(0)
    source = build_backbone("resnet18", NO_WEIGHTS)
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "r18.pth")
    loaded = build_backbone("resnet18", str(tmp_path / "r18.pth"))
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in source.state_dict().items())
    with pytest.raises(ValueError, match="does not fit"):
        build_backbone("resnet50", str(tmp_path / "r18.pth"))


def test_seed002_recipe_runs_from_a_kaggle_csv_facekit_wrote(utkface_archive, tmp_path):
    """The seed-002 recipe as CI can afford it: its own Kaggle-format CSV from real UTKFace faces, a few steps."""
    folder, _ = write_small_utkface(tmp_path, utkface_archive, train=96, val=0)
    csv = tmp_path / "age_gender.csv"
    written = subprocess.run([*CLI, "data", "kaggle-csv", "--source", str(folder), "--split", "all",
                              "--out", str(csv)], capture_output=True, text=True)
    assert written.returncode == 0, written.stderr
    out = tmp_path / "run"
    trained = subprocess.run([*CLI, "train", "--config", str(REPO / "training" / "seed002_cnn48.yaml"),
                              "--set", f"data={csv}", "--set", f"out={out}", "--set", "epochs=2",
                              "--set", "batch_size=32", "--set", "workers=0", "--set", "limit=64"],
                             capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr[-2000:]
    loaded = load_checkpoint(out / "model.safetensors")
    assert (loaded.model.config.backbone, loaded.model.config.channels) == ("small_cnn", 1)
    assert (loaded.model.config.gender_head, loaded.model.config.age_head) == ("sigmoid", "regression")
    split = pd.read_csv(next((out / "splits").glob("*.csv")))  # seeded: the Kaggle file has no committed split
    assert len(split) == 96 and {"train", "val"} <= set(split["split"])
    evaluated = subprocess.run([*CLI, "evaluate", "--model", str(out / "model.safetensors"), "--data", str(csv),
                                "--split", "all", "--crop", "archive", "--out", str(tmp_path / "eval")],
                               capture_output=True, text=True)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    summary = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert summary["gender"]["n"] == 96 and summary["age"]["mae"] > 0


def test_an_age_group_head_puts_each_group_mass_inside_its_years():
    config = ModelConfig(backbone="small_cnn", weights=NO_WEIGHTS, trainable_from="block1", age_head="groups",
                         age_groups=(("YOUNG", 0, 29), ("MIDDLE", 30, 59), ("OLD", 60, 130)))
    model = FaceModel(config).eval()
    with torch.no_grad():
        raw = {"gender": torch.zeros(1, 2), "race": torch.zeros(1, 7), "age": torch.tensor([[0.0, 3.0, 0.0]])}
        years = torch.softmax(model.heads.logits(raw)["age"], 1)[0]
    share = torch.softmax(torch.tensor([0.0, 3.0, 0.0]), 0)
    assert float(years[:30].sum()) == pytest.approx(float(share[0]), rel=1e-5)
    assert float(years[30:60].sum()) == pytest.approx(float(share[1]), rel=1e-5)
    assert float(years[60:].sum()) == pytest.approx(float(share[2]), rel=1e-5)
    with pytest.raises(ValueError, match="gaps"):
        ModelConfig(age_head="groups", age_groups=(("YOUNG", 0, 29), ("OLD", 31, 130)))


def test_seed003_recipe_trains_age_groups_on_a_faces_folder_and_evaluate_scores_them(utkface_archive, tmp_path):
    """Seed 003's layout written from real UTKFace faces, the age-group recipe fine-tuned from the shipped model
    for a few steps, and `facekit evaluate` reporting the model's own groups with per-class precision/recall."""
    source, _ = write_small_utkface(tmp_path, utkface_archive, train=24, val=0)
    faces = tmp_path / "faces"
    written = subprocess.run([*CLI, "data", "seed003-folder", "--source", str(source), "--split", "all",
                              "--out", str(faces)], capture_output=True, text=True)
    assert written.returncode == 0, written.stderr
    table = pd.read_csv(faces / "labels.csv")
    assert list(table.columns) == ["ID", "Class"] and set(table["Class"]) <= {"YOUNG", "MIDDLE", "OLD"}
    assert len(table) == 24 and all((faces / "final_files" / name).is_file() for name in table["ID"])

    out = tmp_path / "run"
    trained = subprocess.run([*CLI, "train", "--config", str(REPO / "training" / "seed003_age_groups.yaml"),
                              "--set", f"data={faces}", "--set", f"out={out}", "--set", "epochs=1",
                              "--set", "batch_size=8", "--set", "workers=0"], capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr[-2000:]
    model = load_checkpoint(out / "model.safetensors").model
    assert model.config.age_group_labels == ("YOUNG", "MIDDLE", "OLD")

    evaluated = subprocess.run([*CLI, "evaluate", "--model", str(out / "model.safetensors"), "--data", str(faces),
                                "--split", "all", "--crop", "archive", "--out", str(tmp_path / "eval")],
                               capture_output=True, text=True)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    summary = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    groups = summary["age_class"]
    assert groups["n"] == 24 and 0 <= groups["accuracy"] <= 1
    assert [c["label"] for c in groups["per_class"]] == ["YOUNG", "MIDDLE", "OLD"]
    support = dict(zip(*np.unique(table["Class"], return_counts=True)))
    assert {c["label"]: c["support"] for c in groups["per_class"]} == {k: support.get(k, 0) for k in
                                                                      ("YOUNG", "MIDDLE", "OLD")}
    assert "gender" not in summary  # the folder labels age groups only
    assert "accuracy on the model's age groups" in evaluated.stdout  # the headline, with its interval
