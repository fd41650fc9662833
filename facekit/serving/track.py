"""Following faces across video frames, and one answer per face followed.

A greedy IoU tracker: each new detection joins the unmatched track whose last box overlaps
it most (at least ``min_iou``), otherwise it starts a track; a track that goes unseen for
more than ``max_missed`` updates is closed. That is enough for video files and the live page,
where frames are close in time; faces that cross each other may swap tracks.
``summarize_track`` turns a track's per-frame predictions into one row: mean class
probabilities, the median expected age and an 80% interval from the averaged age distribution.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from facekit import labels
from facekit.predict import FacePrediction

Box = tuple[float, float, float, float]


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class Track:
    """One face followed through time: every prediction made of it, with when it was made."""

    id: int
    times: list[float] = field(default_factory=list)
    faces: list[FacePrediction] = field(default_factory=list)
    missed: int = 0  # updates since the face was last seen

    @property
    def box(self) -> Box:
        return self.faces[-1].box

    @property
    def latest(self) -> FacePrediction:
        return self.faces[-1]


class IoUTracker:
    """Greedy IoU matching of each frame's faces to the open tracks."""

    def __init__(self, min_iou: float = 0.3, max_missed: int = 5) -> None:
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.open: list[Track] = []
        self.closed: list[Track] = []
        self._next_id = 1  # numbered from 1, as faces are on the Predict page

    def update(self, faces: Sequence[FacePrediction], time: float) -> list[int]:
        """Add one frame's faces seen at ``time`` (seconds); returns the track id of each face."""
        pairs = sorted(
            ((iou(track.box, face.box), t, f) for t, track in enumerate(self.open) for f, face in enumerate(faces)),
            reverse=True,
        )
        owner: dict[int, Track] = {}
        taken: set[int] = set()
        for overlap, t, f in pairs:
            if overlap < self.min_iou:
                break
            if t not in taken and f not in owner:
                owner[f] = self.open[t]
                taken.add(t)
        for f, face in enumerate(faces):
            if f not in owner:
                owner[f] = Track(id=self._next_id)
                self._next_id += 1
                self.open.append(owner[f])
            owner[f].faces.append(face)
            owner[f].times.append(time)
            owner[f].missed = 0
        seen = {id(track) for track in owner.values()}
        for track in self.open:
            if id(track) not in seen:
                track.missed += 1
        self.closed += [track for track in self.open if track.missed > self.max_missed]
        self.open = [track for track in self.open if track.missed <= self.max_missed]
        return [owner[f].id for f in range(len(faces))]

    def tracks(self) -> list[Track]:
        """Every track so far, closed and open, in the order they started."""
        return sorted(self.closed + self.open, key=lambda track: track.id)


@dataclass(frozen=True)
class TrackSummary:
    """One followed face, its frames' predictions pooled."""

    track: int
    first_seen: float  # seconds
    last_seen: float
    frames: int
    box: Box  # where it was last seen
    gender: str
    gender_probs: dict[str, float]
    race: str
    race_probs: dict[str, float]
    age: float  # median of the per-frame expected ages
    age_low: float  # 80% interval of the averaged age distribution
    age_high: float
    race7: str | None = None  # from models with a 7-class head
    race7_probs: dict[str, float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def summarize_track(track: Track) -> TrackSummary:
    gender = np.mean([[face.gender_probs[g] for g in labels.GENDERS] for face in track.faces], axis=0)
    race = np.mean([[face.race_probs[r] for r in labels.RACES] for face in track.faces], axis=0)
    _, low, high = labels.age_summary(np.mean([face.age_probs for face in track.faces], axis=0))
    fine = {}
    if all(face.race7_probs for face in track.faces):
        race7 = np.mean([[face.race7_probs[r] for r in labels.RACE7] for face in track.faces], axis=0)
        fine = {"race7": labels.RACE7[int(race7.argmax())],
                "race7_probs": {r: float(p) for r, p in zip(labels.RACE7, race7)}}
    return TrackSummary(
        track=track.id,
        first_seen=round(track.times[0], 3),
        last_seen=round(track.times[-1], 3),
        frames=len(track.faces),
        box=track.box,
        gender=labels.GENDERS[int(gender.argmax())],
        gender_probs={g: float(p) for g, p in zip(labels.GENDERS, gender)},
        race=labels.RACES[int(race.argmax())],
        race_probs={r: float(p) for r, p in zip(labels.RACES, race)},
        age=round(float(np.median([face.age for face in track.faces])), 1),
        age_low=low,
        age_high=high,
        **fine,
    )
