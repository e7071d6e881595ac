"""run_monitor end to end: the page, the recommendation, the alert and the exit code,
on the synthetic shop (stable / re-priced), on bad input, and on the real data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from monitoring_synth import SPEC, day, fit_codebook

from monitoring import EXIT_ERROR, EXIT_KEEP, EXIT_REBUILD, run_monitor
from quantrec.codebook.provenance import dataset_fingerprint
from quantrec.codebook.target import TargetCodebook
from quantrec.data import schema as S
from quantrec.data.spec import DatasetSpec

RUN = day(200)


def outputs(out_dir):
    rec = json.loads((out_dir / "recommendation.json").read_text())
    alert = json.loads((out_dir / "alert.json").read_text())
    page = (out_dir / "drift_review.html").read_text()
    return rec, alert, page


def test_stable_shop_keeps_the_codebook(tmp_path, stable_lines, stable_book):
    path = str(tmp_path / "codebook.json")
    stable_book.save(path)
    res = run_monitor(RUN, path, lines=stable_lines, spec=SPEC, out_dir=str(tmp_path / "out"))
    assert res.action == "keep" and res.exit_code == EXIT_KEEP
    rec, alert, page = outputs(tmp_path / "out")
    assert rec["action"] == "keep" and alert["alert"] is False and alert["exit_code"] == 0
    # what the registry matches a recommendation on: run_date and the codebook file's digest
    from quantrec.data.snapshot import file_digest
    assert rec["run_date"] == RUN and rec["codebook_id"] == file_digest(path)
    win = rec["context"]["current_window"]
    assert win["end"] == RUN and win["trading_days"] == 7 and win["lines"] > 500
    assert rec["context"]["codebook"]["fit_window"] == [day(0), day(70)]
    assert rec["context"]["candidate"]["fit_window"] == [str((pd.Timestamp(win["start"]) - pd.Timedelta(days=70)).date()),
                                                        win["start"]]
    assert rec["metrics"]["rebuild_gain"] < 0.03
    # verdict first, then occupancy and price points, then Evidently's report (embedded)
    order = [page.index(s) for s in ("KEEP the codebook", "<h2>Layer-1 code occupancy", "<h2>Top price points",
                                     "<h2>Evidently drift", "<iframe")]
    assert order == sorted(order)
    assert page.count("data:image/png;base64,") >= 3


def test_repriced_shop_recommends_a_rebuild(tmp_path, shifted_lines, shifted_book):
    res = run_monitor(RUN, shifted_book, lines=shifted_lines, spec=SPEC, out_dir=str(tmp_path),
                      config={"embed_evidently": False})
    assert res.action == "rebuild" and res.exit_code == EXIT_REBUILD
    rec, alert, page = outputs(tmp_path)
    assert alert["alert"] is True and alert["level"] == "rebuild" and alert["exit_code"] == 3
    assert alert["report"].endswith("drift_review.html")
    assert rec["metrics"]["rebuild_gain"] > 0.2
    assert rec["codebook_id"] is None          # an object was monitored, not a registry file
    assert any("rebuild would lower" in r for r in rec["reasons"])
    fired = {r["rule"] for r in rec["rules"] if r["fired"]}
    assert {"recon_ratio", "drift:unit_price", "drift:log_gmv"} <= fired    # the context agrees
    assert "REBUILD the codebook" in page and "<iframe" not in page


def test_explicit_artifact_paths(tmp_path, stable_lines, stable_book):
    """What a KFP component passes: one path per output artifact, no out_dir."""
    paths = {k: str(tmp_path / f"{k}.x") for k in ("html", "recommendation", "alert")}
    res = run_monitor(RUN, stable_book, lines=stable_lines, spec=SPEC, config={"embed_evidently": False},
                      html_path=paths["html"], recommendation_path=paths["recommendation"], alert_path=paths["alert"])
    assert res.paths == paths and all((tmp_path / f"{k}.x").exists() for k in paths)
    assert res.summary()["action"] == res.action
    with pytest.raises(ValueError, match="out_dir"):
        run_monitor(RUN, stable_book, lines=stable_lines, spec=SPEC, html_path=paths["html"])


def _error(tmp_path, **kw):
    kw.setdefault("spec", SPEC)
    res = run_monitor(kw.pop("run_date", RUN), kw.pop("codebook"), out_dir=str(tmp_path), **kw)
    rec, alert, page = outputs(tmp_path)
    assert res.exit_code == EXIT_ERROR and res.action == "error"
    assert alert["alert"] is True and alert["level"] == "error" and alert["exit_code"] == 1
    assert "ERROR: no verdict" in page
    return rec["error"]


def test_missing_codebook_file_is_an_error_and_an_alert(tmp_path, stable_lines):
    err = _error(tmp_path, codebook=str(tmp_path / "nope.json"), lines=stable_lines)
    assert err["type"] == "MissingReference" and "not found" in err["message"]
    assert err["suggested_action"] == "rebuild"


def test_codebook_without_provenance_is_missing_reference(tmp_path, stable_lines, stable_book):
    bare = TargetCodebook(stable_book.transform, stable_book.codebook)
    path = str(tmp_path / "old_codebook.json")
    bare.save(path)
    err = _error(tmp_path, codebook=path, lines=stable_lines)
    assert err["type"] == "MissingReference" and "provenance" in err["message"]


def test_codebook_from_another_dataset_is_an_error(tmp_path, stable_lines, stable_book):
    other = DatasetSpec.from_dict({**SPEC.to_dict(), "name": "another_shop"})
    err = _error(tmp_path, codebook=stable_book, lines=stable_lines, spec=other)
    assert err["type"] == "CodebookMismatch" and "another dataset" in err["message"]
    assert "another_shop:" in err["message"] and "synthetic_shop:" in err["message"]


def test_empty_stale_and_small_windows(tmp_path, stable_lines, stable_book):
    fp = dataset_fingerprint(SPEC, stable_lines)
    later = stable_lines[stable_lines[S.DAY] >= day(150)]
    err = _error(tmp_path / "a", codebook=stable_book, lines=later, data_fingerprint=fp, run_date=day(100))
    assert err["type"] == "EmptyWindow"
    err = _error(tmp_path / "b", codebook=stable_book, lines=stable_lines.iloc[:0], data_fingerprint=fp)
    assert err["type"] == "EmptyWindow"
    early = stable_lines[stable_lines[S.DAY] < day(150)]
    err = _error(tmp_path / "c", codebook=stable_book, lines=early)
    assert err["type"] == "StaleData" and "max_staleness_days" in err["message"]
    err = _error(tmp_path / "d", codebook=stable_book, lines=stable_lines, config={"min_current_lines": 10**6})
    assert err["type"] == "InsufficientData"


def test_codebook_fitted_after_run_date_is_an_error(tmp_path, stable_lines, stable_book):
    err = _error(tmp_path, codebook=stable_book, lines=stable_lines, run_date=day(60))
    assert err["type"] == "MonitorError" and "ends after run_date" in err["message"]
    assert err["suggested_action"] == "keep"


def test_bad_config_and_unreadable_data_are_errors_without_secrets(tmp_path, stable_book):
    err = _error(tmp_path / "a", codebook=stable_book, data="/nope.parquet", config={"curent_days": 3})
    assert "curent_days" in err["message"]
    err = _error(tmp_path / "b", codebook=stable_book, data=str(tmp_path / "missing.parquet?token=abcdef123"))
    assert err["type"] == "DataError" and "abcdef123" not in err["message"]
    assert "abcdef123" not in (tmp_path / "b" / "drift_review.html").read_text()


def test_real_data_gives_a_verdict(tmp_path, real_lines, default_spec):
    """A codebook fitted like the daily pipeline's (365 days) on the real data, monitored a
    week after its fit window ends: a keep / rebuild verdict with every statistic."""
    from quantrec.codebook.provenance import build_provenance
    from quantrec.models.rqreg import RQRegConfig, RQRegModel
    fit = (real_lines[S.DAY] >= "2010-08-01") & (real_lines[S.DAY] < "2011-08-01")
    tr = real_lines[fit]
    y = tr[S.VALUE].to_numpy(np.float64)
    book = RQRegModel(RQRegConfig.small()).fit_target_codebook(y)
    book = book.with_provenance(build_provenance(y, book, ("2010-08-01", "2011-08-01"),
                                                 dataset_fingerprint(default_spec, real_lines),
                                                 unit_price=tr[S.UNIT_PRICE], quantity=tr[S.QUANTITY]))
    res = run_monitor("2011-08-15", book, lines=real_lines[real_lines[S.DAY] < "2011-08-15"], spec=default_spec,
                      out_dir=str(tmp_path), config={"embed_evidently": False})
    rec, alert, page = outputs(tmp_path)
    assert res.action in ("keep", "rebuild") and res.exit_code in (0, 3)
    assert rec["context"]["current_window"]["lines"] > 2000
    assert np.isfinite(rec["metrics"]["rebuild_gain"])
    assert {r["rule"] for r in rec["rules"]} >= {"drift:gmv", "drift:log_gmv", "drift:unit_price", "drift:quantity",
                                                  "occupancy_js", "rebuild_gain"}
    assert "What a rebuild would change" in page
    # the synthetic shop's codebook against the real data: another dataset
    synthetic = fit_codebook(__import__("monitoring_synth").make_lines(n_days=80), day(0), day(70))
    res = run_monitor("2011-08-15", synthetic, lines=real_lines, spec=default_spec, out_dir=str(tmp_path / "x"))
    assert res.exit_code == EXIT_ERROR and res.recommendation.error["type"] == "CodebookMismatch"


def test_current_window_counts_trading_days(stable_lines):
    """The last 7 TRADING days: the synthetic shop never trades on Saturdays, so the
    window spans 8 calendar days; a frame with timestamps only gives the same window."""
    from monitoring.config import MonitorConfig
    from monitoring.run import current_window
    win, info = current_window(stable_lines, RUN, MonitorConfig())
    days = sorted(win[S.DAY].unique())
    assert len(days) == 7 and info["trading_days"] == 7 and str(pd.Timestamp(days[-1]).date()) == day(199)
    assert (pd.Timestamp(RUN) - pd.Timestamp(days[0])).days == 8
    assert info["start"] == str(pd.Timestamp(days[0]).date()) and info["lines"] == len(win)
    ts_only, _ = current_window(stable_lines.drop(columns=[S.DAY]), RUN, MonitorConfig())
    assert len(ts_only) == len(win)
