"""What the pages share: the one cached model, the sidebar path picker, and the messages that
stop a page when something it needs cannot be had.

Every page imports this module first, so the app's defaults are set in one place: the datasets
folder is ../shared/data from where the app was started unless FACEKIT_DATA names another.
A path typed into a page must lie under one of the app's roots (``app_roots``): the datasets
folder, facekit's cache, the package's shipped files, and the folders listed in FACEKIT_APP_ROOTS
by whoever starts the app, so a visitor cannot browse the server's file system.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, TypeVar

import streamlit as st

from facekit._extras import MissingExtra, require

if TYPE_CHECKING:  # torch and grad-cam load only on the pages that predict or explain
    from facekit.explain import Explainer
    from facekit.predict import Predictor

os.environ.setdefault("FACEKIT_DATA", str(Path("../shared/data").resolve()))

T = TypeVar("T")
LOAD_ERRORS = (FileNotFoundError, ValueError, RuntimeError)  # what loading a checkpoint raises for a bad one


def _key(model: Optional[str | Path]) -> Optional[str]:
    """One cache entry per checkpoint, whichever way it is named (None: the shipped one)."""
    from facekit.models.model import DEFAULT_MODEL

    return None if model is None or Path(model).resolve() == DEFAULT_MODEL.resolve() else str(model)


@st.cache_resource(show_spinner="Loading the model…")
def _predictor(model: Optional[str]) -> Predictor:
    from facekit.predict import Predictor

    return Predictor(model)


@st.cache_resource(show_spinner="Preparing Grad-CAM…")
def _explainer(model: Optional[str]) -> Explainer:
    from facekit.explain import Explainer

    return Explainer(_predictor(model).model)


def predictor(model: Optional[str | Path] = None) -> Predictor:
    """The model for every page (default: the shipped one), loaded once per app and checkpoint."""
    return _predictor(_key(model))


def explainer(model: Optional[str | Path] = None) -> Explainer:
    """Grad-CAM on that same loaded model."""
    return _explainer(_key(model))


def loaded(load: Callable[[], T], failure: str = "The model could not be loaded") -> T:
    """``load()``, or the page stops with ``failure`` and the reason."""
    try:
        return load()
    except LOAD_ERRORS as error:
        st.error(f"{failure}: {error}")
        st.stop()


def need(extra: str) -> None:
    """Stop the page with the install line when the extra it needs is missing."""
    try:
        require(extra)
    except MissingExtra as error:
        st.error(str(error))
        st.stop()


def modified(path: Path) -> float:
    """A file's modification time, 0 when absent: the cache key that makes an edited file be read again."""
    return path.stat().st_mtime if path.exists() else 0.0


@st.cache_data(show_spinner=False, max_entries=4)
def _beyond_portraits(model: str, model_modified: float, reports_modified: float) -> Optional[str]:
    """The times only key the cache: new weights or new committed reports are read again."""
    from facekit.evaluation.report import same_model_reports, beyond_portraits_sentence
    from facekit.evaluation.summary import weights_sha256

    digest = weights_sha256(model)
    return None if digest is None else beyond_portraits_sentence(list(same_model_reports(digest).values()))


def beyond_portraits(model: Optional[str | Path] = None) -> Optional[str]:
    """How often the model (default: the shipped one) is right beyond studio portraits, from its
    committed evaluations (``report.beyond_portraits_sentence``); None when none is of its weights."""
    from facekit.evaluation.report import REPORTS
    from facekit.models.model import DEFAULT_MODEL

    path = Path(model or DEFAULT_MODEL)
    return _beyond_portraits(str(path), modified(path), modified(REPORTS))


def app_roots() -> list[Path]:
    """The folders a page may open paths under: FACEKIT_DATA, facekit's cache (where `facekit train` puts its
    runs), the package's own files, and each folder of FACEKIT_APP_ROOTS (separated by the path separator)."""
    from facekit.cache import cache_dir

    named = [os.environ.get("FACEKIT_DATA", ""), str(cache_dir()),
             *os.environ.get("FACEKIT_APP_ROOTS", "").split(os.pathsep)]
    return [Path(os.path.realpath(Path(root).expanduser())) for root in named if root.strip()] + \
        [Path(__file__).resolve().parents[1]]


def outside_roots(path: Path, roots: list[Path]) -> Optional[str]:
    """Why ``path`` may not be opened (it resolves outside every root), or None."""
    from facekit.files import is_inside

    if any(is_inside(path, root) for root in roots):
        return None
    return (f"{path} is outside the folders this app may open ({', '.join(str(r) for r in roots)}); whoever starts "
            "the app can add one with FACEKIT_APP_ROOTS=/that/folder.")


def sidebar_path(key: str, label: str, placeholder: str, help: str, prompt: str, place=st.sidebar) -> Optional[Path]:
    """A path typed in the sidebar (or in ``place``, e.g. ``st`` for the page), or None (with ``prompt`` shown)
    while the box is empty or when the path lies outside the app's roots (with the reason shown)."""
    typed = place.text_input(label, key=f"{key}_path", placeholder=placeholder, help=help)
    if not typed.strip():
        place.info(prompt)
        return None
    path = Path(typed.strip()).expanduser()
    refused = outside_roots(path, app_roots())
    if refused:
        place.error(refused)
        return None
    return path
