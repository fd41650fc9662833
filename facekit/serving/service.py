"""`facekit serve`: the REST service, and a loopback load test for it.

One process holds the model, loaded once by ``create_app``; requests run in a bounded
pool of ``workers`` threads, and at most ``queue`` more wait for one, so a burst is
answered 503 with ``Retry-After`` instead of piling up memory and latency. Every bad input
is a 4xx whose ``detail`` says what to fix: the upload's size (413, checked while the body
arrives), the pixel count (413, checked from the header before decoding), files that are
not images (422), a head or target that does not exist (422). Anything else is a bug and
stays a 500.

The rows of ``/v1/predict`` are ``prediction_rows``, the same as ``facekit predict --format
json`` gives for the same bytes.
"""
from __future__ import annotations

import asyncio
import io
import os
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Literal, Optional

from facekit._extras import require

require("serve")  # before the imports: a missing extra is one line, not a traceback
import numpy as np
from fastapi import APIRouter, Depends, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.middleware.trustedhost import TrustedHostMiddleware
from PIL import Image
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facekit.explain import HEAD_TARGETS, METHODS, Explainer, check_target
from facekit.vision.io import MAX_FILE_BYTES, MAX_PIXELS, MB, ImageError, load_image
from facekit.predict import ImageResult, Predictor
from facekit.rows import prediction_rows

API = "/v1"
BODY_OVERHEAD = 64 * 1024  # multipart framing and form fields allowed beyond the file itself
HeadName = Literal[tuple(HEAD_TARGETS)]  # type: ignore[valid-type]
MethodName = Literal[tuple(METHODS)]  # type: ignore[valid-type]


@dataclass(frozen=True)
class ServiceLimits:
    """What one request may cost, and how many may run or wait at once."""

    max_upload_bytes: int = MAX_FILE_BYTES
    max_pixels: int = MAX_PIXELS
    max_faces: int = 20  # faces classified (or explained) per photo, largest first
    workers: int = 2  # requests computed at once
    queue: int = 8  # requests waiting for a worker beyond those; more get 503
    retry_after: int = 1  # seconds, the 503's Retry-After


class Problem(BaseModel):
    """Every error response: one sentence a person can act on (FastAPI's 422s give a list)."""

    detail: Any


class PredictResponse(BaseModel):
    """The CLI's rows for one photo, with its size and where the time went."""

    file: str
    width: int
    height: int
    faces: int
    skipped_faces: int  # faces beyond max_faces, not classified
    rows: list[dict[str, Any]]  # prediction_rows: one per face, or one with the reason there is none
    timings: dict[str, float]  # seconds: queue, decode, detect, model, total
    model: str


ERRORS = {status: {"model": Problem, "description": text} for status, text in (
    (400, "empty upload or unreadable request body"),
    (413, "upload or image over the service's limits"),
    (422, "not a usable image, no face, or an invalid parameter"),
    (503, "all workers busy and the queue full; retry after Retry-After seconds"),
)}


def image_error_status(error: ImageError) -> int:
    """400 for an empty upload, 413 for a file or image over a limit, 422 for anything not decodable."""
    message = str(error)
    if message.startswith("empty file"):
        return 400
    return 413 if "limit" in message else 422


class _Gate:
    """Counts requests admitted to the pool; the event loop is its only caller, so no lock is needed."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.busy = 0

    def enter(self) -> bool:
        if self.busy >= self.capacity:
            return False
        self.busy += 1
        return True

    def leave(self) -> None:
        self.busy -= 1


class BodyLimit:
    """413 with a ``detail`` when a request body is over ``limit`` bytes: from Content-Length before
    reading anything, else as soon as the streamed body passes it, so an upload never fills the disk.

    Starlette's own RequestBodyLimitMiddleware answers a bare "Content Too Large" that names no limit.
    """

    def __init__(self, app: ASGIApp, limit: int, detail: str) -> None:
        self.app, self.limit, self.detail = app, limit, detail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            return await JSONResponse({"detail": self.detail}, status_code=413)(scope, receive, send)
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:  # raised inside form parsing, which passes HTTPException through
                raise HTTPException(413, self.detail)
            return message

        await self.app(scope, limited, send)


@dataclass(frozen=True)
class ModelCard:
    """What /v1/model answers: the checkpoint's identity, sidecar and its committed evaluations, one per dataset."""

    name: str
    path: str
    sha256: str
    metadata: dict
    evaluations: list[dict]


def model_card_data(checkpoint: Optional[str | os.PathLike], metadata: dict) -> ModelCard:
    """The sidecar (``model_info``) plus each committed report of these weights: headline and key gaps."""
    from facekit.evaluation.evaluate import model_info
    from facekit.evaluation.report import committed_summaries, key_gaps
    from facekit.evaluation.summary import made_from

    info = model_info(checkpoint, metadata)
    evaluations = [{
        "report": name, "dataset": {**asdict(summary.dataset), "source": os.path.basename(summary.dataset.source)},
        "crop": summary.crop, "detector": asdict(summary.detector),
        "created": summary.created, "command": summary.command,
        "headline": [{k: g.to_dict()[k] for k in ("metric", "value", "ci_low", "ci_high", "n")}
                     for g in summary.groups if g.feature == "all"],
        "gaps": [gap.to_dict() for gap in key_gaps(summary)],
    } for name, summary in committed_summaries().items() if made_from(summary, info.file())]
    return ModelCard(name=info.name, path=info.path, sha256=info.sha256, metadata=metadata, evaluations=evaluations)


@dataclass
class Service:
    """One running service: the loaded model and Grad-CAM, what /v1/model says, the limits, and the
    worker pool with its gate. The pool lives as long as the service, not the app's lifespan, which
    may run many times (schemathesis enters it per call, and a request after the first exit would
    meet a shut-down pool)."""

    predictor: Predictor
    explainer: Explainer
    card: ModelCard
    limits: ServiceLimits
    pool: ThreadPoolExecutor
    gate: _Gate

    @classmethod
    def load(cls, checkpoint: Optional[str | os.PathLike], limits: ServiceLimits,
             predictor: Optional[Predictor] = None) -> Service:
        """The model loaded now, not per request; ``predictor`` reuses one already loaded."""
        predictor = predictor or Predictor(checkpoint, max_faces=limits.max_faces)
        if predictor.max_faces < limits.max_faces:
            raise ValueError(f"the predictor classifies at most {predictor.max_faces} faces, "
                             f"under the service's max_faces {limits.max_faces}")
        return cls(predictor, Explainer(predictor.model), model_card_data(checkpoint, predictor.metadata), limits,
                   ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="facekit-serve"),
                   _Gate(limits.workers + limits.queue))

    async def run(self, work: Callable[[], Any]) -> tuple[Any, float]:
        """``work()`` on the pool, or 503 when the pool and its queue are full; also returns the queue wait."""
        if not self.gate.enter():
            raise HTTPException(503, f"busy: {self.gate.capacity} requests in progress or waiting; retry shortly",
                                headers={"Retry-After": str(self.limits.retry_after)})
        admitted = time.perf_counter()
        waited: list[float] = []

        def timed() -> Any:
            waited.append(time.perf_counter() - admitted)
            return work()

        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, timed), waited[0]
        finally:
            self.gate.leave()

    async def read_upload(self, file: UploadFile) -> bytes:
        limit = self.limits.max_upload_bytes
        data = await file.read(limit + 1)
        if len(data) > limit:
            raise HTTPException(413, f"upload is over the {limit / MB:.0f} MB limit")
        if not data:
            raise HTTPException(400, "empty upload (0 bytes)")
        return data

    def decode_and_predict(self, data: bytes, name: str, max_faces: int) -> tuple[Image.Image, ImageResult, float]:
        started = time.perf_counter()
        photo = load_image(data, max_bytes=self.limits.max_upload_bytes, max_pixels=self.limits.max_pixels)
        decoded = time.perf_counter() - started
        result = self.predictor.predict(photo, name=name)
        if len(result.faces) > max_faces:
            result = replace(result, faces=result.faces[:max_faces],
                             skipped_faces=result.skipped_faces + len(result.faces) - max_faces)
        return photo, result, decoded


def current(request: Request) -> Service:
    """The endpoints' dependency: the service of the app that received the request."""
    return request.app.state.service


def faces_asked(request: Request, max_faces: Optional[int] = Query(
        None, ge=1, description="Classify at most this many faces, largest first (default and most: the "
                                "service's max_faces, in GET /v1/model's limits).")) -> int:
    limit = current(request).limits.max_faces
    if max_faces is not None and max_faces > limit:
        raise HTTPException(422, f"max_faces: Input should be less than or equal to {limit}")
    return max_faces or limit


async def image_error(_: Request, error: ImageError) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=image_error_status(error))


async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 without the ``input`` it would echo: that may be the whole uploaded file."""
    problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                for e in error.errors()]
    return JSONResponse({"detail": problems}, status_code=422)


router = APIRouter()


@router.post(f"{API}/predict", response_model=PredictResponse, responses=ERRORS)
async def predict(file: UploadFile = File(..., description="One photo (JPEG, PNG, WebP, ...)."),
                  max_faces: int = Depends(faces_asked), service: Service = Depends(current)) -> PredictResponse:
    """Gender, ethnicity and age of every face: the rows of `facekit predict --format json`."""
    started = time.perf_counter()
    data = await service.read_upload(file)
    name = file.filename or "upload"
    (photo, result, decoded), waited = await service.run(lambda: service.decode_and_predict(data, name, max_faces))
    timings = {"queue": waited, "decode": decoded, "detect": result.timings.get("detect", 0.0),
               "model": result.timings.get("model", 0.0), "total": time.perf_counter() - started}
    return PredictResponse(file=name, width=photo.width, height=photo.height, faces=len(result.faces),
                           skipped_faces=result.skipped_faces, rows=prediction_rows([result]),
                           timings={key: round(value, 4) for key, value in timings.items()}, model=service.card.name)


@router.post(f"{API}/explain", responses={**ERRORS, 200: {"content": {"image/png": {}},
                                                         "description": "the photo with each face's heat map"}},
             response_class=Response)
async def explain(file: UploadFile = File(..., description="One photo."),
                  head: HeadName = Query(..., description="The head to explain."),
                  target: Optional[str] = Query(None, description="Class to explain (e.g. female, asian; for age: "
                                                                  "expected or an age bin such as 20-29). Default: "
                                                                  "each face's own prediction."),
                  method: MethodName = Query("gradcam"),
                  max_faces: int = Depends(faces_asked), service: Service = Depends(current)) -> Response:
    """Grad-CAM of one head for every face, drawn over the photo as a PNG (as `facekit explain` draws it)."""
    from facekit.viz import heat_overlay

    try:
        check_target(head, target)
    except ValueError as error:
        raise HTTPException(422, str(error)) from None
    data = await service.read_upload(file)

    def work() -> tuple[bytes, int, float]:
        photo, result, _ = service.decode_and_predict(data, file.filename or "upload", max_faces)
        if not result.faces:
            raise HTTPException(422, f"nothing to explain: {result.message}")
        explanation = service.explainer.explain(photo, result.faces, head, target, method)
        buffer = io.BytesIO()
        heat_overlay(photo, *explanation.photo_heat()).save(buffer, format="PNG")
        return buffer.getvalue(), len(result.faces), explanation.seconds

    (png, faces, seconds), _ = await service.run(work)
    return Response(png, media_type="image/png", headers={"X-Faces": str(faces), "X-Explain-Seconds": f"{seconds:.3f}"})


@router.get(f"{API}/model")
def model(service: Service = Depends(current)) -> dict:
    """The checkpoint's sidecar (label schema, preprocessing, training, metrics, licence), its test-set
    evaluation with 95% intervals and largest group gaps, and this service's limits."""
    return {**asdict(service.card), "limits": asdict(service.limits)}


@router.get("/healthz")
def healthz(service: Service = Depends(current)) -> dict:
    """Up, with the model loaded; how many requests are in progress or waiting."""
    return {"status": "ok", "model": service.card.name, "busy": service.gate.busy, "capacity": service.gate.capacity}


def create_app(checkpoint: Optional[str | os.PathLike] = None, limits: ServiceLimits = ServiceLimits(),
               predictor: Optional[Predictor] = None, allowed_hosts: Optional[list[str]] = None) -> FastAPI:
    """The service with its model loaded (now, not per request). ``predictor`` reuses one already loaded;
    ``allowed_hosts`` (Host header values) refuses requests for any other name with 400, so a web page
    cannot reach a service on localhost through a rebound DNS name.

    No /docs page: Swagger UI loads from a CDN, which fails offline; the schema is at /openapi.json."""
    app = FastAPI(title="facekit", version="1", docs_url=None, redoc_url=None,
                  description="Age, gender and ethnicity of every face in a photo, and Grad-CAM maps of what each "
                              "head looked at. Predictions are probabilities from a model that is wrong sometimes, "
                              "more often for some groups: do not use them to decide about individuals.",
                  form_limits={"max_files": 1, "max_fields": 8})
    app.add_middleware(BodyLimit, limit=limits.max_upload_bytes + BODY_OVERHEAD,
                       detail=f"upload is over the {limits.max_upload_bytes / MB:.0f} MB limit")
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app.add_exception_handler(ImageError, image_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.state.service = Service.load(checkpoint, limits, predictor)
    app.include_router(router)
    return app


def serve(host: str = "127.0.0.1", port: int = 8000, checkpoint: Optional[str | os.PathLike] = None,
          limits: ServiceLimits = ServiceLimits(), log_level: str = "info") -> None:
    """Run the service with uvicorn until interrupted.

    Torch gets ``cores // workers`` threads (at least one), so ``workers`` concurrent requests
    share the cores instead of each spinning up a thread per core.
    """
    import torch
    import uvicorn

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // limits.workers))
    app = create_app(checkpoint, limits, allowed_hosts=list(LOOPBACK) if host in LOOPBACK else None)
    # Connections beyond those that may run or wait get 503 before their request is read, so slow
    # clients cannot hold every connection; idle keep-alive connections close after a few seconds.
    uvicorn.run(app, host=host, port=port, log_level=log_level, limit_concurrency=limits.workers + limits.queue + 4,
                timeout_keep_alive=5, h11_max_incomplete_event_size=16 * 1024)


# Names of this machine: a service bound to one answers requests for these Host names only.
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class LoadResult:
    """One load test: how many requests, how fast, and what failed (status or exception -> count)."""

    url: str
    concurrency: int
    requests: int
    ok: int
    errors: dict[str, int]
    seconds: float
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    max_ms: float
    load_before: tuple[float, float, float]  # os.getloadavg(): what else used the cores
    load_after: tuple[float, float, float]

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        failed = ", ".join(f"{key}: {count}" for key, count in self.errors.items()) or "none"
        return (f"{self.requests} requests to {self.url}, {self.concurrency} at a time: "
                f"{self.requests_per_s:.1f} requests/s, latency p50 {self.p50_ms:.0f} ms, p95 {self.p95_ms:.0f} ms, "
                f"max {self.max_ms:.0f} ms; {self.ok} ok, failed: {failed}; "
                f"load average {self.load_before[0]:.2f} before, {self.load_after[0]:.2f} after")


def predict_url(url: str) -> str:
    """The /v1/predict endpoint of a service given by its base URL (or that endpoint itself)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    path = parts.path.rstrip("/")
    if path.endswith(f"{API}/predict"):
        return url
    return urllib.parse.urlunsplit(parts._replace(path=f"{path}{API}/predict"))


def load_test(url: str, image: bytes, concurrency: int = 4, requests: int = 200, filename: str = "photo.jpg",
              timeout: float = 60.0) -> LoadResult:
    """POST ``image`` to the service's /v1/predict ``requests`` times from ``concurrency`` threads.

    One request first, untimed, warms the service up and fails fast (ConnectionError) when
    nothing answers. Latency is per request as the client sees it, queueing included.
    """
    import httpx

    if concurrency < 1 or requests < 1:
        raise ValueError("concurrency and requests must be at least 1")
    endpoint = predict_url(url)
    files = {"file": (filename, image, "application/octet-stream")}
    try:
        httpx.post(endpoint, files=files, timeout=timeout)
    except httpx.HTTPError as error:
        raise ConnectionError(f"no answer from {endpoint} ({error})") from None
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    remaining = iter(range(requests))

    def client() -> None:
        with httpx.Client(timeout=timeout) as session:
            while True:
                with lock:
                    if next(remaining, None) is None:
                        return
                started = time.perf_counter()
                try:
                    status = str(session.post(endpoint, files=files).status_code)
                except httpx.HTTPError as error:
                    status = type(error).__name__
                elapsed = time.perf_counter() - started
                with lock:
                    if status == "200":
                        latencies.append(elapsed)
                    else:
                        errors[status] = errors.get(status, 0) + 1

    load_before = os.getloadavg()
    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    millis = np.array(latencies) * 1000 if latencies else np.zeros(1)
    p50, p95 = np.percentile(millis, [50, 95])
    return LoadResult(url=endpoint, concurrency=concurrency, requests=requests, ok=len(latencies), errors=errors,
                      seconds=round(seconds, 3), requests_per_s=round(len(latencies) / seconds, 2),
                      p50_ms=round(float(p50), 1), p95_ms=round(float(p95), 1), max_ms=round(float(millis.max()), 1),
                      load_before=tuple(round(v, 2) for v in load_before),  # type: ignore[arg-type]
                      load_after=tuple(round(v, 2) for v in os.getloadavg()))  # type: ignore[arg-type]
