"""Imports only go down the layers of pyproject's import-linter contract, deferred ones included."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"


def lint(root: Path) -> subprocess.CompletedProcess:
    """import-linter on the package under ``root`` with ``root``'s pyproject, in a fresh interpreter."""
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, capture_output=True, text=True, timeout=300)


def test_the_package_keeps_its_layers():
    done = lint(REPO)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_deferred_import_of_a_higher_layer_breaks_the_contract(tmp_path):
    """The check can fail: a copy of the package with one backward import inside a function is refused."""
    shutil.copytree(REPO / "facekit", tmp_path / "facekit", ignore=shutil.ignore_patterns("assets", "__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    (tmp_path / "facekit" / "vision" / "backward.py").write_text(
        "def serve():\n    from facekit.serving import service\n\n    return service\n")
    done = lint(tmp_path)
    assert done.returncode != 0
    assert "facekit.vision is not allowed to import facekit.serving" in done.stdout
    assert "facekit.vision.backward -> facekit.serving.service (l.2)" in done.stdout


@pytest.mark.parametrize("module", ["facekit.evaluation.metrics", "facekit.evaluation.segments",
                                    "facekit.evaluation.report", "facekit.rows"])
def test_metrics_reports_and_rows_import_without_torch(module):
    """Metric functions, breakdowns, reports and row writers are shared by training, evaluation, the pages and
    the CLI: they must not pull in the networks."""
    probe = (f"import sys, {module}; "
             "print(' '.join(m for m in ('torch', 'facenet_pytorch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == ""


@pytest.mark.slow
def test_the_public_names_load_on_first_use():
    probe = ("import sys, facekit; light = 'torch' not in sys.modules; "
             "from facekit import FacePrediction, ImageResult, Predictor, evaluate, predict, train; "
             "print(light, sorted(facekit.__all__), Predictor is predict.Predictor, callable(evaluate), callable(train))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["True", "['FacePrediction',", "'ImageResult',", "'Predictor',", "'__version__',",
                                   "'evaluate',", "'predict',", "'train']", "True", "True", "True"]
