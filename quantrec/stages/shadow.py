"""Stage ``shadow_compare``: replay the eval window's requests with the new models, the
production baseline and the current champion, and decide whether to bless (TFX's
Evaluator: explicit thresholds, CI bounds, the decision is an artifact).

Arms (score = p(purchase) x calibrated expected GMV, ``quantrec.shadow``):
- challenger: this run's GMV challenger (``roles["gmv"][0]``) + its purchase model;
- baseline: this run's production baseline (``models.baseline``, WLR) + the SAME
  purchase model, so the comparison isolates the value model;
- champion: the champion's models of the same roles (absent on the first run).
Without a purchase model every arm ranks by value alone (p = 1), and the report says so.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from quantrec.config import RunConfig
from quantrec.data import schema as S
from quantrec.data.tasks import read_table
from quantrec.stages.champion import ChampionInfo
from quantrec.stages.train import read_trained
from quantrec.training import checkpoints as ck


def _trained_paths(trained: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Model name -> its folder, from {train-stage folder: its ``read_trained`` record}."""
    return {name: ck.join(d, name) for d, record in trained.items() for name in record["models"]}


class _Scorer:
    """Loads models once and predicts replay and calibration rows."""

    def __init__(self, events: pd.DataFrame | None) -> None:
        from quantrec.models import ModelInputs
        self.inputs = ModelInputs(events=events)
        self._cache: dict[str, Any] = {}

    def model(self, path: str) -> Any:
        from quantrec.models import load_model
        if path not in self._cache:
            self._cache[path] = load_model(path)
        return self._cache[path]

    def predict(self, path: str | None, frame: pd.DataFrame, default: float | None = None) -> np.ndarray:
        if path is None:
            return np.full(len(frame), float(default))
        return np.asarray(self.model(path).predict(frame, self.inputs), dtype=np.float64)


def shadow_stage(replay_path: str, purchase_path: str, trained_dirs: list[str], champion: ChampionInfo,
                 config: RunConfig, html_path: str, json_path: str, events_path: str | None = None,
                 version_hint: str = "") -> Any:
    """Run the shadow comparison and write its report and decision. Returns the
    ``ShadowResult`` (``.blessed``, ``.decision_record()``, ``.summary()``), or a
    ``SkippedShadow`` (not blessed, with the reason) when a train stage skipped its
    models (an interaction table has no GMV models)."""
    from quantrec.shadow.compare import Arm, run_shadow

    from quantrec.shadow.compare import SkippedShadow

    trained = {d: read_trained(d) for d in trained_dirs}
    skipped = [r["skipped"] for r in trained.values() if r.get("skipped")]
    if skipped:  # e.g. an interaction table: no GMV models to compare
        result = SkippedShadow(f"the GMV models were not trained ({skipped[0]})", asdict(config.shadow))
        result.write(html_path, json_path)
        return result
    roles = config.models.roles()
    if not roles.get("gmv"):
        raise ValueError(f"shadow_compare needs a GMV challenger besides the baseline "
                         f"{config.models.baseline!r} in models.daily {list(config.models.daily)}")
    gmv_name, baseline_name = roles["gmv"][0], roles["baseline"]
    purchase_name = (roles.get("purchase") or [None])[0]
    ours = _trained_paths(trained)
    requests = read_table(replay_path)
    purchase = read_table(purchase_path)
    calib = purchase[purchase[S.SPLIT] == "val"].reset_index(drop=True)
    if requests.empty:
        raise ValueError(f"{replay_path} has no replay requests: nothing to compare")
    events = None
    if purchase_name is not None:
        needs = ours.get(purchase_name) and "events" in _Scorer(None).model(ours[purchase_name]).needs
        events = read_table(events_path) if needs and events_path else None
    scorer = _Scorer(events)

    def arm(label: str, gmv_path: str | None, purchase_path_: str | None, ids: dict[str, str]) -> Arm:
        p = scorer.predict(purchase_path_, requests, default=1.0)
        return Arm(label, p, scorer.predict(gmv_path, requests), ids,
                   calibration_value=scorer.predict(gmv_path, calib))

    display = {n: scorer.model(ours[n]).display_name for n in (gmv_name, baseline_name, purchase_name) if n}
    tag = version_hint or "this run"
    p_label = display.get(purchase_name, "no purchase model")
    challenger = arm(f"{display[gmv_name]} + {p_label}", ours[gmv_name], ours.get(purchase_name),
                     {"gmv": f"{gmv_name}@{tag}", "purchase": f"{purchase_name}@{tag}" if purchase_name else "p=1"})
    baseline = arm(f"{display[baseline_name]} + {p_label}", ours[baseline_name], ours.get(purchase_name),
                   {"gmv": f"{baseline_name}@{tag}", "purchase": f"{purchase_name}@{tag}" if purchase_name else "p=1"})
    champ_arm = None
    if champion.version and gmv_name in champion.models:
        # the champion's own purchase model; if it had none, ours is held fixed
        own_p = purchase_name in champion.models if purchase_name else False
        champ_p = champion.models[purchase_name] if own_p else ours.get(purchase_name)
        p_id = (f"{purchase_name}@{champion.version if own_p else tag}" if purchase_name else "p=1")
        champ_arm = arm(f"champion {champion.version}", champion.models[gmv_name], champ_p,
                        {"gmv": f"{gmv_name}@{champion.version}", "purchase": p_id})
    result = run_shadow(requests, challenger, baseline, champ_arm, config.shadow,
                        calibration_frame=calib, progress=False)
    if purchase_name is None:
        result.notes.append("No purchase model was trained: every arm ranks by predicted GMV alone (p = 1).")
    result.write(html_path, json_path)
    return result
