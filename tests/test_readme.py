"""The README's Python quickstart runs as written and prints what the README says it prints."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_quickstart_runs_and_prints_the_stated_answer():
    readme = (REPO / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    stated = re.search(r"`female` \((0\.\d\d)\), `white` \((0\.\d\d)\), `age (\d+) \((\d+)-(\d+)\)`", readme)
    assert stated, "the README no longer states the quickstart's answer"
    p_female, p_white, age, low, high = stated.groups()
    assert lines[1].startswith("female") and lines[2].startswith("white")
    assert lines[3] == f"age {age} ({low}-{high})"
    row = ast.literal_eval(lines[4])  # the printed row
    assert f"{row['p_female']:.2f}" == p_female and f"{row['p_white']:.2f}" == p_white
