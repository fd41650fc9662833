"""The one label schema: gender, ethnicity (UTKFace 5 and FairFace 7), age and age bins.

Every reader, model head, metric and page encodes and decodes labels here, so a class
index means the same thing everywhere. Unknown values are ``None`` (or NaN in tables),
never a silent class.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence

import numpy as np

GENDERS: tuple[str, ...] = ("male", "female")  # UTKFace order: 0 = male, 1 = female
RACES: tuple[str, ...] = ("white", "black", "asian", "indian", "others")  # UTKFace's 5
FAIRFACE_RACES: tuple[str, ...] = (
    "white",
    "black",
    "latino_hispanic",
    "east_asian",
    "southeast_asian",
    "indian",
    "middle_eastern",
)
# FairFace's 7 classes onto UTKFace's 5, as documented in ../shared/data/README.md.
FAIRFACE_TO_RACE: dict[str, str] = {
    "white": "white",
    "black": "black",
    "latino_hispanic": "others",
    "east_asian": "asian",
    "southeast_asian": "asian",
    "indian": "indian",
    "middle_eastern": "others",
}

RACE7 = FAIRFACE_RACES  # the ethnicity head's classes; UTKFace's 5 are sums of them
# Which of the 7 classes each of UTKFace's 5 stands for: a 5-class label allows that set.
RACE_TO_RACE7: dict[str, tuple[str, ...]] = {
    race: tuple(race7 for race7 in RACE7 if FAIRFACE_TO_RACE[race7] == race) for race in RACES
}


def race_classes(count: int) -> tuple[str, ...]:
    """The ethnicity classes of a head with ``count`` outputs: FairFace's 7 or UTKFace's 5."""
    if count == len(RACE7):
        return RACE7
    if count == len(RACES):
        return RACES
    raise ValueError(f"an ethnicity head has {len(RACE7)} or {len(RACES)} classes, not {count}")


def race7_to_race5(probs):
    """UTKFace-5 probabilities from FairFace-7 ones (the last axis), by summing each 5-class's members."""
    probs = np.asarray(probs)
    return np.stack([probs[..., [RACE7.index(c) for c in RACE_TO_RACE7[race]]].sum(-1) for race in RACES], -1)


# FairFace's 9 age bins as (label, lowest age, highest age); the last one is open.
AGE_BINS: tuple[tuple[str, int, int], ...] = (
    ("0-2", 0, 2),
    ("3-9", 3, 9),
    ("10-19", 10, 19),
    ("20-29", 20, 29),
    ("30-39", 30, 39),
    ("40-49", 40, 49),
    ("50-59", 50, 59),
    ("60-69", 60, 69),
    ("70+", 70, 200),
)
AGE_BIN_LABELS: tuple[str, ...] = tuple(label for label, _, _ in AGE_BINS)
# wider-dev's perceived age groups (Amazon's annotators gave no years and no child group) as
# ranges of years that each group allows. The ranges overlap on purpose: a perceived group is a
# soft label, and training maximises the age distribution's mass inside the range.
AGE_GROUPS: tuple[tuple[str, int, int], ...] = (
    ("young_adult", 0, 34),
    ("adult", 25, 54),
    ("middle_age", 40, 69),
    ("senior", 55, 200),
)
AGE_GROUP_LABELS: tuple[str, ...] = tuple(label for label, _, _ in AGE_GROUPS)
# Fitzpatrick skin types, a group attribute for fairness metrics (never a predicted label).
SKIN_TONES: tuple[str, ...] = ("I", "II", "III", "IV", "V", "VI")
# Face height in the original photo, in the groups every size-dependent number is reported by.
FACE_SIZES: tuple[tuple[float, float, str], ...] = (
    (0, 20, "<20 px"), (20, 40, "20-40 px"), (40, 80, "40-80 px"), (80, float("inf"), "80+ px"))
# Faces shorter than this (pixels of the photo) are flagged ``low_resolution``: under it the attribute
# heads are markedly less accurate (docs/evaluation.md has the accuracy by face height).
MIN_ATTRIBUTE_FACE = 40
MAX_AGE_YEARS = 130  # no one has lived longer: a larger age label (or infinity) is a data error
FACE_SIZE_LABELS: tuple[str, ...] = tuple(name for _, _, name in FACE_SIZES)
AGE_MAX = 100  # the age head predicts years 0..AGE_MAX, the last class meaning "AGE_MAX or older"
AGE_CLASSES = AGE_MAX + 1

_GENDER_ALIASES = {"m": "male", "man": "male", "f": "female", "woman": "female"}
_RACE_ALIASES = {"other": "others", "latino": "latino_hispanic", "hispanic": "latino_hispanic"}
_AGE_BIN_ALIASES = {"more than 70": "70+", "70-": "70+", "70+": "70+"}
# FairFace's CSVs went through a spreadsheet that read two bins as dates. Kept apart from the
# aliases above: a reader maps these on purpose and says how many it mapped.
SPREADSHEET_AGE_BINS: dict[str, str] = {"9-Mar": "3-9", "19-Oct": "10-19"}


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in {"", "nan", "none", "unknown", "na"}


def _key(value: object) -> str:
    return str(value).strip().lower().replace(" ", "_").replace("-", "_")


def _unknown(value: object) -> bool:
    """Missing, or an annotator's "Not Sure" (perceived labels say so instead of guessing)."""
    return _is_missing(value) or _key(value) == "not_sure"


def face_size_group(height: float) -> Optional[str]:
    """The ``FACE_SIZES`` group of a face height in pixels; None when unknown."""
    if height != height:  # NaN
        return None
    return next(name for low, high, name in FACE_SIZES if low <= height < high)


def normalize_gender(value: object) -> Optional[str]:
    """A gender label or UTKFace code (0/1) as 'male'/'female'; None when unknown.

    Raises ValueError for a value that is present but not a gender, so a bad file is
    reported instead of being guessed at.
    """
    if _unknown(value):
        return None
    key = _key(value)
    if key in GENDERS:
        return key
    if key in _GENDER_ALIASES:
        return _GENDER_ALIASES[key]
    if key in {"0", "1", "0.0", "1.0"}:
        return GENDERS[int(float(key))]
    raise ValueError(f"not a gender label: {value!r}")


def normalize_race(value: object) -> Optional[str]:
    """An ethnicity label (UTKFace code 0-4, a UTKFace or FairFace name) as one of RACES."""
    if _is_missing(value):
        return None
    key = _key(value)
    key = _RACE_ALIASES.get(key, key)
    if key in RACES:
        return key
    if key in FAIRFACE_TO_RACE:
        return FAIRFACE_TO_RACE[key]
    if key in {"0", "1", "2", "3", "4", "0.0", "1.0", "2.0", "3.0", "4.0"}:
        return RACES[int(float(key))]
    raise ValueError(f"not an ethnicity label: {value!r}")


def normalize_fairface_race(value: object) -> Optional[str]:
    """A FairFace 7-class name ('East Asian', 'Latino_Hispanic', ...) as one of FAIRFACE_RACES."""
    if _is_missing(value):
        return None
    key = _RACE_ALIASES.get(_key(value), _key(value))
    if key in FAIRFACE_RACES:
        return key
    raise ValueError(f"not a FairFace ethnicity label: {value!r}")


def age_to_bin(age: object) -> Optional[str]:
    """The FairFace age bin holding an age in years; None for a missing age."""
    if _is_missing(age):
        return None
    years = float(age)  # type: ignore[arg-type]
    if years < 0:
        raise ValueError(f"negative age: {age!r}")
    for label, low, high in AGE_BINS:
        if years < high + 1 and years >= low:
            return label
    return AGE_BINS[-1][0]


def normalize_age_bin(value: object) -> Optional[str]:
    """A FairFace age-bin label as one of AGE_BIN_LABELS ('more than 70' -> '70+')."""
    if _is_missing(value):
        return None
    text = str(value).strip().lower()
    text = _AGE_BIN_ALIASES.get(text, text)
    if text in AGE_BIN_LABELS:
        return text
    raise ValueError(f"not an age bin: {value!r}")


def normalize_age_group(value: object) -> Optional[str]:
    """A perceived age group ('Young Adult', 'Middle age', ...) as one of AGE_GROUP_LABELS; 'Not Sure' is None."""
    if _unknown(value):
        return None
    key = _key(value)
    if key in AGE_GROUP_LABELS:
        return key
    raise ValueError(f"not a perceived age group: {value!r}")


def normalize_skin_tone(value: object) -> Optional[str]:
    """A Fitzpatrick type as a Roman numeral I..VI; 'Not Sure' is None."""
    if _unknown(value):
        return None
    text = str(value).strip().upper()
    if text in SKIN_TONES:
        return text
    raise ValueError(f"not a Fitzpatrick skin type: {value!r}")


def age_bin_index(label: str) -> int:
    return AGE_BIN_LABELS.index(label)


def bin_edges(bins: tuple[tuple[str, int, int], ...] = AGE_BINS) -> list[int]:
    """Lower edges of each bin plus the end, for turning a per-year distribution into bins."""
    return [low for _, low, _ in bins] + [AGE_CLASSES]


# ---- age maths on the age head's distribution over years 0..AGE_MAX

INTERVAL = 0.8  # the age interval's coverage: from the 10th to the 90th percentile


def age_summary(probs: np.ndarray) -> tuple[float, float, float]:
    """Expected age and the INTERVAL interval (10th and 90th percentiles) of an age distribution."""
    years = np.arange(len(probs))
    cumulative = np.cumsum(probs)
    low_q, high_q = (1 - INTERVAL) / 2, 1 - (1 - INTERVAL) / 2
    low = float(np.searchsorted(cumulative, low_q))
    high = float(np.searchsorted(cumulative, high_q))
    return float((years * probs).sum()), low, min(high, float(years[-1]))


def age_bin_probs(probs: np.ndarray) -> dict[str, float]:
    """An age distribution summed into the age bins, in AGE_BIN_LABELS order."""
    edges = bin_edges()
    return {label: float(probs[edges[i]:edges[i + 1]].sum()) for i, label in enumerate(AGE_BIN_LABELS)}


def age_group_probs(probs: np.ndarray, groups: Sequence[tuple[str, int, int]]) -> np.ndarray:
    """Age distributions (faces, years) summed into ordered (label, first year, last year) groups: (faces, groups)."""
    return np.stack([probs[:, low:min(high, AGE_MAX) + 1].sum(1) for _, low, high in groups], 1)


def age_group_index(groups: Sequence[tuple[str, int, int]], years: float = float("nan"), label: object = None,
                    span: tuple[float, float] = (float("nan"), float("nan"))) -> int:
    """Which of an age-group head's ``groups`` a face belongs to: the group its ``label`` names, else the one
    holding its years, else the one holding its whole ``span`` (a bin or range of years); -1 where none does."""
    if isinstance(label, str):
        named = [i for i, (name, _, _) in enumerate(groups) if name.upper() == label.upper()]
        if named:
            return named[0]
    low, high = (years, years) if not np.isnan(years) else span
    for index, (_, first, last) in enumerate(groups):
        if first <= min(low, AGE_MAX) and min(high, AGE_MAX) <= min(last, AGE_MAX):
            return index
    return -1


def encode(values: Iterable[object], classes: Sequence[str]) -> list[int]:
    """Class indices of labels, -1 where the label is unknown: the form heads and metrics take.

    Raises ValueError for a value that is present but not one of ``classes``.
    """
    position = {label: i for i, label in enumerate(classes)}
    codes = []
    for value in values:
        if _is_missing(value):
            codes.append(-1)
        elif value in position:
            codes.append(position[value])  # type: ignore[index]
        else:
            raise ValueError(f"{value!r} is not one of {list(classes)}")
    return codes


def display(label: Optional[str]) -> str:
    """A label as people read it: 'east_asian' -> 'East Asian', None -> 'unknown'."""
    if label is None:
        return "unknown"
    if label[0].isdigit() or label in FACE_SIZE_LABELS:  # '20-29', '<20 px' read as they are
        return label
    return label.replace("_", " ").title()
