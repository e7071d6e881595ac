"""The models, one registry: ``MODELS`` maps a model name to its class.

Every class follows the protocol of ``quantrec.models.base`` (name, config_cls, output,
needs, warm_starts, fit / predict / save / load), so stages train, evaluate and publish
any registered model without knowing it by name::

    from quantrec.models import MODELS, load_model
    cls = MODELS["rqreg"]
    model = cls(cls.config_cls.small())                  # or .paper()
    result = model.fit(frame_train, frame_val, inputs, out_dir="ckpt/")  # early stopping
    pred = model.predict(frame, inputs)                  # (n,) np.float64
    model.save("dir/")                                   # config.json names the model
    model = load_model("dir/")                           # dispatches on config.json["model"]

Adding a model = a class + ``register_model(cls)`` (+ a config entry to train it daily).
"""

from __future__ import annotations

from quantrec.models.base import NEEDS, OUTPUTS, ModelInputs
from quantrec.models.dmqn import DMQNConfig, DMQNModel
from quantrec.models.gr import GRConfig, GRModel
from quantrec.models.lgbm import LGBMConfig, LGBMModel
from quantrec.models.mlp import MLPConfig, MLPModel
from quantrec.models.purchase_peers import PEER_CLASSES
from quantrec.models.rqreg import RQRegConfig, RQRegModel
from quantrec.models.wlr import WLRConfig, WLRModel
from quantrec.models.ziln import ZILNConfig, ZILNModel

MODELS: dict[str, type] = {}


def register_model(cls: type) -> type:
    """Add a model class to ``MODELS`` after checking it declares the protocol's fields."""
    for attr in ("name", "display_name", "config_cls", "output", "needs", "warm_starts", "fit", "predict",
                 "save", "load"):
        if not hasattr(cls, attr):
            raise TypeError(f"model class {cls.__name__} lacks {attr!r} (see quantrec.models.base)")
    if not cls.name or not cls.display_name:
        raise TypeError(f"model class {cls.__name__} needs a name and a display_name")
    if cls.output not in OUTPUTS:
        raise TypeError(f"model {cls.name!r}: output {cls.output!r} is not one of {OUTPUTS}")
    if not set(cls.needs) <= NEEDS:
        raise TypeError(f"model {cls.name!r}: unknown needs {sorted(set(cls.needs) - NEEDS)}")
    for preset in ("small", "paper"):
        if not callable(getattr(cls.config_cls, preset, None)):
            raise TypeError(f"model {cls.name!r}: {cls.config_cls.__name__} lacks the preset {preset}()")
    other = MODELS.get(cls.name)
    if other is not None and other is not cls:
        raise ValueError(f"model name {cls.name!r} is taken by {other.__module__}.{other.__name__}")
    MODELS[cls.name] = cls
    return cls


# the purchase peers (popularity, ui_lines, LightGBM, mean pooling, DIN, SIM) are
# registered so the benchmark and a run config can train them like DMQN
for _cls in (RQRegModel, WLRModel, MLPModel, LGBMModel, GRModel, ZILNModel, DMQNModel, *PEER_CLASSES):
    register_model(_cls)


def load_model(path: str):
    """Load any saved model directory (fsspec URL) by the name in its config.json."""
    from quantrec.training import checkpoints as ck
    try:
        meta = ck.load_json(ck.join(path, "config.json"))
    except FileNotFoundError:
        raise ValueError(f"{path} is not a saved model: it has no config.json") from None
    except ValueError as exc:  # json.JSONDecodeError
        raise ValueError(f"{path}/config.json is not valid JSON ({exc}): the model folder is corrupt") from None
    name = meta.get("model") if isinstance(meta, dict) else None
    if name not in MODELS:
        raise ValueError(f"{path} holds a model {name!r} this quantrec does not know; known: {sorted(MODELS)}")
    return MODELS[name].load(path)


__all__ = ["MODELS", "register_model", "load_model", "ModelInputs", "RQRegModel", "RQRegConfig", "WLRModel",
           "WLRConfig", "DMQNModel", "DMQNConfig", "GRModel", "GRConfig", "ZILNModel", "ZILNConfig", "MLPModel",
           "MLPConfig", "LGBMModel", "LGBMConfig"]
