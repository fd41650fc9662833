"""facekit: age, gender and ethnicity from face photos, explained, with their biases measured.

The public names load on first use (``facekit.Predictor`` imports torch then, not before), so
``import facekit`` stays light for the data readers, the metrics and the CLI's help.
"""
import importlib
import os

# OpenMP threads that busy-wait between parallel regions thrash when a core is shared
# (a niced training job, a test run), slowing a photo many times over; waiting passively
# gives the same predictions (timings: docs/benchmarks.md). libgomp reads this when torch
# loads, so it works when facekit is imported first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

# public name -> (module, attribute in it; None for the module itself)
_PUBLIC = {
    "predict": ("facekit.predict", None),
    "Predictor": ("facekit.predict", "Predictor"),
    "FacePrediction": ("facekit.predict", "FacePrediction"),
    "ImageResult": ("facekit.predict", "ImageResult"),
    "evaluate": ("facekit.evaluation.evaluate", "evaluate"),
    "train": ("facekit.training.run", "run"),
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'facekit' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = importlib.import_module(module)
    return value if attribute is None else getattr(value, attribute)


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
