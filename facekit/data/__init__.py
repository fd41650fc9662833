"""Datasets as one table: a reader per format, the UTKFace split, shipped label indexes, statistics.

``read_dataset(path)`` reads any supported format into a ``DatasetTable`` whose ``frame`` has
the columns ``COLUMNS`` (image, file, age, age_bin, gender, race, dataset) plus the format's
own; ``read_image_bytes`` / ``open_image`` resolve its ``image`` references.
"""
from facekit.data.fairface import read_fairface
from facekit.data.formats import read_dataset
from facekit.data.images import extracted_archive, open_image, read_image_bytes
from facekit.data.kaggle import read_kaggle_age_gender
from facekit.data.manifest import read_manifest
from facekit.data.paths import data_dir, locate_utkface
from facekit.data.seed003 import read_seed003
from facekit.data.shipped import load_shipped_index, write_shipped_index
from facekit.data.splits import SPLIT_PATH, SPLITS, SplitMismatch, load_split, make_split, read_split, write_split
from facekit.data.table import COLUMNS, Anomaly, DatasetError, DatasetTable
from facekit.data.utkface import iter_utkface_images, parse_utkface_name, read_utkface

__all__ = [
    "COLUMNS",
    "SPLITS",
    "SPLIT_PATH",
    "Anomaly",
    "DatasetError",
    "DatasetTable",
    "SplitMismatch",
    "data_dir",
    "extracted_archive",
    "iter_utkface_images",
    "load_shipped_index",
    "load_split",
    "locate_utkface",
    "make_split",
    "open_image",
    "parse_utkface_name",
    "read_dataset",
    "read_fairface",
    "read_image_bytes",
    "read_kaggle_age_gender",
    "read_manifest",
    "read_seed003",
    "read_split",
    "read_utkface",
    "write_shipped_index",
    "write_split",
]
