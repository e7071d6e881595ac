"""Synthetic purchase lines and simple protocol-following models for the scorer's unit tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantrec.data import schema as S


def synth_lines(n: int = 600, users: int = 25, items: int = 40, start: str = "2011-01-03", days: int = 60,
                seed: int = 0) -> pd.DataFrame:
    """Cleaned purchase lines (the events table's columns) over ``days`` days."""
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, days * 86400, n), unit="s")
    df = pd.DataFrame({
        S.USER: pd.array([f"u{u}" for u in rng.integers(0, users, n)], dtype="string"),
        S.ITEM: pd.array([f"i{i}" for i in rng.integers(0, items, n)], dtype="string"),
        S.ORDER: pd.array([f"o{o}" for o in rng.integers(0, n // 3, n)], dtype="string"),
        S.TS: ts, S.QUANTITY: rng.integers(1, 12, n).astype(float), S.UNIT_PRICE: rng.gamma(2.0, 2.0, n),
        S.COUNTRY: pd.array(rng.choice(["United Kingdom", "France", "EIRE"], n), dtype="string")})
    df[S.DAY] = df[S.TS].dt.normalize()
    df[S.VALUE] = df[S.QUANTITY] * df[S.UNIT_PRICE]
    return df.sort_values(S.TS, kind="stable").reset_index(drop=True)


class LinearGMV:
    """A GMV "model" whose prediction is a fixed function of feature columns (NaN -> 0):
    enough to see that the right features reach the model."""

    output = "value"

    def predict(self, frame: pd.DataFrame, inputs=None) -> np.ndarray:
        f = frame.fillna(0.0)
        return (5.0 + 2.0 * f["ui_lines"] + f["i_lines"] + 0.1 * f["u_recency_days"] + 0.01 * f["hour"]
                + (frame[S.COUNTRY] == "France").to_numpy() * 3.0).to_numpy(dtype=np.float64)


class StatePurchase:
    """A purchase "model" with the state API: p = sigmoid(mean(state) + item number / 100)."""

    output = "probability"

    def user_states(self, events, users, as_of, progress=False):
        users = np.asarray(pd.Series(users, dtype="object").astype(str))
        ev = events[events[S.DAY] < pd.Timestamp(as_of)]
        counts = ev.groupby(ev[S.USER].astype(str)).size()
        states = np.stack([np.full((2, 3), float(counts.get(u, 0)), dtype=np.float32) for u in users]) \
            if len(users) else np.zeros((0, 2, 3), np.float32)
        return users, states

    def score(self, states, candidate_items, state_index=None):
        items = np.array([float(str(i)[1:]) if str(i)[1:].isdigit() else 0.0 for i in candidate_items])
        return 1.0 / (1.0 + np.exp(-(float(np.mean(states)) / 10.0 + items / 100.0 - 1.0)))
