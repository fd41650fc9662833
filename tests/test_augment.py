"""Image-mode training on real UTKFace chips (non-commercial research use only): the crops
and their augmentation, and a recipe with ``images: true`` from cache to loadable checkpoint."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import write_small_utkface
import torch
from safetensors.torch import load_file

from facekit import labels
from facekit.vision.align import CropSettings, crop_face, resize_chip
from facekit.training.augment import ChipFaces, Chips
from facekit.training.presets import context_settings
from facekit.models.backbones import MS_CELEB, weights_path
from facekit.models.model import load_checkpoint, to_batch
from facekit.training.recipe import TrainConfig
from facekit.training.run import run
from facekit.training.targets import Targets, table_targets


@pytest.fixture(scope="module")
def chips(utkface_archive, detector) -> tuple[Chips, Targets]:
    """Six real chips with their MTCNN detections, in the shape of a feature cache's index."""
    from facekit.data import load_split, read_image_bytes, read_utkface
    from facekit.vision.io import load_image

    frame = load_split(read_utkface(utkface_archive)).frame.head(6)
    rows = []
    for found, image in zip(detector.detect([load_image(read_image_bytes(ref)) for ref in frame["image"]]),
                            frame["image"]):
        assert len(found), image
        rows.append({"box": json.dumps(found.boxes[0].tolist()), "landmarks": json.dumps(found.landmarks[0].tolist())})
    index = pd.concat([frame[["file"]].reset_index(drop=True), pd.DataFrame(rows)], axis=1)
    return (Chips.from_index(index, dict(zip(frame["file"], frame["image"])), CropSettings()),
            table_targets(frame, list(frame["file"]), labels.RACE7))


def test_context_crop_holds_the_plain_crop_at_its_centre(chips):
    source, _ = chips
    context = context_settings(source.crop)
    pad = (context.size - source.crop.size) // 2
    wide = np.asarray(source.load(0, context), np.int16)
    plain = np.asarray(source.load(0, source.crop), np.int16)
    assert wide.shape == (context.size, context.size, 3) and pad > 0
    assert np.abs(wide[pad:-pad, pad:-pad] - plain).max() <= 1  # the same warp, rounding apart


def test_training_views_are_random_and_seeded_validation_views_are_fixed(chips):
    source, targets = chips
    train = ChipFaces(source, np.arange(6), targets, train=True)
    torch.manual_seed(0)
    first = train[0][0]
    torch.manual_seed(1)
    other = train[0][0]
    torch.manual_seed(0)
    again = train[0][0]
    assert first.shape == (3, 160, 160) and first.dtype == torch.float32
    assert abs(float(first.mean())) < 1e-4 and abs(float(first.std()) - 1) < 1e-2  # standardized
    assert float((first - other).abs().mean()) > 0.05  # another epoch, another view
    assert torch.equal(first, again)  # seeded, so a resumed run draws the same views

    val = ChipFaces(source, np.arange(6), targets, train=False)
    x, gender, race, age, age_range, age_class = val[2]
    plain = crop_face(*_image_box_landmarks(source, 2))
    assert torch.equal(x, torch.cat([to_batch([plain]), to_batch([plain], flip=True)]))
    assert torch.equal(val[2][0], x)
    assert (gender, age) == (targets.gender[2], targets.age[2])
    assert race.tolist() == targets.race[2].tolist() and race.sum() >= 1  # the 7 classes its label allows
    assert torch.isnan(age_range).all()  # UTKFace gives years, not a range
    assert age_class == -1  # no age-group head


def _image_box_landmarks(source: Chips, row: int):
    from facekit.data import read_image_bytes
    from facekit.vision.io import load_image

    return load_image(read_image_bytes(source.images[row])), source.boxes[row], source.landmarks[row], source.crop


@pytest.fixture()
def small_utkface(tmp_path, utkface_archive):
    return write_small_utkface(tmp_path, utkface_archive, train=8, val=4)


def test_image_recipe_resumes_trains_a_block_and_saves_a_loadable_checkpoint(small_utkface, tmp_path, monkeypatch):
    weights = weights_path(MS_CELEB)
    (tmp_path / "cache").mkdir()
    shutil.copy(weights, tmp_path / "cache" / weights.name)
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path / "cache"))
    folder, split = small_utkface
    config = TrainConfig(data=str(folder), split=str(split), out=str(tmp_path / "run"), images=True,
                         trainable_from="block8", epochs=2, batch_size=4, backbone_lr=1e-3, workers=1,
                         crop_size=128, session_steps=3)  # 2 steps per epoch: the budget ends inside epoch 2
    stopped = run(config, log=lambda _: None)
    assert stopped.name == "last.pt" and len(pd.read_csv(tmp_path / "run" / "metrics.csv")) == 1
    path = run(config, resume=True, log=lambda _: None)

    loaded = load_checkpoint(path)
    assert loaded.metadata["training"]["config"]["images"] is True
    assert loaded.model.config.crop.size == 128  # the input size the run trained at is the one inference uses
    assert len(pd.read_csv(tmp_path / "run" / "metrics.csv")) == 2
    saved = load_file(str(path))
    pretrained = load_file(str(weights))
    conv = "backbone.block8.conv2d.weight"
    assert saved[conv].dtype == torch.float16  # fine-tuned blocks ship in half precision
    assert not torch.allclose(saved[conv].float(), pretrained[conv.removeprefix("backbone.")].float(), atol=1e-3)
    assert not any(k.startswith("backbone.repeat_3") for k in saved)  # frozen blocks are not stored
    from facekit.vision.io import load_image

    chip = resize_chip(load_image(sorted(folder.iterdir())[0]), loaded.model.config.crop)
    with torch.inference_mode():
        out = loaded.model(to_batch([chip]))
    assert torch.allclose(torch.softmax(out["gender"], 1).sum(1), torch.ones(1))
    with pytest.raises(ValueError, match="needs images"):
        run(TrainConfig(data=str(folder), split=str(split), out=str(tmp_path / "cached"), crop_size=128))


def test_real_photo_augmentation_degrades_a_real_face_and_stays_standardized(chips):
    from torchvision.transforms import v2

    from facekit.training.presets import Shrink, TrainPreset

    source, _ = chips
    preset = TrainPreset(source.crop, "real_photos")
    face = source.load(0, preset.crop)
    torch.manual_seed(0)
    views = torch.stack([preset(face) for _ in range(24)])
    assert views.shape == (24, 3, 160, 160)
    assert views.mean(dim=(1, 2, 3)).abs().max() < 1e-3  # each view standardized
    plain = TrainPreset(source.crop)
    torch.manual_seed(0)
    standard = torch.stack([plain(face) for _ in range(24)])
    assert (views - standard).abs().mean() > 0.05  # the same draws, degraded
    # a shrunk face loses its fine detail: neighbouring pixels differ less
    pixels = v2.functional.pil_to_tensor(source.load(0, source.crop)).float()
    shrunk = Shrink(source.crop.size)(pixels)
    detail = lambda v: (v[..., 1:] - v[..., :-1]).abs().mean()  # noqa: E731
    assert shrunk.shape == pixels.shape and detail(shrunk) < detail(pixels)
    with pytest.raises(ValueError, match="augmentation is one of"):
        TrainPreset(source.crop, "cartoon")
