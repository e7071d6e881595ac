"""Interaction tables: a dataset spec without prices (user, item, timestamp, optional label).

Only the purchase / interaction task is built; gmv and ltv are empty on purpose and say
why; the gate leaves out its price checks; the stages that need GMV say they skip.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from quantrec.data import schema as S
from quantrec.data.clean import clean_transactions
from quantrec.data.load import to_canonical
from quantrec.data.spec import NO_PRICES, DatasetSpec, SpecError
from quantrec.data.tasks import TABLE_SCHEMAS, TaskConfig, read_table, tables_from_raw, write_table
from quantrec.data.windows import WindowConfig

SPEC = {"name": "ratings", "format": "csv",
        "columns": {"user_id": "uid", "item_id": "movie", "ts": "when", "label": "stars"},
        "cleaning": {"min_label": 4}}
RUN_DATE = "2024-03-01"
WINDOWS = {"windows": {"train_days": 40, "val_days": 5, "eval_days": 2}, "purchase_train_days": 20}


def ratings_frame(days: int = 45, users: int = 30, items: int = 40, seed: int = 0) -> pd.DataFrame:
    """A ratings log in the user's own column names: each user rates a few movies a day."""
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp(RUN_DATE) - pd.Timedelta(days=days)
    for d in range(days):
        for u in range(users):
            for _ in range(rng.integers(1, 4)):
                rows.append({"uid": f"u{u}", "movie": f"m{rng.integers(items)}",
                             "when": start + pd.Timedelta(days=d, hours=int(rng.integers(8, 20))),
                             "stars": int(rng.integers(1, 6))})
    return pd.DataFrame(rows)


def test_a_spec_without_prices_is_an_interaction_table():
    spec = DatasetSpec.from_dict(SPEC)
    assert not spec.has_prices and spec.cleaning.min_label == 4
    priced = DatasetSpec.from_dict({**SPEC, "columns": {**SPEC["columns"], "quantity": "q", "unit_price": "p"}})
    assert priced.has_prices


@pytest.mark.parametrize("change, message", [
    ({"cleaning": {}}, "sets no cleaning.min_label"),
    ({"columns": {"user_id": "uid", "item_id": "movie", "ts": "when"}}, "maps no 'label' column"),
    ({"columns": {"user_id": "uid", "item_id": "movie", "ts": "when", "unit_price": "p"}, "cleaning": {}},
     "maps 'unit_price' but no 'quantity'"),
    ({"columns": {"user_id": "uid", "item_id": "movie"}}, "required roles ['ts']"),
])
def test_spec_errors_name_the_problem(change, message):
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        DatasetSpec.from_dict({**SPEC, **change})


def test_canonical_rows_count_each_interaction_once_and_keep_the_label():
    spec = DatasetSpec.from_dict(SPEC)
    raw = ratings_frame(days=3, users=2)
    canon = to_canonical(raw, spec)
    assert (canon[S.QUANTITY] == 1.0).all() and (canon[S.UNIT_PRICE] == 1.0).all()
    assert (canon[S.VALUE] == canon[S.QUANTITY]).all()
    assert sorted(canon[S.LABEL_VALUE].unique()) == sorted(raw["stars"].unique())
    # a mapped quantity is the interaction's count (e.g. plays), and its gmv
    counted = DatasetSpec.from_dict({**SPEC, "columns": {**SPEC["columns"], "quantity": "plays"}})
    canon2 = to_canonical(raw.assign(plays=3), counted)
    assert (canon2[S.VALUE] == 3.0).all() and (canon2[S.UNIT_PRICE] == 1.0).all()


def test_rows_below_min_label_are_removed_and_counted():
    spec = DatasetSpec.from_dict(SPEC)
    raw = ratings_frame(days=5, users=5)
    canon = to_canonical(raw, spec)
    lines, report = clean_transactions(canon, spec.cleaning)
    low = int((raw["stars"] < 4).sum())
    assert report.removed["below_min_label"] == low > 0
    assert (lines[S.LABEL_VALUE] >= 4).all()
    assert report.removed["non_positive_prices"] == 0 and report.removed["cancellations"] == 0
    assert report.by_day["below_min_label"].sum() == low


def test_only_the_interaction_tables_are_built_and_gmv_ltv_say_why(tmp_path):
    from validation.runner import run_task_table_validation

    spec = DatasetSpec.from_dict(SPEC)
    canon = to_canonical(ratings_frame(), spec)
    tt = tables_from_raw(canon, RUN_DATE, spec, TaskConfig.from_dict(WINDOWS))
    assert tt.skipped == {"gmv": NO_PRICES, "ltv": NO_PRICES}
    assert tt.tables["gmv"].empty and tt.tables["ltv"].empty
    assert list(tt.tables["gmv"].columns) == TABLE_SCHEMAS["gmv"].names  # same schema: the graph is the same
    purchase = tt.tables["purchase"]
    assert set(purchase[S.SPLIT]) == {"train", "val", "eval"} and set(purchase[S.LABEL]) == {0, 1}
    assert len(tt.tables["replay"]) == int((purchase[S.SPLIT] == "eval").sum())
    for name, df in tt.tables.items():  # every table, empty or not, writes and reads back
        write_table(df, str(tmp_path / f"{name}.parquet"), name)
        assert len(read_table(str(tmp_path / f"{name}.parquet"))) == len(df)
    checks = run_task_table_validation(tt.tables, tt.windows, RUN_DATE, skipped=tt.skipped)
    assert checks.passed, checks.message()
    # the skip is what lets the empty tables pass: judged as a priced table, gmv fails
    assert not run_task_table_validation(tt.tables, tt.windows, RUN_DATE).passed


def test_the_gate_leaves_out_price_checks_on_an_interaction_table():
    from validation.contract import validate_contract, validate_plausibility

    spec = DatasetSpec.from_dict(SPEC)
    canon = to_canonical(ratings_frame(days=5), spec)
    checks = validate_contract(canon, spec.validation, spec.cleaning, has_order=False, has_prices=False)
    described = " ".join(c.description for c in checks)
    assert "quantity present" in described and "unit_price present" not in described
    assert "unit price >= 0" not in described
    priced = validate_contract(canon, spec.validation, spec.cleaning, has_order=False)
    assert "unit price >= 0" in " ".join(c.description for c in priced)
    plaus = validate_plausibility(canon, spec.validation.plausibility, spec.cleaning, columns=(S.QUANTITY,))
    assert {c.column for c in plaus} == {S.QUANTITY}


def test_gmv_stages_skip_with_the_reason(tmp_path):
    """train (task gmv), fit_codebook and shadow_compare on an interaction table's empty
    gmv table: nothing trains, no codebook, a not-blessed decision that says why."""
    from quantrec.config import RunConfig
    from quantrec.shadow.compare import compact_decision
    from quantrec.stages.champion import ChampionInfo
    from quantrec.stages.codebook import fit_codebook_stage
    from quantrec.stages.shadow import shadow_stage
    from quantrec.stages.train import read_trained, train_stage

    spec = DatasetSpec.from_dict(SPEC)
    tt = tables_from_raw(to_canonical(ratings_frame(), spec), RUN_DATE, spec, TaskConfig.from_dict(WINDOWS))
    paths = {n: str(tmp_path / f"{n}.parquet") for n in tt.tables}
    for n, df in tt.tables.items():
        write_table(df, paths[n], n)
    cfg, champ = RunConfig.from_dict({}), ChampionInfo.from_dict({})
    why = tt.skipped["gmv"]
    summary = train_stage("gmv", paths["gmv"], cfg, str(tmp_path / "gmv_models"), champ, skipped=why)
    assert summary == {}
    record = read_trained(str(tmp_path / "gmv_models"))
    assert record["skipped"] == why and set(record["skipped_models"]) == {"rqreg", "wlr"}
    book = fit_codebook_stage(paths["gmv"], cfg, champ, str(tmp_path / "codebook.json"),
                              str(tmp_path / "cb.html"), str(tmp_path / "cb.json"), "fp", skipped=why)
    assert book == {"source": "skipped", "reason": why}
    result = shadow_stage(paths["replay"], paths["purchase"], [str(tmp_path / "gmv_models")], champ, cfg,
                          str(tmp_path / "shadow.html"), str(tmp_path / "decision.json"))
    assert not result.blessed and why in result.reasons[0]
    decision = json.loads((tmp_path / "decision.json").read_text())
    compact = compact_decision(decision)
    assert compact["verdict"] == "not blessed" and compact["skipped"] and why in compact["reasons"][0]
    assert "skipped" in (tmp_path / "shadow.html").read_text()


def test_monitoring_an_interaction_dataset_says_there_is_no_codebook(tmp_path):
    from monitoring.run import run_monitor

    result = run_monitor(RUN_DATE, str(tmp_path / "none.json"), spec=DatasetSpec.from_dict(SPEC),
                         out_dir=str(tmp_path / "mon"))
    assert result.action == "error" and result.exit_code == 1
    assert "no GMV codebook to monitor" in result.recommendation.summary
    assert (tmp_path / "mon" / "alert.json").exists()


def test_the_shipped_example_interaction_spec_loads():
    from importlib import resources

    from quantrec.data.spec import load_spec

    spec = load_spec(str(resources.files("quantrec") / "specs" / "example_interactions.yaml"))
    assert not spec.has_prices and spec.cleaning.min_label == 4 and spec.columns["label"] == "rating"


def test_epoch_timestamps_need_their_unit():
    """MovieLens-style unix seconds: read with ts_unit, a named error without it (pandas
    alone would put every row in January 1970)."""
    from quantrec.data.load import DataError

    raw = ratings_frame(days=3, users=2)
    epoch = raw.assign(when=(raw["when"] - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1))
    with pytest.raises(DataError, match="holds numbers.*set ts_unit"):
        to_canonical(epoch, DatasetSpec.from_dict(SPEC))
    canon = to_canonical(epoch, DatasetSpec.from_dict({**SPEC, "ts_unit": "s"}))
    assert canon[S.TS].tolist() == sorted(raw["when"].tolist())
    with pytest.raises(SpecError, match="ts_unit must be one of"):
        DatasetSpec.from_dict({**SPEC, "ts_unit": "seconds"})
