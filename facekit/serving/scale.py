"""Scale-out prediction with Ray Data: the rows of `facekit predict`, from a folder, a glob or
object storage, on this machine's cores or on a Ray cluster.

Ray lists and reads the files (``read_binary_files``); a pool of actors each holds one
``Predictor``, so the model loads once per actor rather than once per batch, and turns each
batch of (path, bytes) into ``prediction_rows``. The output therefore equals the
single-process path row for row (exactly, when both run the model with the same number of
threads), and a photo that cannot be decoded is an error row, never a failed job. The rows stream into one parquet file on the driver. Ray is an optional extra:
nothing imports it until a job runs, and without it the error says how to install it.
"""
from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from facekit._extras import require
from facekit.vision.io import IMAGE_SUFFIXES, collect_uploads

# One actor with 2 threads rather than two 1-thread actors: every actor loads the model, and on a
# small machine those loads compete for the cores, so fewer actors start working sooner
# (timings: docs/benchmarks.md). An actor's predictor works on ``threads`` photos at once, one thread each.
THREADS_PER_ACTOR = 2
READABLE = "_readable"  # per-row flag from the actors for the summary; never written
GLOB_CHARACTERS = "*?["
LOG_FOLDER = "/tmp/ray/session_latest/logs"  # Ray's default on each node


def row_schema():
    """The parquet columns: exactly ``rows.PREDICTION_COLUMNS``, in order, with fixed types,
    so a batch of error rows and a batch of faces write the same columns."""
    import pyarrow as pa

    from facekit.rows import PREDICTION_COLUMNS

    types = {"file": pa.string(), "face": pa.int64(), "gender": pa.string(), "race": pa.string(), "race7": pa.string(),
             "age_bin": pa.string(), "low_resolution": pa.bool_(), "error": pa.string()}
    return pa.schema([(column, types.get(column, pa.float64())) for column in PREDICTION_COLUMNS])


@dataclass(frozen=True)
class RayRun:
    """What a Ray job did: inputs (photos and ZIP members), faces, and the inputs without a face."""

    out: Path
    photos: int
    faces: int
    no_face: int  # read, but no face found
    unreadable: int  # could not be decoded (corrupt, too large, not an image)
    seconds: float
    actors: int
    threads: int

    @property
    def faces_per_s(self) -> float:
        return self.faces / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        return (f"{self.photos} photos, {self.faces} faces, {self.no_face} without a face, "
                f"{self.unreadable} unreadable in {self.seconds:.1f} s ({self.faces_per_s:.1f} faces/s; "
                f"{self.actors} x {self.threads}-thread actors) -> {self.out}")


def import_ray():
    """``ray`` with ``ray.data`` loaded, or ``MissingExtra`` naming the [ray] extra."""
    require("ray")
    import ray

    return ray


@contextmanager
def ray_session(address: str | None = None) -> Iterator[object]:
    """Join the running Ray session, or connect to ``address`` (default: ``RAY_ADDRESS``, else a new
    local Ray on this machine's cores); shuts down only what it started. Workers' output stays in
    Ray's session logs, so a failing actor gives one error line rather than remote tracebacks."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def resolve_sources(sources: Sequence[str | os.PathLike]) -> list[str]:
    """Folders, files and URIs as Ray reads them; globs (``photos/*.jpg``, ``s3://b/**/*.png``)
    expanded here with fsspec, since Ray reads paths, not patterns."""
    paths: list[str] = []
    for source in map(str, sources):
        if not any(char in source for char in GLOB_CHARACTERS):
            paths.append(source)
            continue
        from fsspec.core import url_to_fs

        scheme, separator, _ = source.partition("://")
        filesystem, pattern = url_to_fs(source)
        matches = sorted(filesystem.glob(pattern))
        if not matches:
            raise FileNotFoundError(f"nothing matches {source}")
        paths += [f"{scheme}://{match}" if separator else match for match in matches]
    return paths


def name_prefix(paths: Sequence[str]) -> str:
    """Ray reports object-store paths without their scheme (``bucket/key``); put it back so the
    ``file`` column says where each photo is. Local paths stay as given."""
    scheme, separator, _ = paths[0].partition("://") if paths else ("", "", "")
    return f"{scheme}://" if separator and scheme not in ("file", "local") else ""


class PredictBatch:
    """The actor's callable: one ``Predictor`` per actor, loaded once; a batch of files in, rows out."""

    def __init__(self, model: str | None, max_faces: int, threads: int, prefix: str) -> None:
        import torch

        from facekit.predict import Predictor

        torch.set_num_threads(threads)  # before the model loads: its runtime sizes its pool from this
        self.predictor = Predictor(model, max_faces=max_faces, workers=threads)
        self.prefix = prefix

    def __call__(self, batch: dict[str, np.ndarray]):
        import pyarrow as pa

        from facekit.rows import prediction_rows

        names = [self.prefix + str(path) for path in batch["path"]]
        # ZIPs open from memory with the same limits as the single-process path.
        items = collect_uploads(zip(names, (bytes(data) for data in batch["bytes"])))
        rows = []
        for result in self.predictor.predict_items(items):
            for row in prediction_rows([result]):
                rows.append({**row, READABLE: not result.error})
        return pa.Table.from_pylist(rows, schema=row_schema().append(pa.field(READABLE, pa.bool_())))


@contextmanager
def _job_errors(ray) -> Iterator[None]:
    """A failed Ray job (an actor that cannot load the model, a lost node) as one ``RuntimeError`` line;
    Ray's own message is a remote traceback."""
    try:
        yield
    except ray.exceptions.RayError as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise RuntimeError(f"the Ray job failed: {lines[-1] if lines else type(error).__name__} "
                           f"(worker logs: {LOG_FOLDER})") from None


def predict_with_ray(
    sources: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    model: str | os.PathLike | None = None,
    max_faces: int = 20,
    batch: int = 16,
    actors: int | None = None,
    threads: int = THREADS_PER_ACTOR,
    address: str | None = None,
) -> RayRun:
    """Predict every image (and ZIP member) under ``sources`` with a Ray actor pool; rows to ``out`` (parquet).

    ``actors`` defaults to the cluster's CPUs divided by ``threads``; each actor reserves
    ``threads`` CPUs. Every node needs facekit installed and the photos reachable at the same path
    (object storage or a shared file system); ``model`` must exist on every node.
    """
    out = Path(out)
    if out.suffix.lower() != ".parquet":
        raise ValueError(f"the Ray engine writes one parquet file; --out must end in .parquet, not {out.name!r}")
    if threads < 1 or (actors is not None and actors < 1):
        raise ValueError("actors and threads must be at least 1")
    if model is not None:  # checked here: an actor that cannot load it fails the job with a remote traceback
        from facekit.models.model import sidecar_path

        if not (Path(model).is_file() and sidecar_path(Path(model)).is_file()):
            raise FileNotFoundError(f"no facekit checkpoint at {model} (need the .safetensors file and its .json sidecar)")
    paths = resolve_sources(sources)
    with ray_session(address) as ray:
        largest_node = max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]), default=1)
        threads = max(1, min(threads, int(largest_node)))  # an actor wanting more CPUs than a node has never starts
        size = actors or max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
        started = time.perf_counter()
        # Reads reserve no CPU: they are I/O, and the actor pool holds every core, so a read task that
        # waited for a free CPU would never run (a job with as many actors as CPUs hangs). Without
        # a CPU to wait for, Ray would start a worker process per read task at once; one per actor keeps
        # the reads ahead of the model without starting 8 to 16 Python processes on 2 cores.
        try:
            dataset = ray.data.read_binary_files(
                paths, include_paths=True, num_cpus=0, concurrency=size,
                file_extensions=[suffix.lstrip(".") for suffix in IMAGE_SUFFIXES] + ["zip"])
        except FileNotFoundError as error:
            raise FileNotFoundError(f"no such file or folder: {error}") from None
        except ValueError as error:  # Ray's listing found nothing it may read
            if not str(error).startswith("No "):
                raise
            raise ValueError(f"no image or ZIP files in {', '.join(paths)} (Ray skips names that start "
                             "with '_' or '.')") from None
        dataset.context.execution_options.preserve_order = True  # rows in the listing's (sorted) order
        dataset = dataset.map_batches(
            PredictBatch, batch_size=batch, batch_format="numpy", num_cpus=threads,
            # One batch queued per actor: otherwise the first actor to finish loading takes every
            # queued batch while the others are still loading, and does most of the work alone.
            compute=ray.data.ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=1),
            fn_constructor_kwargs={"model": str(model) if model else None, "max_faces": max_faces,
                                   "threads": threads, "prefix": name_prefix(paths)})
        counts = _write_rows(dataset, out, ray)
        return RayRun(out, **counts, seconds=time.perf_counter() - started, actors=size, threads=threads)


def _write_rows(dataset, out: Path, ray) -> dict[str, int]:
    """Stream the job's rows into ``out`` (parquet, ``row_schema``), counting photos, faces and failures.

    The rows go to a ``.partial`` file renamed at the end, so a failed or interrupted job leaves no half file.
    """
    import pyarrow.parquet as pq

    schema = row_schema()
    counts = {"photos": 0, "faces": 0, "no_face": 0, "unreadable": 0}
    partial = out.with_name(out.name + ".partial")
    try:
        with pq.ParquetWriter(partial, schema) as writer, _job_errors(ray):
            for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                face = table["face"].to_numpy(zero_copy_only=False).astype(float)  # NaN: no face
                readable = table[READABLE].to_numpy(zero_copy_only=False)
                found = ~np.isnan(face)
                counts["photos"] += int((~found).sum() + (face[found] == 0).sum())
                counts["faces"] += int(found.sum())
                counts["no_face"] += int((~found & readable).sum())
                counts["unreadable"] += int((~readable).sum())
                writer.write_table(table.select(schema.names).cast(schema))
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return counts


def read_rows(path: str | os.PathLike) -> list[dict]:
    """The rows of a parquet file written by ``predict_with_ray``, as ``prediction_rows`` gives them
    (an input without a face has only file, face and error)."""
    import pyarrow.parquet as pq

    rows = []
    for row in pq.read_table(path).to_pylist():
        if row["face"] is None:
            row = {"file": row["file"], "face": None, "error": row["error"]}
        rows.append(row)
    return rows
