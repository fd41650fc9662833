"""The app in a real browser: Debian's Chromium, driven by Playwright, against `streamlit run app.py`.

AppTest runs page scripts without a frontend; only a browser shows that the pages render
without an exception box, that the real uploader delivers files, and that Plotly draws the
charts. One server and one browser serve the whole module; each step leaves a screenshot in
``artifacts/screenshots/`` for a person to look at.
"""
from __future__ import annotations

import io
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import expect, sync_playwright

from conftest import REPO, free_port
from facekit.evaluation.evaluate import save_evaluation
from facekit.vision.io import SAMPLE_PHOTO
from facekit.models.model import DEFAULT_MODEL
from test_evaluate import synthetic_evaluation

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]
ARTIFACTS = REPO / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
VIEWPORT = {"width": 1400, "height": 1000}
SLOW = 120_000  # ms: loading the model, detection and Grad-CAM on two busy cores

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"{CHROMIUM} is missing (`bash scripts/run.sh test` installs Debian's chromium)")]
needs_model = pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason=f"the shipped model is missing at {DEFAULT_MODEL}")


@pytest.fixture(scope="module")
def app_url():
    """`streamlit run app.py` on a free port, as the README starts it; its log is kept as an artifact."""
    port = free_port()
    url = f"http://localhost:{port}"
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / "streamlit-server.log").open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"streamlit did not come up; see {ARTIFACTS / 'streamlit-server.log'}")
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser):
    """A fresh session (Streamlit keeps state per tab); an uncaught frontend error fails the test."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors


def settled(page, name: str) -> None:
    """Wait until the script run ends, assert Streamlit shows no exception, and keep a screenshot.

    Callers first wait for something the run draws, so the run has started by then. The
    screenshot grows the window to the page's height: Streamlit scrolls inside its main
    block, so a full-page screenshot alone would stop at the window's edge.
    """
    expect(page.get_by_test_id("stApp")).to_have_attribute("data-test-script-state", "notRunning", timeout=SLOW)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(max(height, VIEWPORT["height"]), 12_000)})
    page.mouse.move(0, 0)  # no hover tooltip in the picture
    page.wait_for_timeout(500)  # Plotly redraws at the new size
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png")
    page.set_viewport_size(VIEWPORT)


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the sidebar selectbox labelled ``label``."""
    page.get_by_test_id("stSidebar").get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option, exact=True).click()


def upload(page, files) -> None:
    """Give files to the page's uploader as a person would, through its input element."""
    page.get_by_test_id("stFileUploader").locator("input[type=file]").set_input_files(files)


def plotly_charts(scope):
    return scope.locator(".js-plotly-plot")


@pytest.mark.parametrize("path, title", [("", "facekit"), ("Predict", "Predict"), ("Batch_Analytics", "Batch analytics"),
                                          ("Video", "Video")])
def test_pages_render_without_an_exception(page, app_url, path, title):
    """The explorer and evaluation pages are visited, and checked the same way, by their own tests."""
    page.goto(f"{app_url}/{path}")
    expect(page.get_by_role("heading", name=title, level=1)).to_be_visible(timeout=SLOW)
    for name in ("Dataset Explorer", "Predict", "Batch Analytics", "Model Evaluation", "Video", "Live"):
        expect(page.get_by_test_id("stSidebarNav").get_by_text(name, exact=True)).to_be_visible()
    settled(page, f"page-{path or 'home'}")


def test_explorer_draws_its_charts_on_every_tab(page, app_url):
    page.goto(f"{app_url}/Dataset_Explorer")
    expect(page.get_by_text("UTKFace: 23,707 faces")).to_be_visible(timeout=SLOW)
    for tab in ("Distributions", "Crossings", "Side by side"):
        page.get_by_role("tab", name=tab).click()
        panel = page.get_by_role("tabpanel", name=tab)
        expect(plotly_charts(panel).first).to_be_visible(timeout=SLOW)
        expect(panel.locator(".main-svg").first).to_be_visible()  # Plotly drew, not just a placeholder
        settled(page, f"explorer-{tab.lower().replace(' ', '-')}")


def test_evaluation_report_from_disk_draws_its_charts(page, app_url, tmp_path):
    save_evaluation(synthetic_evaluation(300, seed=0), tmp_path / "synthetic")
    page.goto(f"{app_url}/Model_Evaluation")
    expect(page.get_by_role("heading", name="Model Evaluation", level=1)).to_be_visible(timeout=SLOW)
    settled(page, "evaluation-default")  # the committed report, or the prompt to choose one
    folder = page.get_by_test_id("stSidebar").get_by_role("textbox", name="Folder")
    if not folder.count():  # a committed report is the default choice
        choose(page, "Report", "A report folder on disk")
    folder.fill(str(tmp_path / "synthetic"))
    folder.press("Enter")
    expect(page.get_by_role("tab", name="Overview")).to_be_visible(timeout=SLOW)
    for tab in ("Classes", "Groups", "Age", "Calibration"):
        page.get_by_role("tab", name=tab).click()
        expect(plotly_charts(page.get_by_role("tabpanel", name=tab)).first).to_be_visible(timeout=SLOW)
        settled(page, f"evaluation-{tab.lower()}")


@needs_model
def test_predict_says_why_a_corrupt_upload_fails_then_shows_box_heads_and_grad_cam(page, app_url):
    page.goto(f"{app_url}/Predict")
    expect(page.get_by_test_id("stFileUploader")).to_be_visible(timeout=SLOW)
    upload(page, {"name": "holiday.jpg", "mimeType": "image/jpeg", "buffer": b"\xff\xd8\xff\xe0 cut off here"})
    expect(page.get_by_text("Could not use holiday.jpg: image data is corrupt or truncated")).to_be_visible(
        timeout=SLOW)
    settled(page, "predict-corrupt-upload")

    upload(page, SAMPLE_PHOTO)  # the same uploader, so the page kept working after the error
    expect(page.get_by_text("1 face in astronaut.jpg")).to_be_visible(timeout=SLOW)
    expect(page.get_by_text("Grad-CAM of the gender head")).to_be_visible(timeout=SLOW)
    settled(page, "predict-astronaut")  # the run has drawn everything: what follows is not a race with it
    expect(page.get_by_test_id("stAlertContentError")).to_have_count(0)
    expect(page.get_by_text("Each face boxed and labelled")).to_be_visible()
    expect(page.get_by_test_id("stImage").first.locator("img")).to_be_visible()
    metrics = page.get_by_test_id("stMetric")
    expect(metrics.filter(has_text="Gender")).to_be_visible()
    expect(metrics.filter(has_text="Age")).to_contain_text("years")
    expect(plotly_charts(page)).to_have_count(2)  # the ethnicity bars and the age distribution

    uploaded = page.get_by_test_id("stFileUploader").get_by_text("astronaut.jpg")
    expect(uploaded).to_have_count(1)
    page.get_by_role("button", name="Try the sample photo").click()  # the uploader lets go of its file
    expect(uploaded).to_have_count(0, timeout=SLOW)
    expect(page.get_by_text("1 face in astronaut.jpg")).to_be_visible(timeout=SLOW)


@needs_model
def test_predict_lists_every_face_of_a_group_photo_by_its_number(page, app_url, collage):
    photo = io.BytesIO()
    collage.save(photo, format="PNG")
    page.goto(f"{app_url}/Predict")
    expect(page.get_by_test_id("stFileUploader")).to_be_visible(timeout=SLOW)
    upload(page, {"name": "group.png", "mimeType": "image/png", "buffer": photo.getvalue()})
    expect(page.get_by_text("10 faces in group.png")).to_be_visible(timeout=SLOW)
    expect(page.get_by_text("Grad-CAM of the gender head")).to_be_visible(timeout=SLOW)
    settled(page, "predict-group")
    table = page.get_by_test_id("stDataFrame").locator("[aria-rowcount]")
    expect(table).to_have_attribute("aria-rowcount", "11")  # the header and one row per face
    expect(page.get_by_text("Face 10", exact=True)).to_be_visible()  # the last card


@needs_model
def test_batch_upload_keeps_good_photos_and_lists_bad_ones(page, app_url):
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w") as archive:
        archive.writestr("zeros.jpg", bytes(5_000_000), compress_type=zipfile.ZIP_DEFLATED)
    page.goto(f"{app_url}/Batch_Analytics")
    expect(page.get_by_test_id("stFileUploader")).to_be_visible(timeout=SLOW)
    upload(page, [{"name": "astronaut.jpg", "mimeType": "image/jpeg", "buffer": SAMPLE_PHOTO.read_bytes()},
                  {"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": b"not a jpeg"},
                  {"name": "bomb.zip", "mimeType": "application/zip", "buffer": bomb.getvalue()}])
    page.get_by_role("button", name="Analyse 3 files").click()
    metrics = page.get_by_test_id("stMetric")
    expect(metrics.filter(has_text="Photos with a face")).to_contain_text("1 of 3", timeout=SLOW)
    expect(metrics.filter(has_text="Unreadable or without a face")).to_contain_text("2")
    expect(metrics.filter(has_text="Faces per photo")).to_contain_text("1.0")
    expect(metrics.filter(has_text="Too small to read reliably")).to_contain_text("0")
    expect(plotly_charts(page)).to_have_count(4, timeout=SLOW)
    page.get_by_text("2 inputs without a face").click()
    settled(page, "batch-mixed-upload")
    with page.expect_download() as download:  # the tables are drawn on a canvas: read the rows from the CSV
        page.get_by_role("button", name="All rows (CSV)").click()
    rows = pd.read_csv(download.value.path(), keep_default_na=False).set_index("file")
    assert rows.loc["astronaut.jpg", "gender"] in ("female", "male")
    assert rows.loc["broken.jpg", "error"].startswith("not an image file")
    assert "zip bomb" in rows.loc["bomb.zip::zeros.jpg", "error"]
