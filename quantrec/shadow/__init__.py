"""Shadow A/B replay of a challenger against the production baseline and the champion,
with a paired user bootstrap and a TFX-style blessing decision (explicit thresholds on
CI bounds). The entry point is ``quantrec.shadow.compare.run_shadow``.

Modules: ``replay`` (requests, slices, per-arm ranking metrics as estimators),
``calibration`` (centred isotonic expected GMV), ``bootstrap`` (vectorised paired
bootstrap), ``decision`` (threshold rules and the decision), ``report`` (HTML + JSON),
``compare`` (config, arms, ``run_shadow``, the result).
"""

from quantrec.shadow.compare import Arm, ShadowConfig, ShadowResult, run_shadow
from quantrec.shadow.decision import ThresholdRule, default_rules

__all__ = ["Arm", "ShadowConfig", "ShadowResult", "run_shadow", "ThresholdRule", "default_rules"]
