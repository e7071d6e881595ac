"""The benchmarks' shared helpers (benchmarks/common.py): the table cache is keyed by a
fingerprint of data + spec + windows, a missing data file is an error (never a cached
result of other data), a table that cannot be built is skipped with its reason while
the others are built, and the benchmark entry point turns data errors into exit 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import common  # noqa: E402

SPEC = """name: synthetic_shop
path: {path}
format: csv
columns: {{order_id: order, user_id: customer, item_id: sku, ts: time, quantity: qty,
           unit_price: price, country: country}}
cleaning: {{outlier_quantile: null}}
"""


def _transactions(days: int = 70, seed: int = 0) -> pd.DataFrame:
    """A small shop: 40 customers, 25 products, a few lines a day over ``days`` days."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(days):
        for k in range(int(rng.integers(4, 9))):
            rows.append({"order": f"o{d}-{k}", "customer": f"c{rng.integers(40)}", "sku": f"s{rng.integers(25)}",
                         "time": pd.Timestamp("2022-01-03 09:00") + pd.Timedelta(days=d, minutes=7 * k),
                         "qty": int(rng.integers(1, 12)), "price": float(rng.choice([1.25, 2.5, 4.95, 9.9])),
                         "country": "NL"})
    return pd.DataFrame(rows)


@pytest.fixture
def shop(tmp_path):
    data = tmp_path / "shop.csv"
    _transactions().to_csv(data, index=False)
    spec = tmp_path / "shop.yaml"
    spec.write_text(SPEC.format(path=data))
    return data, spec


def _choice(spec: Path, data: Path | None = None, *extra: str):
    ap = common.add_data_args(argparse.ArgumentParser(), eval_days=5, val_days=5, train_days=40)
    args = ap.parse_args(["--spec", str(spec), "--run-date", "2022-03-10", *(["--data", str(data)] if data else []),
                          *extra])
    return common.resolve_choice(args)


def test_the_cache_key_changes_with_data_spec_windows_and_code(shop, tmp_path):
    data, spec = shop
    choice = _choice(spec)
    digest = common.data_fingerprint(str(data))
    key = common.cache_key(digest, choice, code_digest="c1")
    assert key == common.cache_key(digest, _choice(spec), code_digest="c1")          # same inputs, same key
    # the same bytes at another path are the same data: same key
    copy = tmp_path / "copy.csv"
    copy.write_bytes(data.read_bytes())
    assert common.data_fingerprint(str(copy)) == digest
    # another dataset
    other = tmp_path / "other.csv"
    _transactions(seed=1).to_csv(other, index=False)
    assert common.cache_key(common.data_fingerprint(str(other)), choice, code_digest="c1") != key
    # another spec rule, other windows, another run date, other table code
    spec2 = tmp_path / "shop2.yaml"
    spec2.write_text(SPEC.format(path=data).replace("outlier_quantile: null", "outlier_quantile: 0.99"))
    assert common.cache_key(digest, _choice(spec2), code_digest="c1") != key
    assert common.cache_key(digest, _choice(spec, None, "--eval-days", "4"), code_digest="c1") != key
    assert common.cache_key(digest, _choice(spec, None, "--run-date", "2022-03-09"), code_digest="c1") != key
    assert common.cache_key(digest, choice, code_digest="c2") != key
    assert common.code_fingerprint() == common.code_fingerprint()                   # reads the real files


def test_short_history_skips_ltv_with_a_reason_and_builds_gmv(shop, tmp_path):
    data, spec = shop
    logs: list[str] = []
    bundle = common.load_tables(_choice(spec), ("gmv", "ltv"), str(tmp_path / "cache"), log=logs.append)
    assert list(bundle.tables) == ["gmv"] and set(bundle.skipped) == {"ltv"}
    assert "ltv table is empty" in bundle.skipped["ltv"]
    assert any("skipping the ltv task" in line for line in logs)
    g = bundle.tables["gmv"]
    assert set(g["split"]) == {"train", "val", "eval"} and (g["gmv"] > 0).all()
    assert bundle.meta["skipped"] == bundle.skipped and not bundle.from_cache
    # the second call is a cache hit with the same frame and the same skip
    again = common.load_tables(_choice(spec), ("gmv", "ltv"), str(tmp_path / "cache"), log=logs.append)
    assert again.from_cache and again.skipped == bundle.skipped
    pd.testing.assert_frame_equal(again.tables["gmv"], g)


def test_a_missing_data_file_is_an_error_not_a_cache_hit(shop, tmp_path):
    data, spec = shop
    cache = str(tmp_path / "cache")
    common.load_tables(_choice(spec), ("gmv",), cache, log=lambda s: None)        # fills the cache
    from quantrec.data.load import DataError
    with pytest.raises(DataError, match="not found"):
        common.data_fingerprint(str(tmp_path / "gone.csv"))
    moved = tmp_path / "moved.csv"
    data.rename(moved)
    with pytest.raises(DataError):
        common.load_tables(_choice(spec), ("gmv",), cache, log=lambda s: None)


def test_unusable_reason_names_the_problem():
    ok = pd.DataFrame({"split": ["train", "train", "val", "eval"], "gmv": [1.0, 2.0, 3.0, 4.0]})
    assert common.unusable_reason("gmv", ok) is None
    assert "empty" in common.unusable_reason("gmv", ok.iloc[:0])
    assert "['eval']" in common.unusable_reason("gmv", ok.iloc[:3])
    const = ok.assign(gmv=[1.0, 1.0, 3.0, 4.0])
    assert "constant" in common.unusable_reason("gmv", const)
    assert "label column 'ltv'" in common.unusable_reason("ltv", ok)


def test_run_main_turns_data_errors_into_exit_2(capsys):
    from quantrec.data.load import DataError

    def broken(argv):
        raise DataError("data not found: /nowhere.parquet")

    assert common.run_main(broken, []) == 2
    assert "error: data not found" in capsys.readouterr().err
    assert common.run_main(lambda argv: 0, []) == 0


def test_result_log_resumes_only_the_same_tables(tmp_path):
    path = tmp_path / "r.json"
    log = common.ResultLog(str(path), {"key": "k1"})
    log.add({"model": "wlr", "seed": 0, "MAE": 1.0})
    assert common.ResultLog(str(path), {"key": "k1"}).done(model="wlr", seed=0)["MAE"] == 1.0
    assert common.ResultLog(str(path), {"key": "k1"}).done(model="wlr", seed=1) is None
    # results of other data (another key) are not taken as done
    assert common.ResultLog(str(path), {"key": "k2"}).done(model="wlr", seed=0) is None


def test_parse_overrides_and_make_config():
    name, kw = common.parse_overrides("d128:d_model=128,train.lr=0.002,categorical=['country'],decode=median")
    assert name == "d128" and kw == {"d_model": 128, "train": {"lr": 0.002}, "categorical": ["country"],
                                     "decode": "median"}
    cfg = common.make_config("rqreg", "gmv", kw, seed=3)
    assert cfg.d_model == 128 and cfg.train.lr == 0.002 and cfg.categorical == ("country",)
    assert cfg.train.seed == 3 and cfg.train.num_threads == 1 and not cfg.train.progress
    assert cfg.train.epochs == 10                                                      # small() kept
    lgbm = common.make_config("lgbm", "ltv", {"params": {"num_leaves": 7}}, seed=2)
    assert lgbm.task == "ltv" and lgbm.seed == 2 and lgbm.params["num_leaves"] == 7
    assert lgbm.params["num_threads"] == 1 and "learning_rate" in lgbm.params          # merged, not replaced
    with pytest.raises(common.BenchmarkError):
        common.parse_overrides("no-colon")


def test_item_history_heuristic_falls_back_in_order():
    frame = pd.DataFrame({"ui_log_gmv_last": [np.log1p(5.0), np.nan, np.nan, np.nan],
                          "i_log_gmv_mean": [np.log1p(7.0), np.log1p(7.0), np.nan, np.nan],
                          "u_log_gmv_mean": [0.0, 0.0, np.log1p(3.0), np.nan],
                          "gmv": [1.0, 2.0, 3.0, 10.0]})
    h = common.ItemHistoryHeuristic().fit(frame, frame, "gmv")
    np.testing.assert_allclose(h.predict(frame), [5.0, 7.0, 3.0, 2.5])
    assert common.GlobalMedian().fit(frame, frame, "gmv").predict(frame).tolist() == [2.5] * 4


def test_gmv_quality_on_a_short_history_writes_gmv_and_says_why_ltv_is_missing(shop, tmp_path, capsys):
    """The issue's case end to end: another dataset (the synthetic shop), a history too
    short for the LTV table: GMV rows are written, LTV is skipped with its reason."""
    import json

    import gmv_quality
    data, spec = shop
    out = tmp_path / "q.json"
    argv = ["--spec", str(spec), "--run-date", "2022-03-10", "--eval-days", "5", "--val-days", "5",
            "--train-days", "40", "--cache-dir", str(tmp_path / "cache"), "--quick",
            "--models", "median", "item_history", "lgbm", "wlr", "--json", str(out)]
    assert common.run_main(gmv_quality.main, argv) == 0
    d = json.loads(out.read_text())
    assert {r["task"] for r in d["records"]} == {"gmv"}
    assert {r["family"] for r in d["records"]} == {"median", "item_history", "lgbm", "wlr"}
    assert "ltv" in d["skipped"] and "LTV task skipped" in capsys.readouterr().out
    # the same command on a moved data file: exit 2, one error line, no table printed
    data.rename(tmp_path / "elsewhere.csv")
    assert common.run_main(gmv_quality.main, argv[:-2]) == 2
    captured = capsys.readouterr()
    assert "error:" in captured.err and "| model |" not in captured.out


def test_every_tuning_trial_builds_a_valid_config_and_selection_reads_its_metric():
    import gmv_tuning
    for task, spaces in (("gmv", gmv_tuning.SPACES), ("ltv", gmv_tuning.LTV_SPACES)):
        for family, trials in spaces.items():
            names = [n for n, _ in trials]
            assert len(names) == len(set(names)), (task, family)
            for name, overrides in trials:
                cfg = common.make_config(family, task, overrides, seed=0)
                assert cfg.task == task, (family, name)
    recs = [{"family": "lgbm", "trial": "a", "val": {"MAE": 2.0, "Norm-Gini": 0.5}},
            {"family": "lgbm", "trial": "b", "val": {"MAE": 3.0, "Norm-Gini": 0.7}}]
    assert gmv_tuning.select(recs, "lgbm", "MAE")["trial"] == "a"
    assert gmv_tuning.select(recs, "lgbm", "Norm-Gini")["trial"] == "b"
    assert gmv_tuning.select(recs, "mlp") is None


def _results_file(path: Path, key: str, records: list[dict]) -> str:
    import json
    path.write_text(json.dumps({"key": key, "selection": {"gmv/lgbm": {
        "trial": "no ids", "overrides": {}, "select_by": "MAE", "val_MAE": 8.1, "file": "t.json"}},
        "records": records}))
    return str(path)


def _record(family: str, seed: int, mae: float, n_train: int = 200, by_decode: dict | None = None) -> dict:
    m = {"MAE": mae, "XAUC": 0.8, "Norm-Gini": 0.7, "Spearman": 0.6}
    r = {"task": "gmv", "family": family, "seed": seed, "config": "c", "n_train": n_train, "n_val": 50,
         "n_eval": 40, "fit_seconds": 1.0, "val": m, "eval": m}
    return {**r, "by_decode": by_decode} if by_decode else r


def test_gmv_quality_summary_merges_parallel_runs_and_refuses_mixed_tables(tmp_path):
    """Families run in parallel processes write separate files; --summary merges them
    (each row with its own train rows, RQ-Reg's decodings as mean ± std), and refuses
    files of other tables or a (task, family, seed) present twice."""
    import gmv_quality
    dec = {"expected": {"MAE": 9.0, "XAUC": 0.81, "Norm-Gini": 0.7, "Spearman": 0.6},
           "median": {"MAE": 8.0, "XAUC": 0.80, "Norm-Gini": 0.7, "Spearman": 0.6}}
    a = _results_file(tmp_path / "a.json", "k1", [_record("lgbm", 0, 8.0), _record("lgbm", 1, 10.0)])
    b = _results_file(tmp_path / "b.json", "k1", [_record("rqreg", 0, 8.0, by_decode=dec),
                                                   _record("gr", 0, 9.0, n_train=30)])
    records, headers = gmv_quality.merge_results([a, b])
    assert [r["family"] for r in records] == ["lgbm", "lgbm", "rqreg", "gr"]
    table = gmv_quality.summarise(records, "gmv")
    assert "| LightGBM | c | 200 | 2 | 9.000 | 9.0000 ± 1.0000 |" in table
    assert "| GR | c | 30 | 1 |" in table
    assert "| median | 8.0000 ± 0.0000 | 0.8000 ± 0.0000 |" in table
    assert "no ids" in gmv_quality.selection_table(headers)
    with pytest.raises(common.BenchmarkError, match="both"):
        gmv_quality.merge_results([a, a])
    other = _results_file(tmp_path / "c.json", "k2", [_record("mlp", 0, 8.0)])
    with pytest.raises(common.BenchmarkError, match="holds tables"):
        gmv_quality.merge_results([a, other])
    with pytest.raises(common.BenchmarkError, match="not found"):
        gmv_quality.merge_results([str(tmp_path / "missing.json")])
    with pytest.raises(common.BenchmarkError, match="selection file not found"):
        gmv_quality.read_selection([str(tmp_path / "missing.json")])
