"""The ONNX graph gives the PyTorch model's outputs, and the two engines give the same predictions."""
from __future__ import annotations

import pytest
import torch

from conftest import ASTRONAUT_FACE, box_iou
from facekit.align import crop_face
from facekit.export import model_digest, onnx_model
from facekit.model import to_batch
from facekit.predict import Predictor

pytestmark = pytest.mark.slow


def test_onnx_graph_matches_pytorch_on_real_crops(predictor, astronaut):
    found = predictor.detector.detect([astronaut])[0]
    crop = crop_face(astronaut, found.boxes[0], found.landmarks[0], predictor.model.config.crop)
    batch = to_batch([crop, crop.rotate(10), crop.transpose(0)])  # three different inputs, batch of 3
    graph = onnx_model(predictor.model)
    with torch.inference_mode():
        expected = predictor.model(batch)
    actual = graph(batch)
    for head in expected:
        assert actual[head].shape == expected[head].shape
        assert torch.allclose(actual[head], expected[head], atol=1e-4), head


def test_the_graph_is_keyed_by_the_weights(predictor):
    digest = model_digest(predictor.model)
    changed = Predictor(engine="torch").model
    with torch.no_grad():
        changed.heads.gender.bias.add_(0.5)
    assert model_digest(changed) != digest


def test_engines_agree_on_the_astronaut(predictor, astronaut):
    assert predictor.engine == "onnx"
    torch_face = Predictor(engine="torch").predict(astronaut).faces[0]
    onnx_face = predictor.predict(astronaut).faces[0]
    assert box_iou(onnx_face.box, ASTRONAUT_FACE) > 0.6
    assert (onnx_face.gender, onnx_face.race) == (torch_face.gender, torch_face.race)
    assert onnx_face.gender_probs["female"] == pytest.approx(torch_face.gender_probs["female"], abs=1e-4)
    assert onnx_face.age == pytest.approx(torch_face.age, abs=0.1)


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="engine must be one of"):
        Predictor(engine="tensorrt")
