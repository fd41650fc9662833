"""The label schema's encoding: class indices, -1 for unknown, an error for a foreign label."""
import math

import pytest

from facekit import labels


def test_encode_gives_indices_and_minus_one_for_unknown():
    assert labels.encode(["female", None, "male", math.nan], labels.GENDERS) == [1, -1, 0, -1]
    assert labels.encode(["others", "white"], labels.RACES) == [4, 0]


def test_encode_refuses_a_label_outside_the_schema():
    with pytest.raises(ValueError, match="latino_hispanic"):
        labels.encode(["latino_hispanic"], labels.RACES)
