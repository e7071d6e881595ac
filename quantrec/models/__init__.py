"""Value models over the shared feature pipeline.

Uniform interface (what a pipeline component calls)::

    from quantrec.models import MODELS, load_model
    model = MODELS["rqreg"](MODELS["rqreg"].config_cls.small())   # or .paper()
    result = model.fit(frame_train, frame_val, out_dir="ckpt/")    # early stop on val MAE
    pred = model.predict(frame)          # (n,) np.float64, value units (GMV)
    model.save("dir/")                   # model.safetensors|model.txt, config.json, features.json
    model = load_model("dir/")           # dispatches on config.json["model"]
"""

from __future__ import annotations

from quantrec.models.lgbm import LGBMConfig, LGBMModel
from quantrec.models.mlp import MLPConfig, MLPModel
from quantrec.models.rqreg import RQRegConfig, RQRegModel
from quantrec.models.wlr import WLRConfig, WLRModel

MODELS = {"rqreg": RQRegModel, "wlr": WLRModel, "mlp": MLPModel, "lgbm": LGBMModel}


def load_model(path: str):
    """Load any saved model directory (fsspec URL) by the name in its config.json."""
    from quantrec.training import checkpoints as ck
    name = ck.load_json(ck.join(path, "config.json"))["model"]
    return MODELS[name].load(path)


__all__ = ["MODELS", "load_model", "RQRegModel", "RQRegConfig", "WLRModel", "WLRConfig",
           "MLPModel", "MLPConfig", "LGBMModel", "LGBMConfig"]
