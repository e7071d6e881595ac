"""A real-data slice through the cache: as-of aggregates of real customers and products of
Online Retail II (the one feature path, ``build_aggregates`` + ``join_features``) encoded,
refreshed into a real Redis and read back in one round trip, value for value."""

from __future__ import annotations

import numpy as np
import pandas as pd

from quantrec.data import schema as S
from quantrec.data.features import build_aggregates, join_features
from quantrec.serving.cache import CacheReader, CacheStore
from quantrec.serving.codec import EncodedRows, ValueSchema

AS_OF = pd.Timestamp("2011-12-01")


def test_real_users_and_items_round_trip_through_the_cache(real_lines, redis_client):
    aggregates = build_aggregates(real_lines, as_of=AS_OF).latest()
    users = sorted(aggregates.user[S.USER].astype(str).unique())[:400]
    items = sorted(aggregates.item[S.ITEM].astype(str).unique())[:200]
    # one query per user / per item on the serving day: what a scoring request would join
    ns = {S.DAY: "datetime64[ns]", S.TS: "datetime64[ns]"}  # the lines' resolution
    user_q = pd.DataFrame({S.USER: users, S.ITEM: items[0], S.DAY: AS_OF, S.TS: AS_OF}).astype(ns)
    item_q = pd.DataFrame({S.USER: users[0], S.ITEM: items, S.DAY: AS_OF, S.TS: AS_OF}).astype(ns)
    user_feats = join_features(aggregates, user_q)[S.USER_FEATURES].to_numpy()
    item_feats = join_features(aggregates, item_q)[S.ITEM_FEATURES].to_numpy()
    assert np.isfinite(user_feats[:, 0]).all()  # every chosen user has history before AS_OF

    version = "2011-12-01-real"
    user_schema = ValueSchema("user", (100, 32), tuple(S.USER_FEATURES))
    item_schema = ValueSchema("item", (32,), tuple(S.ITEM_FEATURES))
    rng = np.random.default_rng(0)  # DMQN states are built elsewhere: seeded stand-ins here
    states, embeddings = rng.standard_normal((400, 100, 32)), rng.standard_normal((200, 32))
    store = CacheStore(redis_client, progress=False)
    report = store.refresh(version, EncodedRows(user_schema, version, users, states, user_feats, chunk=128),
                           zip(items, item_schema.encode_many(embeddings, item_feats, version)),
                           user_schema=user_schema, item_schema=item_schema,
                           meta={"as_of": str(AS_OF.date()), "source": "online_retail_ii"})
    assert (report.users, report.items) == (400, 200)

    reader = CacheReader(redis_client)
    for k in (0, 137, 399):
        read = reader.read(users[k], items[:100])
        assert read.version == version
        np.testing.assert_array_equal(read.user.aggregates, user_feats[k].astype(np.float32))
        np.testing.assert_array_equal(read.user.array, states[k].astype(np.float16))
        got = np.stack([v.aggregates for v in read.items])
        np.testing.assert_array_equal(got, item_feats[:100].astype(np.float32))  # NaN == NaN here
    fields = reader.schemas(version)[0].aggregates_dict(reader.read(users[5]).user)
    assert fields["u_spend"] == np.float32(user_feats[5, S.USER_FEATURES.index("u_spend")])
    # a real customer id written as a string reads back from its integer form too
    assert reader.read(int(users[7])).user is not None
