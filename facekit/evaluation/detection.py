"""How many of a photo's faces the detector finds, by face size: recall, precision and false boxes.

The truth is a CSV of face boxes (``photo, x, y, w, h``, e.g. wider-dev's ``photos.csv``, which
lists every WIDER face, labelled or not). Detections are matched to true faces greedily by IoU
(the highest overlaps first, each box used once); a detection that matches no true face is a
false box, a true face that no detection matches is missed. Sizes are the true face's height
in the original photo.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from facekit.labels import FACE_SIZES, face_size_group
from facekit.vision.detect import DetectorSettings, FaceDetector, box_iou

MATCH_IOU = 0.4
FORMAT = "facekit-detection/1"


def match(detected: np.ndarray, truth: np.ndarray, threshold: float = MATCH_IOU) -> tuple[np.ndarray, int]:
    """Greedy IoU matching: which true faces were found (bool per true box), and how many detections matched."""
    found = np.zeros(len(truth), bool)
    if len(detected) == 0 or len(truth) == 0:
        return found, 0
    overlaps = np.stack([box_iou(detected, box) for box in truth])  # (truth, detected)
    used = np.zeros(len(detected), bool)
    for flat in np.argsort(-overlaps, axis=None):
        t, d = np.unravel_index(flat, overlaps.shape)
        if overlaps[t, d] < threshold:
            break
        if not found[t] and not used[d]:
            found[t], used[d] = True, True
    return found, int(used.sum())


@dataclass(frozen=True)
class SizeRecall:
    size: str
    faces: int
    found: int

    @property
    def recall(self) -> float | None:
        return self.found / self.faces if self.faces else None


@dataclass
class DetectionReport:
    """Detection quality on a set of photos with every face's box."""

    photos: int
    faces: int
    detections: int
    matched: int
    by_size: list[SizeRecall]
    seconds_per_photo: float
    settings: dict
    source: str = ""
    unreadable: list[str] = field(default_factory=list)
    created: str = ""  # when and by which command it was made, as evaluation reports record it
    command: str = ""

    @property
    def false_boxes_per_photo(self) -> float:
        return (self.detections - self.matched) / max(self.photos, 1)

    @property
    def precision(self) -> float | None:
        return self.matched / self.detections if self.detections else None

    def recall_at_least(self, height: float) -> float | None:
        """Recall over the faces of the size groups starting at ``height`` px or more."""
        groups = [s for s, (low, _, _) in zip(self.by_size, FACE_SIZES) if low >= height]
        faces = sum(s.faces for s in groups)
        return sum(s.found for s in groups) / faces if faces else None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["format"] = FORMAT
        data["by_size"] = [{**asdict(s), "recall": s.recall} for s in self.by_size]
        data.update(precision=self.precision, false_boxes_per_photo=self.false_boxes_per_photo,
                    recall_40_px_and_more=self.recall_at_least(40))
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "DetectionReport":
        """The report ``to_dict`` wrote; ValueError for another format."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a detection report (format {data.get('format')!r}, expected {FORMAT!r})")
        sizes = [SizeRecall(s["size"], int(s["faces"]), int(s["found"])) for s in data["by_size"]]
        return cls(photos=data["photos"], faces=data["faces"], detections=data["detections"], matched=data["matched"],
                   by_size=sizes, seconds_per_photo=data["seconds_per_photo"], settings=data["settings"],
                   source=data.get("source", ""), unreadable=list(data.get("unreadable", [])),
                   created=data.get("created", ""), command=data.get("command", ""))

    def table(self) -> pd.DataFrame:
        """Recall by face height, as the report and the page show it."""
        return pd.DataFrame([{"face height": s.size, "faces": s.faces, "found": s.found, "recall": s.recall}
                             for s in self.by_size])


DETECTION_FILE = "detection.json"


def load_detection(folder: Path) -> DetectionReport:
    """The detection report saved in ``folder``; FileNotFoundError / ValueError with a one-line reason."""
    import json

    path = Path(folder) / DETECTION_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no detection report in {folder} (need {DETECTION_FILE})")
    try:
        return DetectionReport.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a complete detection report ({error!r})") from None


def read_boxes(path: Path) -> pd.DataFrame:
    """A face-box CSV as rows of photo, image path, x1, y1, x2, y2 and the face's height."""
    from facekit.data.wider import read_wider_photos

    frame = read_wider_photos(path)
    frame["x2"], frame["y2"] = frame["x"] + frame["w"], frame["y"] + frame["h"]
    frame = frame.rename(columns={"x": "x1", "y": "y1"})
    return frame


def evaluate_detection(boxes: pd.DataFrame, settings: DetectorSettings = DetectorSettings(), source: str = "",
                       log=lambda _: None) -> DetectionReport:
    """Run the detector on each photo of ``boxes`` (``read_boxes``) and match its faces to the true ones."""
    from facekit.vision.io import ImageError, load_image

    detector = FaceDetector(settings)
    sizes = {name: [0, 0] for _, _, name in FACE_SIZES}
    photos = detections = matched = 0
    unreadable: list[str] = []
    seconds = 0.0
    for number, (photo, faces) in enumerate(boxes.groupby("photo", sort=True)):
        image_path = faces["image"].iloc[0]
        try:
            image = load_image(Path(image_path).read_bytes()) if image_path else None
        except (ImageError, OSError):
            image = None
        if image is None:
            unreadable.append(str(photo))
            continue
        started = time.perf_counter()
        found = detector(image)
        seconds += time.perf_counter() - started
        truth = faces[["x1", "y1", "x2", "y2"]].to_numpy(float)
        hit, used = match(found.boxes, truth)
        for height, ok in zip(faces["h"], hit):
            group = sizes[face_size_group(float(height))]
            group[0] += 1
            group[1] += int(ok)
        photos, detections, matched = photos + 1, detections + len(found), matched + used
        log(f"{number + 1} photos, {matched}/{sum(g[0] for g in sizes.values())} faces found")
    return DetectionReport(photos=photos, faces=sum(g[0] for g in sizes.values()), detections=detections,
                           matched=matched, by_size=[SizeRecall(name, *sizes[name]) for _, _, name in FACE_SIZES],
                           seconds_per_photo=seconds / max(photos, 1), settings=settings.to_dict(), source=source,
                           unreadable=unreadable)
