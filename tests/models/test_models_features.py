import numpy as np
import pandas as pd

from quantrec.data import schema
from quantrec.models.features import FeaturePipeline, FeatureSpec


def test_fit_transform_shapes_fill_and_flags(gmv_frames):
    tr, va, _ = gmv_frames
    pipe = FeaturePipeline(FeatureSpec()).fit(tr)
    num, cat = pipe.transform(va)
    assert num.dtype == np.float32 and cat.dtype == np.int64
    assert num.shape == (len(va), pipe.n_numeric) and cat.shape == (len(va), 3)
    assert np.isfinite(num).all()
    # user features have NaNs in train -> one missing flag each, equal to the NaN mask
    names = pipe.numeric_names
    j = names.index("u_lines__missing")
    np.testing.assert_array_equal(num[:, j], va["u_lines"].isna().to_numpy().astype(np.float32))
    # standardised with train statistics: train columns have mean 0
    ntr, _ = pipe.transform(tr)
    np.testing.assert_allclose(ntr[:, : len(schema.NUMERIC_FEATURES)].mean(0), 0.0, atol=1e-4)


def test_log_transform_applied_to_heavy_tailed_counts():
    df = pd.DataFrame({"u_spend": [0.0, 10.0, 1e6], "weekday": [1.0, 2.0, 3.0], "user_id": ["a", "b", "c"]})
    pipe = FeaturePipeline(FeatureSpec(numeric=["u_spend", "weekday"], categorical=["user_id"])).fit(df)
    st = pipe.numeric_stats["u_spend"]
    assert abs(st["mean"] - np.mean(np.log1p([0.0, 10.0, 1e6]))) < 1e-9
    assert abs(pipe.numeric_stats["weekday"]["mean"] - 2.0) < 1e-12


def test_unseen_and_rare_ids_map_to_unknown_zero(gmv_frames):
    tr, va, _ = gmv_frames
    pipe = FeaturePipeline(FeatureSpec(min_count=1)).fit(tr)
    odd = va.head(3).copy()
    odd[schema.USER] = ["never-seen", None, ""]
    _, cat = pipe.transform(odd)
    assert (cat[:, 0] == 0).all()
    _, cat_tr = pipe.transform(tr)
    assert (cat_tr[:, 1] > 0).all()  # every training item has its own index
    rare = FeaturePipeline(FeatureSpec(min_count=10_000)).fit(tr)
    assert (rare.transform(tr)[1] == 0).all()


def test_hash_mode_is_stable_and_in_range(gmv_frames):
    tr, va, _ = gmv_frames
    pipe = FeaturePipeline(FeatureSpec(mode="hash", hash_buckets=97)).fit(tr)
    _, a = pipe.transform(va)
    _, b = FeaturePipeline.from_json(pipe.to_json()).transform(va)
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 1 and a.max() <= 97
    assert pipe.cardinalities == [98, 98, 98]


def test_json_roundtrip(tmp_path, gmv_frames):
    tr, va, _ = gmv_frames
    pipe = FeaturePipeline().fit(tr)
    pipe.save(str(tmp_path / "features.json"))
    back = FeaturePipeline.load(str(tmp_path / "features.json"))
    for x, y in zip(pipe.transform(va), back.transform(va)):
        np.testing.assert_array_equal(x, y)


def test_missing_column_and_nonfinite_values_are_filled(gmv_frames):
    tr, va, _ = gmv_frames
    pipe = FeaturePipeline().fit(tr)
    bad = va.drop(columns=["hour"]).copy()
    bad.loc[bad.index[0], "u_spend"] = np.inf
    num, _ = pipe.transform(bad)
    assert np.isfinite(num).all()


def test_fast_index_codes_equal_the_pandas_reference_on_every_kind_of_value():
    """The dict-lookup path (str / missing values) and the pandas fallback (anything else)
    give the indices of the pandas string conversion, value by value."""
    import pandas as pd
    from quantrec.models.features import _index_codes, _index_codes_pandas
    vocab = {"a": 1, "b": 2, "7": 3, "1.5": 4}
    cases = [
        pd.Series(["a", "b", "zz", "", None, np.nan, "7"], dtype=object),
        pd.Series(["a", pd.NA, "b", "7"], dtype="string"),
        pd.Series([7, 8, 7]),                              # ints: "7" via pandas
        pd.Series([1.5, np.nan, 2.0]),                     # floats: "1.5"
        pd.Series(["a", 7, None, 1.5], dtype=object),      # mixed: pandas fallback
        pd.Series([], dtype=object),
    ]
    for s in cases:
        np.testing.assert_array_equal(_index_codes(s, vocab), _index_codes_pandas(s, vocab), err_msg=repr(s.tolist()))
    assert _index_codes(pd.Series(["b", "a", "x"]), vocab).tolist() == [2, 1, 0]


def test_matrix_numeric_transform_equals_column_by_column(gmv_frames):
    """transform_numeric's whole-matrix arithmetic equals the per-column definition:
    median-filled, standardised features, then 0/1 flags of the columns that had gaps;
    strings and infinities in a numeric column are missing."""
    import pandas as pd
    tr, va, _ = gmv_frames
    fp = FeaturePipeline().fit(tr)
    frame = va.copy()
    col0 = fp.spec.numeric[0]
    frame[col0] = frame[col0].astype(object)
    frame.loc[frame.index[:3], col0] = ["x", np.inf, None]
    got = fp.transform_numeric(frame)
    cols, flags = [], []
    for col in fp.spec.numeric:
        st = fp.numeric_stats[col]
        x = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        x = np.where(np.isfinite(x), x, np.nan)
        if col in fp.spec.log_features:
            x = np.sign(x) * np.log1p(np.abs(x))
        miss = np.isnan(x)
        cols.append((np.where(miss, st["median"], x) - st["mean"]) / st["std"])
        if st["flag"]:
            flags.append(miss.astype(np.float64))
    want = np.stack(cols + flags, axis=1).astype(np.float32)
    assert got.shape == want.shape and got.shape[1] == fp.n_numeric
    np.testing.assert_array_equal(got, want)
