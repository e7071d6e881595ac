"""benchmarks/purchase_quality.py helpers: history buckets, the shared training cap,
metrics by bucket, per-model selection, the merge of results files, the synthetic
cost-curve request and one tiny cost-curve measurement."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import purchase_quality as pq  # noqa: E402
from common import BenchmarkError  # noqa: E402
from quantrec.data import schema as S  # noqa: E402


def _frame():
    rows = []
    for r, (day, user, hist) in enumerate([("2011-01-01", "a", 0), ("2011-01-02", "a", 10), ("2011-01-02", "b", 500),
                                            ("2011-01-03", "c", 5000), ("2011-01-05", "a", 60)]):
        split = "train" if r < 4 else "val"
        for k, lab in enumerate((1, 0, 0)):
            rows.append({S.USER: user, S.DAY: pd.Timestamp(day), S.ITEM: f"i{k}", S.LABEL: lab, S.SPLIT: split,
                         "hist_len": hist})
    rows.append({S.USER: "z", S.DAY: pd.Timestamp("2011-01-09"), S.ITEM: "i0", S.LABEL: 1, S.SPLIT: "eval",
                 "hist_len": 3})
    return pd.DataFrame(rows)


def test_history_bucket_edges():
    got = pq.history_bucket([0, 1, 49, 50, 199, 200, 999, 1000, 12000])
    assert got.tolist() == ["0", "1-49", "1-49", "50-199", "50-199", "200-999", "200-999", "1000+", "1000+"]


def test_split_requests_keeps_whole_recent_requests():
    f = _frame()
    sp = pq.split_requests(f, max_train_requests=2)
    tr = sp["train"]
    # the 2 most recent (day, user) requests, every row of each
    assert sorted(set(zip(tr[S.DAY].dt.day, tr[S.USER]))) == [(2, "b"), (3, "c")]
    assert len(tr) == 6 and len(sp["val"]) == 3 and len(sp["eval"]) == 1
    assert len(pq.split_requests(f)["train"]) == 12
    with pytest.raises(BenchmarkError, match="empty"):
        pq.split_requests(f[f[S.SPLIT] != "eval"])


def test_purchase_metrics_by_bucket():
    f = pq.split_requests(_frame())["train"]
    y = f[S.LABEL].to_numpy()
    p = np.where(y == 1, 0.9, 0.1)
    p[f["hist_len"].to_numpy() == 500] = 0.5          # the 200-999 bucket: all tied
    m = pq.purchase_metrics(f, p)
    assert m["rows"] == 12
    assert m["by_history"]["1-49"]["AUC"] == 1.0 and m["by_history"]["200-999"]["AUC"] == 0.5
    assert m["by_history"]["50-199"] == {"rows": 0}
    assert m["by_history"]["1000+"]["rows"] == 3


def test_select_and_merge(tmp_path, capsys):
    def rec(model, trial, seed, ll):
        byh = {b: {"rows": 1, "AUC": 0.6, "GAUC": 0.6, "logloss": ll} for _, _, b in pq.BUCKETS}
        m = {"rows": 10, "AUC": 0.7, "GAUC": 0.7, "logloss": ll, "by_history": byh}
        return {"model": model, "trial": trial, "overrides": {"t": trial}, "seed": seed, "fit_s": 1.0,
                "val": m, "eval": m}
    recs = [rec("din", 0, 0, 0.50), rec("din", 1, 0, 0.48), rec("din", 1, 1, 0.47), rec("sim", 0, 0, 0.49)]
    sel = pq.select(recs, 0)
    assert sel["din"]["trial"] == 1 and len(sel["din"]["trials"]) == 2 and sel["sim"]["trial"] == 0
    table = pq.summary_table(recs, sel)
    din = table[table["model"] == "DIN (last 50)"]
    assert din["seeds"].tolist() == [2] and din["trial"].iloc[0].startswith("*1")   # trial 0: one seed, no row
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"key": "k", "records": recs[:3]}))
    # b repeats a's first record (a copied file resumed for another seed): merged once
    cost = [{"history": 100, "candidates": 100,
             **{f"{k}{s}": v for k, v in (("dmqn_full", 9.0), ("dmqn_state", 7.0), ("dmqn_cached_score", 2.0),
                                          ("din_full", 3.0), ("sim_full", 4.0)) for s in ("_ms", "_min_ms")}}]
    b.write_text(json.dumps({"key": "k", "records": recs[:1] + recs[3:], "cost": cost}))
    out = tmp_path / "m.json"
    assert pq.merge_files([str(a), str(b)], str(out), None) == 0
    merged = json.loads(out.read_text())
    assert len(merged["records"]) == 4 and merged["cost"] == cost
    assert (tmp_path / "m.html").exists() and (tmp_path / "m_cost.png").exists()
    b.write_text(json.dumps({"key": "other", "records": recs[3:]}))
    with pytest.raises(BenchmarkError, match="key differs"):
        pq.merge_files([str(a), str(b)], None, None)


def test_synthetic_request_and_tiny_cost_curve():
    b = pq.synthetic_request(300, 50, 100, seed=1)
    assert b["hist_item"].shape == (300,) and b["cand_item"].shape == (100,)
    assert int(b["hist_offsets"][-1]) == 300 and (b["hist_ts"].diff() >= 0).all()
    assert int(b["hist_request_ts"][0]) > int(b["hist_ts"].max()) and int(b["hist_item"].max()) < 50
    rows = pq.cost_curve(lengths=(20, 40), candidates=10, n_items=100, reps=1)
    assert [r["history"] for r in rows] == [20, 40]
    for r in rows:
        for k in ("dmqn_full", "dmqn_state", "dmqn_cached_score", "din_full", "sim_full"):
            assert 0 < r[f"{k}_min_ms"] <= r[f"{k}_ms"]
