"""The Dataset Explorer page and the home page under Streamlit's AppTest: they run, and show what they promise."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from test_data_readers import make_utk_folder

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[1]
PAGE = str(ROOT / "pages" / "1_Dataset_Explorer.py")


def explorer() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def test_explorer_shows_shipped_utkface_with_figures_and_licence() -> None:
    at = explorer()
    assert at.subheader[0].value.startswith("UTKFace: 23,707 faces")
    assert charts(at) >= 9  # 3 distributions, 3 crossings, 3 side-by-side against FairFace
    assert len(at.metric) == 12 and at.metric[0].value.endswith("%")
    assert any("non-commercial research" in caption.value for caption in at.caption)
    assert any("imbalanced" in caption.value for caption in at.caption)
    assert len(at.get("download_button")) == 1


def test_explorer_fairface_has_no_ages_in_years_but_still_charts() -> None:
    at = explorer()
    at.sidebar.selectbox(key="dataset").set_value("FairFace (shipped labels)").run()
    assert not at.exception, at.exception
    assert at.subheader[0].value.startswith("FairFace: 97,698 faces")
    assert charts(at) >= 7  # age groups instead of years, the 7-class chart, crossings
    at.sidebar.selectbox(key="compare").set_value("UTKFace (shipped labels)").run()
    assert not at.exception and charts(at) >= 10


def test_explorer_dataset_on_disk_filters_and_shows_faces(tmp_path: Path) -> None:
    folder = make_utk_folder(tmp_path / "UTKFace")
    at = explorer()
    at.sidebar.selectbox(key="dataset").set_value("A dataset on disk").run()
    at.sidebar.text_input(key="dataset_path").input(str(folder)).run()
    assert not at.exception, at.exception
    assert at.subheader[0].value == "UTKFace: 6 faces"
    at.multiselect(key="filter_gender").select("female").run()
    assert any(caption.value == "3 of 6 faces match." for caption in at.caption)
    at.toggle(key="show_faces").set_value(True).run()
    assert not at.exception, at.exception
    assert len(at.image) == 1 and not at.warning


def test_explorer_reports_an_unreadable_path_without_crashing(tmp_path: Path) -> None:
    at = explorer()
    at.sidebar.selectbox(key="dataset").set_value("A dataset on disk").run()
    at.sidebar.text_input(key="dataset_path").input(str(tmp_path / "absent.tar.gz")).run()
    assert not at.exception, at.exception
    assert "no such file or folder" in at.sidebar.error[0].value


def test_home_page_lists_the_explorer() -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    assert any("Dataset Explorer" in block.value for block in at.markdown)


def test_a_path_outside_the_apps_roots_is_refused(tmp_path: Path, monkeypatch) -> None:
    from facekit.app.common import app_roots, outside_roots

    inside = tmp_path / "data"
    inside.mkdir()
    (tmp_path / "escape").symlink_to("/etc")
    roots = [inside.resolve()]
    assert outside_roots(inside / "UTKFace", roots) is None
    assert "FACEKIT_APP_ROOTS" in outside_roots(Path("/etc/passwd"), roots)
    assert outside_roots(inside / ".." / "escape" / "passwd", roots) is not None  # .. and links resolved first
    monkeypatch.setenv("FACEKIT_APP_ROOTS", str(inside))
    assert inside.resolve() in app_roots()
    at = explorer()
    at.sidebar.selectbox(key="dataset").set_value("A dataset on disk").run()
    at.sidebar.text_input(key="dataset_path").input("/").run()
    assert not at.exception and "outside the folders this app may open" in at.sidebar.error[0].value
