"""Evidently drift with explicit methods and thresholds (no sample-size defaults)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wasserstein_distance

from monitoring.config import DriftConfig, DriftTest
from monitoring.drift import current_frame, run_drift
from quantrec.data import schema as S


def frames(shift: float = 0.0, n_cur: int = 20000, seed: int = 0):
    rng = np.random.default_rng(seed)
    ref_y = np.quantile(rng.lognormal(2.5, 1.0, 50000), np.linspace(0, 1, 1001), method="inverted_cdf")
    ref = pd.DataFrame({"gmv": ref_y, "log_gmv": np.log1p(ref_y)})
    cur_y = rng.lognormal(2.5 + shift, 1.0, n_cur)
    return ref, pd.DataFrame({"gmv": cur_y, "log_gmv": np.log1p(cur_y)})


def test_same_distribution_is_not_drift_even_on_a_large_sample():
    """Evidently's default would switch to p-values / flag large samples; ours does not."""
    ref, cur = frames(0.0)
    res, _ = run_drift(ref, cur)
    assert [r.column for r in res] == ["gmv", "log_gmv"]      # unit_price / quantity absent: skipped
    assert not any(r.drifted for r in res)
    assert all(r.method == "wasserstein" for r in res)


def test_shift_is_drift_and_the_value_is_normed_wasserstein():
    ref, cur = frames(0.5)
    res, snapshot = run_drift(ref, cur)
    by = {r.column: r for r in res}
    assert by["log_gmv"].drifted
    expected = wasserstein_distance(ref["log_gmv"], cur["log_gmv"]) / np.std(ref["log_gmv"])
    assert by["log_gmv"].value == pytest.approx(expected, rel=1e-6)
    assert by["log_gmv"].threshold == DriftConfig().log_gmv.threshold
    assert "Wasserstein" in by["log_gmv"].description
    assert "<!DOCTYPE html>" in snapshot.get_html_str(as_iframe=False)


def test_the_configured_method_and_threshold_are_used():
    ref, cur = frames(0.05)
    loose = DriftConfig(log_gmv=DriftTest("wasserstein", 10.0), gmv=DriftTest("wasserstein", 10.0))
    assert not any(r.drifted for r in run_drift(ref, cur, loose)[0])
    tight = DriftConfig(log_gmv=DriftTest("wasserstein", 1e-4), gmv=DriftTest("wasserstein", 10.0))
    assert {r.column: r.drifted for r in run_drift(ref, cur, tight)[0]} == {"gmv": False, "log_gmv": True}
    # a p-value method reads the other way: drift when p < threshold
    ref, cur = frames(0.3)
    ks = DriftConfig(log_gmv=DriftTest("ks", 0.05), gmv=DriftTest("ks", 1e-300))
    res = {r.column: r for r in run_drift(ref, cur, ks)[0]}
    assert res["log_gmv"].method == "ks" and res["log_gmv"].drifted and res["log_gmv"].value < 0.05
    assert not res["gmv"].drifted


def test_unknown_method_names_the_config_key():
    ref, cur = frames()
    with pytest.raises(ValueError, match=r"drift\.gmv\.method='nope'"):
        run_drift(ref, cur, DriftConfig(gmv=DriftTest("nope", 0.1)))


def test_no_common_column_is_an_error():
    with pytest.raises(ValueError, match="no drift column"):
        run_drift(pd.DataFrame({"x": [1.0]}), pd.DataFrame({"y": [1.0]}))


def test_current_frame_from_lines():
    lines = pd.DataFrame({S.VALUE: [0.0, 9.0], S.UNIT_PRICE: [1.0, 3.0], S.QUANTITY: [0.0, 3.0]})
    f = current_frame(lines)
    assert list(f.columns) == ["gmv", "log_gmv", "unit_price", "quantity"]
    np.testing.assert_allclose(f["log_gmv"], np.log1p([0.0, 9.0]))
    with pytest.raises(ValueError, match="unit_price"):
        current_frame(lines.drop(columns=[S.UNIT_PRICE]))
