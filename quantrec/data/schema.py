"""Column contract shared by every stage: canonical transactions and task tables.

Every table the library writes uses these names. A dataset spec (``spec.py``) maps a
user's own column names onto the canonical transaction columns below; everything
downstream sees only canonical names.
"""

from __future__ import annotations

# ---- canonical transactions (after ``load.load_transactions``) ------------------
USER = "user_id"          # str; null on guest lines before cleaning
ITEM = "item_id"          # str
TS = "ts"                 # datetime64[ns], event time
QUANTITY = "quantity"     # float64, units (negative on cancellations)
UNIT_PRICE = "unit_price" # float64, currency units per unit
ORDER = "order_id"        # str, invoice / order id ("" if the spec has none)
COUNTRY = "country"       # str, optional attribute ("" if the spec has none)
DAY = "day"               # datetime64[ns] normalised to midnight (derived from ts)
VALUE = "gmv"             # float64, quantity x unit_price (or the spec's value column)
IS_CANCELLATION = "is_cancellation"  # bool, derived by the spec's rule
LABEL_VALUE = "label_value"  # float64, the spec's ``label`` column (interaction tables only)
# Interaction tables (no unit_price / value in the spec): quantity is 1 unless mapped,
# unit_price is 1 and gmv = quantity, so "spend" features count interactions.

TRANSACTION_COLUMNS = [ORDER, USER, ITEM, TS, QUANTITY, UNIT_PRICE, COUNTRY]

# ---- task tables -----------------------------------------------------------------
SPLIT = "split"           # "train" | "val" | "eval"
SPLITS = ("train", "val", "eval")
LABEL = "label"           # purchase task: 1 bought, 0 sampled negative
LTV_LABEL = "ltv"         # LTV task: spend over the horizon after the first period
REQUEST_ID = "request_id" # replay: one request per user-day

# GMV features, all computed from strictly earlier days than the row's ``day``.
# NaN means "undefined" (no earlier history); models must handle NaN (fill + flag).
USER_FEATURES = [
    "u_lines",            # purchase lines before this day
    "u_days",             # distinct active days before this day
    "u_orders",           # distinct orders before this day
    "u_spend",            # total GMV before this day
    "u_log_gmv_mean",     # mean log1p(line GMV)
    "u_log_qty_mean",     # mean log1p(quantity): the user's typical quantity
    "u_log_order_gmv_mean",  # mean log1p(order GMV)
    "u_recency_days",     # days since the user's last active day (NaN if none)
    "u_tenure_days",      # days since the user's first active day (NaN if none)
    "u_log_gmv_std",      # std of log1p(line GMV): how much the user's lines vary
    "u_log_price_mean",   # mean log1p(unit price): cheap or dear items
    "u_last_day_log_gmv_mean",  # mean log1p(line GMV) on the user's last active day
]
ITEM_FEATURES = [
    "i_lines",            # purchase lines of the item before this day (all users)
    "i_log_gmv_mean",     # mean log1p(line GMV) of the item
    "i_log_qty_mean",     # mean log1p(quantity) of the item
    "i_price_last",       # median unit price on the item's last selling day
    "i_recency_days",     # days since the item last sold
    "i_log_gmv_std",      # std of log1p(line GMV) of the item
    "i_log_price_mean",   # mean log1p(unit price) of the item's lines
    "i_qty_last",         # median quantity on the item's last selling day
]
USER_ITEM_FEATURES = [
    "ui_lines",           # times this user bought this item before
    "ui_log_gmv_last",    # log1p GMV of the user's last line of this item
    "ui_log_qty_last",    # log1p quantity of that line
]
CONTEXT_FEATURES = ["weekday", "hour", "month"]  # of the request's own timestamp
NUMERIC_FEATURES = USER_FEATURES + ITEM_FEATURES + USER_ITEM_FEATURES + CONTEXT_FEATURES
CATEGORICAL_FEATURES = [USER, ITEM, COUNTRY]
IS_NEW_USER = "is_new_user"  # bool: no purchase before this day (slice, not a feature)

LTV_FEATURES = [
    "fp_spend", "fp_lines", "fp_orders", "fp_items", "fp_days",
    "fp_log_gmv_mean", "fp_log_qty_mean", "fp_first_day_spend",
]
