"""Synthetic GMV / LTV task frames following quantrec.data.schema (no real data needed).
Shared by tests/models and tests/training (imported by file path)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantrec.data import schema


def make_gmv_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Rows with every schema column; gmv depends on the item price, the user's typical
    quantity and the item id, so a model can learn it. ~20% NaN history features."""
    rng = np.random.default_rng(seed)
    items = rng.integers(0, 30, n)
    users = rng.integers(0, 50, n)
    price = np.exp(rng.normal(1.0, 0.8, 30))[items]
    qty = np.exp(rng.normal(1.0, 0.5, 50))[users]
    gmv = price * qty * np.exp(rng.normal(0, 0.2, n))
    df = pd.DataFrame({c: rng.normal(size=n) for c in schema.NUMERIC_FEATURES})
    df["u_lines"] = rng.poisson(20, n).astype(float)
    df["u_spend"] = rng.lognormal(5, 2, n)
    df["i_price_last"] = price
    df["u_log_qty_mean"] = np.log1p(qty)
    # the value-shape features carry the same signal as their real counterparts
    df["i_log_price_mean"] = np.log1p(price * np.exp(rng.normal(0, 0.05, n)))
    df["u_last_day_log_gmv_mean"] = np.log1p(qty * np.exp(rng.normal(1.0, 0.5, n)))
    df["i_qty_last"] = np.round(np.exp(rng.normal(1.0, 0.5, n)))
    df["u_log_gmv_std"] = np.abs(rng.normal(0.5, 0.2, n))
    df["i_log_gmv_std"] = np.abs(rng.normal(0.5, 0.2, n))
    new = rng.random(n) < 0.2
    for c in schema.USER_FEATURES:
        df.loc[new, c] = np.nan
    df[schema.USER] = [f"u{u}" for u in users]
    df[schema.ITEM] = [f"i{i}" for i in items]
    df[schema.COUNTRY] = rng.choice(["United Kingdom", "France", "Germany"], n)
    df[schema.IS_NEW_USER] = new
    df[schema.VALUE] = gmv
    df[schema.SPLIT] = rng.choice(["train", "val", "eval"], n, p=[0.7, 0.15, 0.15])
    return df


def make_ltv_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({c: rng.lognormal(2, 1, n) for c in schema.LTV_FEATURES})
    df[schema.COUNTRY] = rng.choice(["United Kingdom", "France"], n)
    buys = rng.random(n) < 0.6
    df[schema.LTV_LABEL] = np.where(buys, df["fp_spend"] * rng.lognormal(0, 0.5, n), 0.0)
    df[schema.SPLIT] = rng.choice(["train", "val", "eval"], n, p=[0.7, 0.15, 0.15])
    return df




def purchase_world_frames(ev: list[tuple], rows: list[tuple], start: pd.Timestamp,
                          days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, purchase) of a synthetic purchase world: ``ev`` tuples (user, item, ts, day,
    quantity, unit price) get their gmv; ``rows`` tuples (user, day, item, ts, label) get a
    time split: the last 4 of ``days`` days eval, the 6 before them val, the rest train."""
    S = schema
    events = pd.DataFrame(ev, columns=[S.USER, S.ITEM, S.TS, S.DAY, S.QUANTITY, S.UNIT_PRICE])
    events[S.VALUE] = events[S.QUANTITY] * events[S.UNIT_PRICE]
    purchase = pd.DataFrame(rows, columns=[S.USER, S.DAY, S.ITEM, S.TS, S.LABEL])
    cut_val, cut_eval = start + pd.Timedelta(days=days - 10), start + pd.Timedelta(days=days - 4)
    purchase[S.SPLIT] = np.where(purchase[S.DAY] < cut_val, "train",
                                 np.where(purchase[S.DAY] < cut_eval, "val", "eval"))
    return events, purchase


def tiny_dmqn_config(**kw):
    """A DMQNConfig small enough for unit tests (no item memory unless asked for)."""
    from quantrec.models.dmqn import DMQNConfig
    from quantrec.training.trainer import TrainConfig

    train = kw.pop("train", TrainConfig(epochs=2, batch_size=8, lr=5e-3, progress=False, seed=0))
    base = dict(item_dim=8, d_model=8, codebooks=2, codewords=4, code_dim=4, hstu_blocks=1, hstu_heads=2,
                hstu_attn_dim=4, hstu_linear_dim=4, ctam_heads=2, mlp_hidden=16, chunk_len=7,
                min_count=1, eval_requests=5, train=train)
    base.update(kw)
    return DMQNConfig(**base)


def state_round_trip(model, events: pd.DataFrame, frame: pd.DataFrame, folder) -> dict:
    """The cached-state check of a DMQN model on the first day of ``frame``: the full
    forward's probabilities of that day (``expect``), the users' states from
    ``user_states`` and the same states after a safetensors round trip (``reloaded``),
    each row's state index (``row``), the day's rows (``one_day``) and ``users``."""
    from quantrec.models.base import ModelInputs
    from quantrec.training import checkpoints as ck

    S = schema
    full = model.predict(frame, ModelInputs(events=events))
    day = frame[S.DAY].iloc[0]
    one_day = frame[frame[S.DAY] == day].reset_index(drop=True)
    users = one_day[S.USER].unique()
    got_users, states = model.user_states(events, users, day)
    ck.save_state(str(folder / "states.safetensors"), {"states": states})   # the cache round trip
    reloaded = ck.load_state(str(folder / "states.safetensors"))["states"]
    row = pd.Series(np.arange(len(users)), index=users)[one_day[S.USER]].to_numpy()
    return {"day": day, "one_day": one_day, "users": users, "got_users": got_users, "states": states,
            "reloaded": reloaded, "row": row, "expect": full[(frame[S.DAY] == day).to_numpy()]}
