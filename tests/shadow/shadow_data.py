"""Test data for the shadow comparison: small synthetic replay frames, the real slice,
and arms built from real features without training."""

from __future__ import annotations

import numpy as np
import pandas as pd

# The real slice the pipeline tests also use (tests/pipelines/slice_config.py).
SLICE_START, SLICE_END, SLICE_RUN_DATE = "2011-01-04", "2011-05-01", "2011-04-28"


def make_requests(n_users: int = 12, seed: int = 0, max_days: int = 2) -> pd.DataFrame:
    """A replay-shaped frame: per user 1..max_days requests, each with 1-4 bought items
    (lognormal GMV) and 4 negatives per positive; some new users; item prices with a
    few unknown; integer-valued GMV so label ties exist."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        new_first = rng.random() < 0.3
        hist = 0 if new_first else int(rng.integers(1, 300))
        for d in range(int(rng.integers(1, max_days + 1))):
            day = pd.Timestamp("2011-03-01") + pd.Timedelta(days=d)
            n_pos = int(rng.integers(1, 5))
            for k in range(n_pos * 5):
                bought = k < n_pos
                rows.append({
                    "request_id": f"u{u}|{day:%Y-%m-%d}", "user_id": f"u{u}", "day": day,
                    "item_id": f"i{int(rng.integers(0, 40))}",
                    "gmv": float(np.round(rng.lognormal(2.5, 1.0))) + 1.0 if bought else 0.0,
                    "label": int(bought), "split": "eval", "hist_len": hist,
                    "is_new_user": hist == 0,
                    "i_price_last": float(rng.lognormal(0.5, 0.8)) if rng.random() > 0.05 else np.nan,
                    "ui_lines": float(rng.poisson(1.5 if bought else 0.3)),
                })
            hist += n_pos
    return pd.DataFrame(rows)


def signal_arm(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(p, value) from real signals: repeat purchases and item popularity for p, the
    item's typical line GMV for the value."""
    ui = np.minimum(df["ui_lines"].fillna(0.0).to_numpy(), 3.0)
    pop = np.log1p(df["i_lines"].fillna(0.0).to_numpy()) if "i_lines" in df else 0.0
    p = 1.0 / (1.0 + np.exp(-(-2.5 + 1.5 * ui + 0.3 * pop)))
    if "i_log_gmv_mean" in df:
        v = np.expm1(df["i_log_gmv_mean"].fillna(df["i_log_gmv_mean"].median()).to_numpy())
    else:
        v = df["i_price_last"].fillna(1.0).to_numpy() * 5.0
    return p, v


def weak_arm(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(p, value) that cannot rank inside a request: constant p, a per-user value."""
    if "u_log_gmv_mean" in df:
        v = np.expm1(df["u_log_gmv_mean"].fillna(2.5).to_numpy())
    else:
        v = np.full(len(df), 10.0)
    return np.full(len(df), 0.2), v
