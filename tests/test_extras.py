"""The core works without any extra, and an optional part used without its extra says which to install."""
from __future__ import annotations

import subprocess
import sys

import pytest

from facekit._extras import EXTRAS

pytestmark = pytest.mark.slow

# Every module an extra brings, hidden from the interpreter as if never installed.
EXTRA_MODULES = sorted({module.split(".")[0] for _, modules in EXTRAS.values() for module in modules})
HIDE = f"import sys\nfor name in {EXTRA_MODULES!r}:\n    sys.modules[name] = None\n"
CORE = ("facekit.cli", "facekit.predict", "facekit.explain", "facekit.viz", "facekit.evaluation.evaluate",
        "facekit.evaluation.report", "facekit.training.calibrate", "facekit.data", "facekit.vision.io")


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", HIDE + code], capture_output=True, text=True, timeout=300)


def test_the_core_imports_without_extras():
    done = run("".join(f"import {module}\n" for module in CORE))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("command", "extra", "module"), [
    (["serve"], "serve", "fastapi"),
    (["train", "--config", "training/heads.yaml"], "train", "yaml"),
    (["predict", "--engine", "ray", "x.png", "--out", "rows.parquet"], "ray", "ray"),
])
def test_a_missing_extra_is_one_line_naming_it(command, extra, module):
    done = run(f"sys.argv = ['facekit', *{command!r}]\nfrom facekit.cli import main\nmain()")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {EXTRAS[extra][0]} needs facekit's [{extra}] extra ({module} is missing): pip install 'facekit[{extra}]'"]
