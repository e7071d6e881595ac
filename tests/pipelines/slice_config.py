"""The slice of the real data that pipeline tests run on."""

# A small run on a slice of the real data: four months, short windows.
SLICE_START, SLICE_END = "2011-01-04", "2011-05-01"
SLICE_RUN_DATE = "2011-04-28"
SLICE_CONFIG = {"tasks": {"windows": {"eval_days": 2, "val_days": 3, "train_days": 45},
                          "purchase_train_days": 7}}


