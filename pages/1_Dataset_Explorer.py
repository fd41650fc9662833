"""Dataset Explorer: who is in a face dataset, who is missing, and how two datasets compare.

A thin page: tables come from ``facekit.data``, numbers from ``facekit.data.stats`` and
figures from ``facekit.viz``; this file only lays them out and caches them.
"""
from __future__ import annotations

import warnings
from typing import Optional

import pandas as pd
import streamlit as st

from facekit import labels, viz
from facekit.app import common
from facekit.data import DatasetError, DatasetTable, load_shipped_index, read_dataset, read_image_bytes
from facekit.data import stats
from facekit.data.formats import SUPPORTED
from facekit.data.table import CATEGORIES
from facekit.vision.io import ImageError, thumbnail_jpeg

SHIPPED = {"UTKFace (shipped labels)": "utkface", "FairFace (shipped labels)": "fairface"}
ON_DISK = "A dataset on disk"
NOTHING = "Nothing"
PAGE_SIZE = 24
FILTERS = {"gender": "Gender", "race": "Ethnicity", "age_bin": "Age group"}

st.set_page_config(page_title="Dataset Explorer · facekit", page_icon=":material/query_stats:", layout="wide")


@st.cache_data(show_spinner="Loading the shipped labels…")
def shipped(name: str) -> DatasetTable:
    return load_shipped_index(name)


@st.cache_data(show_spinner="Reading the dataset…", max_entries=4)
def on_disk(path: str, modified: float) -> DatasetTable:
    """``modified`` is part of the cache key only: an edited file is read again."""
    with warnings.catch_warnings():  # the FairFace bin note is in the anomalies, shown below
        warnings.simplefilter("ignore")
        return read_dataset(path)


@st.cache_data(show_spinner=False, max_entries=2000)
def thumbnail(ref: str) -> bytes:
    return thumbnail_jpeg(read_image_bytes(ref))


def shown(value: object) -> str:
    """A table cell as people read it; NA (a float) is 'unknown'."""
    return labels.display(None if pd.isna(value) else str(value))


def choose(label: str, options: list[str], index: int, key: str) -> tuple[Optional[str], Optional[DatasetTable]]:
    """A dataset picked in the sidebar: (name to show, table), or (None, None) when nothing usable is picked."""
    choice = st.sidebar.selectbox(label, options, index=index, key=key)
    if choice in SHIPPED:
        return choice.split(" (")[0], shipped(SHIPPED[choice])
    if choice != ON_DISK:
        return None, None
    target = common.sidebar_path(key, "Path", "/data/UTKFace.tar.gz", f"Any of: {SUPPORTED}.",
                                 "Enter the path of a dataset on this machine.")
    if target is None:
        return None, None
    try:
        return target.name, on_disk(str(target), common.modified(target))
    except DatasetError as error:
        st.sidebar.error(str(error))
        return None, None


def imbalance_metrics(frame: pd.DataFrame) -> None:
    rows = [
        ("Ethnicity", stats.label_counts(frame, "race"), "group"),
        ("Gender", stats.label_counts(frame, "gender"), "group"),
        ("Age group", stats.label_counts(frame, "age_bin"), "age group"),
        ("Gender × ethnicity", stats.intersection_counts(frame), "group"),
    ]
    for title, counts, what in rows:
        result = stats.imbalance(counts, what)
        if result is None:
            continue
        st.markdown(f"**{title}**")
        first, second, third = st.columns(3)
        first.metric("Smallest group's share", f"{result.smallest_share:.1%}", help=labels.display(result.smallest))
        second.metric("Largest / smallest", "no faces in one group" if result.ratio == float("inf") else f"{result.ratio:.1f}×")
        third.metric("Balance (normalized entropy)", f"{result.entropy:.2f}", help="1 = all groups the same size")
        st.caption(result.reading)


def distributions(frame: pd.DataFrame) -> None:
    left, middle, right = st.columns(3)
    if frame["age"].notna().any():
        left.plotly_chart(viz.age_histogram(frame), key="age_histogram")
    else:
        left.plotly_chart(viz.count_bars(stats.label_counts(frame, "age_bin"), "Age group"), key="age_bins")
    middle.plotly_chart(viz.count_bars(stats.label_counts(frame, "gender"), "Gender"), key="gender")
    right.plotly_chart(viz.count_bars(stats.label_counts(frame, "race"), "Ethnicity"), key="race")
    if "race7" in frame and frame["race7"].notna().any():
        st.plotly_chart(viz.count_bars(stats.label_counts(frame, "race7"), "Ethnicity, FairFace's 7 classes"), key="race7")
    unknown = {name: int(frame[column].isna().sum()) for column, name in FILTERS.items()}
    if any(unknown.values()):
        st.caption("Unknown (left out of the charts): " + ", ".join(f"{k.lower()} {v:,}" for k, v in unknown.items() if v))


def crossings(frame: pd.DataFrame) -> None:
    left, right = st.columns(2)
    left.plotly_chart(viz.crossing_heatmap(frame, "race", "gender", "Ethnicity × gender"), key="race_gender")
    right.plotly_chart(viz.age_pyramid(frame), key="pyramid")
    st.plotly_chart(viz.age_by_group(frame), key="age_by_race")


def side_by_side(first: tuple[str, pd.DataFrame], second: tuple[str, pd.DataFrame]) -> None:
    if first[0] == second[0]:
        st.info("Pick a different second dataset in the sidebar to compare.")
        return
    frames = dict([first, second])
    st.caption("Shares of each dataset's faces with a known label; ages are compared in FairFace's age groups.")
    for column, title in (("age_bin", "Age group"), ("gender", "Gender"), ("race", "Ethnicity")):
        st.plotly_chart(viz.compare_bars(stats.compare(frames, column), title), key=f"compare_{column}")


def filtered(frame: pd.DataFrame) -> pd.DataFrame:
    columns = st.columns(len(FILTERS))
    mask = pd.Series(True, index=frame.index)
    for column, (name, title) in zip(columns, FILTERS.items()):
        options = [label for label in CATEGORIES[name] if (frame[name] == label).any()]
        chosen = column.multiselect(title, options, format_func=labels.display, key=f"filter_{name}")
        if chosen:
            mask &= frame[name].isin(chosen)
    return frame[mask]


def gallery(frame: pd.DataFrame) -> None:
    with_images = frame[frame["image"].notna()]
    if with_images.empty:
        st.info("No images for these faces: this dataset is labels only here. For UTKFace, set FACEKIT_UTKFACE to the archive.")
        return
    if not st.toggle("Show faces", key="show_faces", help="Images are read on demand; the first UTKFace read unpacks the archive once."):
        return
    pages = (len(with_images) - 1) // PAGE_SIZE + 1
    page = st.number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, value=1, key="gallery_page")
    on_page = with_images.iloc[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    images, captions = [], []
    with st.spinner("Reading images (the first time, the archive is unpacked into the cache)…"):
        for row in on_page.itertuples():
            try:
                images.append(thumbnail(row.image))
            except ImageError as error:
                st.warning(f"{row.file}: {error}")
                continue
            age = "?" if pd.isna(row.age) else f"{row.age:.0f}"
            captions.append(f"{age} · {shown(row.gender)} · {shown(row.race)}")
    if images:
        st.image(images, caption=captions, width=110)


st.title("Dataset Explorer")
st.caption(
    "**UTKFace** is available for non-commercial research purposes only; the copyright of its images "
    "belongs to their original owners. **FairFace** labels: CC BY 4.0."
)
name, table = choose("Dataset", [*SHIPPED, ON_DISK], 0, "dataset")
other_name, other = choose("Compare with", [NOTHING, *SHIPPED, ON_DISK], 2, "compare")
if table is None:
    st.info("Choose a dataset in the sidebar.")
    st.stop()

frame = table.frame
summary = stats.summarize(table)
st.subheader(f"{name}: {len(frame):,} faces")
st.caption(
    f"Source: `{table.source}` · with ethnicity {summary['with_race']:,} · with gender {summary['with_gender']:,} · "
    f"with age in years {summary['with_age']:,} · with an image {summary['with_image']:,}"
)
if table.anomalies:
    with st.expander(f"{len(table.anomalies):,} anomalies found while reading"):
        st.dataframe(pd.DataFrame([vars(a) for a in table.anomalies]), hide_index=True)

st.header("Imbalance")
imbalance_metrics(frame)
tabs = st.tabs(["Distributions", "Crossings", "Side by side", "Faces and table"])
with tabs[0]:
    distributions(frame)
with tabs[1]:
    crossings(frame)
with tabs[2]:
    if other is None:
        st.info("Choose a second dataset in the sidebar (“Compare with”).")
    else:
        side_by_side((name, frame), (other_name, other.frame))
with tabs[3]:
    subset = filtered(frame)
    st.caption(f"{len(subset):,} of {len(frame):,} faces match.")
    st.download_button(
        "Download these faces' labels (CSV)",
        data=lambda: subset.to_csv(index=False).encode(),
        file_name=f"{table.dataset}-filtered.csv",
        mime="text/csv",
    )
    gallery(subset)
