"""`facekit serve` with the shipped model: the CLI's rows over HTTP, Grad-CAM PNGs, the model card,
a 4xx with a clear message for every bad input, the OpenAPI schema fuzzed by schemathesis, and a
bounded load test against the real `facekit serve` command on a loopback port."""
from __future__ import annotations

import asyncio
import io
import json
import subprocess
import time

import httpx
import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given, settings
from PIL import Image
from typer.testing import CliRunner

from conftest import ASTRONAUT_FACE, CLI, box_iou, free_port, noise_image
from facekit import labels
from facekit.vision.io import MB, SAMPLE_PHOTO
from facekit.rows import prediction_rows
from facekit.serving.service import BODY_OVERHEAD, ServiceLimits, create_app, load_test, predict_url
from test_bad_inputs import png_bomb

pytestmark = pytest.mark.slow
LIMITS = ServiceLimits(max_upload_bytes=2 * MB, max_faces=3)
PHOTO = SAMPLE_PHOTO.read_bytes()  # the 512x512 astronaut, one face


@pytest.fixture(scope="module")
def app(predictor):
    return create_app(limits=LIMITS, predictor=predictor)


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient

    return TestClient(app)  # raise_server_exceptions: a server bug fails the test with its traceback


def upload(data: bytes, name: str = "photo.jpg") -> dict:
    return {"file": (name, data, "application/octet-stream")}


def test_predict_rows_are_the_clis_rows(client, predictor):
    response = client.post("/v1/predict", files=upload(PHOTO, "astronaut.jpg"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"], body["faces"], body["skipped_faces"]) == (512, 512, 1, 0)
    assert body["rows"] == prediction_rows([predictor.predict(PHOTO, name="astronaut.jpg")])
    row = body["rows"][0]
    assert box_iou((row["x1"], row["y1"], row["x2"], row["y2"]), ASTRONAUT_FACE) > 0.6
    assert row["gender"] == "female" and row["error"] == ""
    assert body["timings"]["total"] >= body["timings"]["detect"] > 0


def test_max_faces_bounds_the_faces_classified(client, astronaut):
    face = astronaut.crop((150, 30, 300, 210))
    group = Image.new("RGB", (700, 300), "white")
    for i, size in enumerate((150, 200)):
        group.paste(face.resize((size, int(size * 1.2))), (20 + i * 330, 10))
    data = io.BytesIO()
    group.save(data, format="PNG")
    both = client.post("/v1/predict", files=upload(data.getvalue())).json()
    one = client.post("/v1/predict?max_faces=1", files=upload(data.getvalue())).json()
    assert both["faces"] == 2 and (one["faces"], one["skipped_faces"]) == (1, 1)
    assert one["rows"][0] == both["rows"][0]  # the largest face, the same answer
    over = client.post(f"/v1/predict?max_faces={LIMITS.max_faces + 1}", files=upload(data.getvalue()))
    assert over.status_code == 422 and "less than or equal to 3" in over.text


def test_a_photo_without_a_face_gives_the_clis_error_row(client, predictor):
    data = io.BytesIO()
    noise_image((200, 200)).save(data, format="PNG")
    body = client.post("/v1/predict", files=upload(data.getvalue(), "noise.png")).json()
    assert body["faces"] == 0
    assert body["rows"] == prediction_rows([predictor.predict(data.getvalue(), name="noise.png")])
    assert body["rows"][0]["error"]
    explained = client.post("/v1/explain?head=gender", files=upload(data.getvalue()))
    assert explained.status_code == 422 and explained.json()["detail"].startswith("nothing to explain: ")


@pytest.mark.parametrize("query", ["head=gender", "head=age&target=20-29&method=gradcam%2B%2B"])
def test_explain_returns_a_png_overlay_of_the_photo(client, query):
    response = client.post(f"/v1/explain?{query}", files=upload(PHOTO))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png" and response.headers["x-faces"] == "1"
    overlay = Image.open(io.BytesIO(response.content))
    assert overlay.format == "PNG" and overlay.size == (512, 512)
    original = Image.open(SAMPLE_PHOTO).convert("RGB")
    inside = (220, 120, 221, 121)  # a pixel on the face, which the heat map colours
    outside = (5, 500, 6, 501)  # a corner, which no face's crop reaches
    assert overlay.crop(inside).tobytes() != original.crop(inside).tobytes()
    assert overlay.crop(outside).tobytes() == original.crop(outside).tobytes()


def test_model_card_has_the_label_schema_and_metrics(client):
    card = client.get("/v1/model").json()
    assert card["name"] == "facekit-multi" and len(card["sha256"]) == 64
    assert card["metadata"]["labels"]["gender"] == list(labels.GENDERS)
    assert card["metadata"]["labels"]["race"] == list(labels.RACE7)
    validation = {part["dataset"]: part for part in card["metadata"]["metrics"]["validation"]}
    assert set(validation) == {"utkface", "fairface", "wider-dev"}
    assert all(0.5 < part["gender_accuracy"] <= 1 for part in validation.values())
    evaluations = {e["report"]: e for e in card["evaluations"]}  # the committed reports of these weights
    assert set(evaluations) == {"facekit-multi-utkface", "facekit-multi-fairface", "facekit-multi-wider-dev"}
    utkface = evaluations["facekit-multi-utkface"]
    headline = {row["metric"]: row for row in utkface["headline"]}
    gender = headline["gender.accuracy"]
    assert 0.5 < gender["value"] <= 1 and gender["ci_low"] <= gender["value"] <= gender["ci_high"]
    assert headline["age.mae"]["n"] > 1000 and utkface["gaps"]
    assert all("/" not in e["dataset"]["source"] for e in evaluations.values())  # no path of this server
    assert card["limits"]["max_upload_bytes"] == LIMITS.max_upload_bytes
    assert client.get("/healthz").json()["status"] == "ok"


def test_no_docs_page_that_needs_a_cdn_but_the_schema_is_served(client):
    assert client.get("/docs").status_code == 404
    assert client.get("/openapi.json").json()["info"]["title"] == "facekit"


def test_a_422_does_not_echo_the_upload(client):
    response = client.post("/v1/predict", files={"file": ("", PHOTO, "image/jpeg")})
    assert response.status_code in (400, 422), response.text
    assert len(response.content) < 2000 and "JFIF" not in response.text


def truncated_jpeg() -> bytes:
    return PHOTO[: len(PHOTO) // 2]


BAD_UPLOADS = {
    "zero bytes": (b"", 400, "empty upload"),
    "random bytes": (bytes(range(256)) * 8, 422, "not an image file"),
    "a text file": (b"name,age\nalice,30\n", 422, "not an image file"),
    "truncated JPEG": (truncated_jpeg(), 422, "corrupt or truncated"),
    "oversized upload": (b"\xff" * (3 * MB), 413, "over the 2 MB limit"),
    "decompression bomb": (png_bomb(), 413, "too many pixels"),
}


@pytest.mark.parametrize("endpoint", ["/v1/predict", "/v1/explain?head=race"])
@pytest.mark.parametrize("case", BAD_UPLOADS)
def test_bad_uploads_get_a_4xx_with_a_clear_message(client, endpoint, case):
    data, status, words = BAD_UPLOADS[case]
    response = client.post(endpoint, files=upload(data))
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]


def test_a_streamed_body_over_the_limit_is_cut_off(app):
    """Without a Content-Length the body is counted as it arrives, and reading stops at the limit.

    Driven through the ASGI interface itself: a test client would read the whole body first.
    """
    boundary, chunk = "facekit", 64 * 1024
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'.encode(),
             *[bytes(chunk)] * 64, f"\r\n--{boundary}--\r\n".encode()]  # a 4 MB file
    read, sent = [], []

    async def receive():
        if len(read) == len(parts):
            return {"type": "http.disconnect"}
        read.append(parts[len(read)])
        return {"type": "http.request", "body": read[-1], "more_body": len(read) < len(parts)}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/predict", "raw_path": b"/v1/predict", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", f"multipart/form-data; boundary={boundary}".encode())],
             "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
    asyncio.run(app(scope, receive, send))
    detail = json.loads(b"".join(message.get("body", b"") for message in sent[1:]))["detail"]
    assert sent[0]["status"] == 413 and detail == "upload is over the 2 MB limit"
    assert sum(map(len, read)) <= LIMITS.max_upload_bytes + BODY_OVERHEAD + chunk  # the rest was never read


@pytest.mark.parametrize("query, words", [
    ("head=colour", "Input should be 'gender', 'race', 'race7' or 'age'"),
    ("head=gender&target=asian", "unknown target 'asian' for the gender head; choose one of male, female"),
    ("head=age&target=200", "unknown target '200' for the age head"),
    ("head=gender&method=lime", "Input should be 'gradcam' or 'gradcam++'"),
    ("", "Field required"),
])
def test_bad_explain_parameters_get_a_422_naming_the_choices(client, query, words):
    response = client.post(f"/v1/explain?{query}", files=upload(PHOTO))
    assert response.status_code == 422 and words in response.text


def test_a_missing_file_or_a_non_multipart_body_is_a_422(client):
    assert client.post("/v1/predict").status_code == 422
    response = client.post("/v1/predict", content=PHOTO, headers={"content-type": "image/jpeg"})
    assert response.status_code == 422 and "file" in response.text


def test_a_full_queue_answers_503_with_retry_after(app, client):
    gate = app.state.service.gate
    gate.busy = gate.capacity  # every worker and queue place taken
    try:
        response = client.post("/v1/predict", files=upload(PHOTO))
    finally:
        gate.busy = 0
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "busy" in response.json()["detail"]
    assert client.post("/v1/predict", files=upload(PHOTO)).status_code == 200


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_openapi_schema_fuzzed_never_gives_a_server_error(app, mode):
    """Schemathesis' requests from the app's own schema, valid and invalid: no 5xx, every answer as documented.

    Every check runs but ``positive_data_acceptance``: a schema-valid upload is any bytes, and
    bytes that are not a photo rightly get a 422, which OpenAPI has no way to rule out. A plain
    ``@given`` over ``schema.as_strategy``: ``schemathesis.pytest.from_fixture`` (4.32) reads
    pytest's private ``Function._nodeid``, which pytest 9 no longer has.
    """
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)

    @given(case=schema.as_strategy(mode))
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def fuzz(case):
        case.call_and_validate(excluded_checks=[schemathesis.checks.positive_data_acceptance])

    fuzz()


@pytest.fixture(scope="module")
def served():
    """`facekit serve` in a subprocess on a free loopback port, up once /healthz answers."""
    port = free_port()
    process = subprocess.Popen([*CLI, "serve", "--port", str(port), "--workers", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                pytest.fail(f"facekit serve exited: {process.stdout.read()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("facekit serve did not answer /healthz within 180 s")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_load_test_against_facekit_serve(served):
    result = load_test(served, PHOTO, concurrency=4, requests=40)
    print(f"\n{result.text()}")
    assert result.ok == 40 and result.errors == {}
    assert result.requests_per_s > 0 and result.p95_ms >= result.p50_ms > 0
    from facekit.cli import app as cli

    printed = CliRunner().invoke(cli, ["loadtest", served, "--requests", "4", "--concurrency", "2", "--json"])
    assert printed.exit_code == 0, printed.output
    assert '"ok": 4' in printed.output and '"p95_ms"' in printed.output


def test_the_served_service_answers_only_its_own_host_names(served):
    assert httpx.get(f"{served}/healthz", headers={"Host": "rebound.example"}, timeout=10).status_code == 400
    assert httpx.get(f"{served}/healthz", headers={"Host": "localhost"}, timeout=10).status_code == 200


def test_load_test_names_what_it_could_not_reach():
    assert predict_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000/v1/predict"
    with pytest.raises(ValueError, match="not an http"):
        load_test("localhost:8000", PHOTO)
    with pytest.raises(ConnectionError, match="no answer from"):
        load_test(f"http://127.0.0.1:{free_port()}", PHOTO, requests=1)
