"""Fixtures of the monitoring tests: the synthetic shop of ``monitoring_synth``, stable and
re-priced, with codebooks fitted on its first 70 days."""

from __future__ import annotations

import pandas as pd
import pytest
from monitoring_synth import day, fit_codebook, make_lines

from quantrec.codebook.target import TargetCodebook


@pytest.fixture(scope="session")
def stable_lines() -> pd.DataFrame:
    return make_lines()


@pytest.fixture(scope="session")
def shifted_lines() -> pd.DataFrame:
    return make_lines(shift_day=80)


@pytest.fixture(scope="session")
def stable_book(stable_lines) -> TargetCodebook:
    """Fitted on days [0, 70) of the stable shop."""
    return fit_codebook(stable_lines, day(0), day(70))


@pytest.fixture(scope="session")
def shifted_book(shifted_lines) -> TargetCodebook:
    """Fitted on days [0, 70) of the shop that re-prices on day 80."""
    return fit_codebook(shifted_lines, day(0), day(70))
