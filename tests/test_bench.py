"""`facekit bench` on three photos: the result's structure and sanity, never timing thresholds
(timings depend on the machine's load), and no peer or app (their set-up is slow)."""
from __future__ import annotations

import json

import pytest

from facekit.tools import bench
from facekit.data.paths import locate_utkface
from facekit.models.model import DEFAULT_MODEL

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="the shipped model is missing")]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return bench.make_photos(tmp_path_factory.mktemp("bench-photos"), utkface=1, astronaut=2)


def test_photos_are_labelled_640px_and_reused(photos):
    from PIL import Image

    kinds = [photo.kind for photo in photos]
    assert kinds.count("astronaut") == 2 and kinds.count("utkface") == (locate_utkface() is not None)
    for photo in photos:
        with Image.open(photo.path) as image:
            assert max(image.size) == bench.PHOTO_SIDE
        assert photo.gender in ("male", "female")
    assert bench.make_photos(photos[0].path.parent) == photos  # the folder is reused, labels and all


def test_quality_rates():
    quality = bench.Quality.of(["male", "female", "female", "male"], ["male", None, "male", "male"])
    assert (quality.face_found_rate, quality.gender_accuracy, quality.gender_correct_rate) == (0.75, 0.6667, 0.5)
    assert bench.Quality.of(["male"], [None]).gender_accuracy == 0.0


def test_run_bench_result(photos):
    other = DEFAULT_MODEL.with_name("facekit-utkface.safetensors")
    result = bench.run_bench(photos[0].path.parent, peer=False, app=None, big_batch=4, other_model=other,
                             group_photos=2, neighbour=True)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["photos"]["astronaut"] == 2 and data["big_batch"] == 4
    assert result.model_load_s > 0 and result.peak_rss_mb > 0 and result.folder_faces_per_s > 0
    for stats in (result.detect_ms_per_image, result.model_ms_per_face_batch1, result.model_ms_per_face_big_batch,
                  result.end_to_end):
        assert 0 < stats.p50_ms <= stats.p95_ms and stats.n > 0
    if locate_utkface() is not None:
        assert result.quality.photos == 1
        assert 0 <= result.quality.face_found_rate <= 1 and 0 <= result.quality.gender_accuracy <= 1
    assert result.peer is None and result.app_cold_start_s is None
    assert {t.name for t in result.targets} == {"end-to-end p50 (ms)", "folder throughput (faces/s)",
                                                "model time per face / facekit-utkface.safetensors's (p50)",
                                                "end-to-end p50 beside a CPU-bound neighbour / idle"}
    assert result.end_to_end_with_neighbour.n == len(photos)
    assert result.compared_model.other_ms_per_face_batch1.n == 5 and result.compared_model.ratio > 0
    if bench.group_photo_paths(2):  # wider-dev is on this machine
        group = result.group_photos
        assert group.photos == 2 and group.faces_found > 0 and group.ms_per_face > 0 and group.peer_per_photo is None
        assert "group photos (2 of wider-dev's" in bench.report_text(result)
    assert len(result.machine.load_start) == len(result.machine.load_end) == 3 and result.machine.cores > 0
    text = bench.report_text(result)
    assert "load average" in text and ("MISS" in text or "pass" in text)


def test_peer_failure_is_recorded_not_raised(photos, tmp_path):
    result = bench.measure_peer(photos, python=tmp_path / "no-such-python")
    assert not result.ok and "no-such-python" in result.error
