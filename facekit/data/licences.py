"""Each shipped dataset's licence, in one place: it travels with every model and report made from it."""
from __future__ import annotations

LICENCES: dict[str, str] = {
    "utkface": "UTKFace: available for non-commercial research purposes only; the copyright of the images "
               "belongs to their original owners.",
    "fairface": "FairFace (Kärkkäinen & Joo, WACV 2021): CC BY 4.0 (attribution).",
    "wider-dev": "wider-dev: WIDER FACE images are for non-commercial research only; Amazon's perceived-demographics "
                 "annotations are CC BY-NC 4.0.",
}
NON_COMMERCIAL = {"utkface", "wider-dev"}


def licence_note(datasets: list[str]) -> str:
    """The licences of the datasets a model or report used, and what they mean for its use."""
    lines = [LICENCES.get(name, f"{name}: licence as given by its source.") for name in dict.fromkeys(datasets)]
    if NON_COMMERCIAL & set(datasets):
        lines.append("A model trained on these data inherits the non-commercial restriction.")
    return " ".join(lines)
