"""Fixtures: synthetic task frames (see models_synth.py)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models_synth import make_gmv_frame, make_ltv_frame  # noqa: E402


@pytest.fixture
def gmv_frames():
    df = make_gmv_frame()
    return (df[df.split == "train"].reset_index(drop=True), df[df.split == "val"].reset_index(drop=True),
            df[df.split == "eval"].reset_index(drop=True))


@pytest.fixture
def ltv_frames():
    df = make_ltv_frame()
    return (df[df.split == "train"].reset_index(drop=True), df[df.split == "val"].reset_index(drop=True))
