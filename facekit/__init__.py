"""facekit: age, gender and ethnicity from face photos, explained, with their biases measured."""
import os

# OpenMP threads that busy-wait between parallel regions thrash when a core is shared
# (a niced training job, a test run), slowing a photo many times over; waiting passively
# gives the same predictions (timings: docs/benchmarks.md). libgomp reads this when torch
# loads, so it works when facekit is imported first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
