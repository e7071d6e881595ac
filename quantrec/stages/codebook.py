"""Stage ``fit_codebook``: the run's GMV codebook, fitted or the champion's reused.

Which codebook: the daily models that declare ``"codebook"`` in ``needs`` say what they
need (``codebook_spec()``) and how to fit it (``fit_target_codebook``); they must agree.
The champion's codebook is reused when the champion resolution says so AND it has the
requested shape; a champion codebook of another shape (the config changed) is rebuilt,
and the summary says why.
"""

from __future__ import annotations

import json
from typing import Any

import fsspec
import numpy as np
import pandas as pd

from quantrec.codebook.provenance import build_provenance
from quantrec.config import RunConfig
from quantrec.data import schema as S
from quantrec.stages.champion import ChampionInfo
from quantrec.stages.common import train_val_frames


def codebook_models(config: RunConfig) -> list[str]:
    """The daily models that need the GMV codebook."""
    return [n for n in config.models.daily if "codebook" in config.models.model_class(n).needs]


def _spec_of(book: Any) -> dict[str, Any]:
    cfg = book.config
    return {"method": book.method, "layers": int(book.layers), "size": int(book.size),
            "transform": cfg.get("transform", {}).get("kind")}


def fit_codebook_stage(gmv_path: str, config: RunConfig, champion: ChampionInfo, codebook_path: str,
                       report_html: str, report_json: str, dataset_fingerprint: str,
                       skipped: str | None = None) -> dict[str, Any]:
    """Fit (or reuse) the codebook and write it with its reconstruction report (GMV units).

    A fitted codebook carries its provenance (fit window, ``dataset_fingerprint``, a
    reference sketch of the training labels) for monitoring; a champion codebook of
    another dataset (fingerprint mismatch) is never reused.
    Returns a flat summary: source ("fitted" | "reused" | "skipped"), reason, shape and
    the chosen codebook's errors on this run's training labels. ``skipped``: why the GMV
    table is empty on purpose (an interaction table has no GMV): no codebook, source "skipped".
    """
    from quantrec.codebook import fit_codebook, load_codebook, reconstruction_report, write_reconstruction_report
    from quantrec.codebook.target import TargetCodebook

    users = codebook_models(config)
    if skipped or not users:
        reason = skipped or f"no daily model needs a codebook (models.daily = {list(config.models.daily)})"
        with fsspec.open(codebook_path, "w") as f:
            json.dump({"kind": "none", "reason": reason}, f)
        from quantrec.reports import HtmlReport
        HtmlReport("GMV codebook: skipped").add_text("Why", reason).write(report_html)
        with fsspec.open(report_json, "w") as f:
            json.dump({"skipped": reason}, f)
        return {"source": "skipped", "reason": reason}
    models = {n: config.models.model_class(n)(config.models.model_config(n)) for n in users}
    specs = {n: m.codebook_spec() for n, m in models.items()}
    if len({json.dumps(s, sort_keys=True) for s in specs.values()}) > 1:
        raise ValueError(f"the daily models that share the GMV codebook ask for different ones: {specs}")
    owner = users[0]
    wanted = specs[owner]
    train = train_val_frames(gmv_path, 0, label=S.VALUE)[0]
    y = train[S.VALUE].to_numpy(np.float64)  # every training label

    chosen, source, reason = None, "fitted", champion.rebuild_reason
    if not champion.rebuild_codebook and champion.codebook:
        book = load_codebook(champion.codebook)
        if not isinstance(book, TargetCodebook):
            reason = f"champion {champion.version}'s codebook has no target transform (old format): rebuilt"
        elif _spec_of(book) != wanted:
            reason = (f"champion {champion.version}'s codebook {_spec_of(book)} differs from the configured "
                      f"{wanted}: rebuilt")
        elif book.provenance is not None and book.provenance.data_fingerprint != dataset_fingerprint:
            reason = (f"champion {champion.version}'s codebook was fitted on dataset "
                      f"{book.provenance.data_fingerprint}, this run reads {dataset_fingerprint}: rebuilt")
        else:
            chosen, source = book, "reused"
    if chosen is None:
        chosen = models[owner].fit_target_codebook(y)
        days = train[S.DAY]
        chosen = chosen.with_provenance(build_provenance(
            y, chosen, (days.min(), days.max() + pd.Timedelta(days=1)), dataset_fingerprint,
            unit_price=train[S.UNIT_PRICE].to_numpy(np.float64), quantity=train[S.QUANTITY].to_numpy(np.float64),
            extra={"fitted_by": owner}))
    codebooks = {f"RQ L={chosen.layers} K={chosen.size} ({source})": chosen}
    if config.codebook.compare_baselines and source == "fitted":
        tf = chosen.transform
        codebooks[f"flat K-means {chosen.layers * chosen.size} codes"] = TargetCodebook(
            tf, fit_codebook(tf.to_z(y), method="kmeans", layers=chosen.layers, size=chosen.size))
        codebooks["dynamic quantile (GR)"] = TargetCodebook(tf, fit_codebook(tf.to_z(y), method="dynamic_quantile"))
    report = reconstruction_report(y, codebooks)
    write_reconstruction_report(report, report_json, report_html, y, codebooks)
    chosen.save(codebook_path)
    first = report["methods"][next(iter(codebooks))]
    tail = first["per_bucket"][-1]
    return {"source": source, "reason": reason, "used_by": users, "method": chosen.method,
            "layers": int(chosen.layers), "size": int(chosen.size), "n_labels": int(y.size),
            "clip": chosen.transform.clip, "mae": first["overall"]["mae"], "mre": first["overall"]["mre"],
            "max_abs": first["overall"]["max_abs"], "tail_bucket": tail["bucket"], "tail_mae": tail["mae"],
            "champion": champion.version, "dataset_fingerprint": dataset_fingerprint,
            "fit_window": list(chosen.provenance.fit_window) if chosen.provenance else None}
