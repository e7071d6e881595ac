"""Value builders and small schemas shared by the cache tests (synthetic frames)."""

from __future__ import annotations

import numpy as np

from quantrec.serving.codec import ValueSchema

# small shapes keep tests fast; the benchmark uses the DMQN size (100 x 32)
USER_SCHEMA = ValueSchema("user", (8, 4), ("u_lines", "u_spend", "version_no"))
ITEM_SCHEMA = ValueSchema("item", (4,), ("i_lines", "version_no"))


def user_values(version: str, n: int, version_no: float = 1.0, seed: int = 0, start: int = 0,
                schema: ValueSchema = USER_SCHEMA) -> list[tuple[int, bytes]]:
    """n users (ids start..start+n-1) with seeded states; aggregate 'version_no' marks the version."""
    rng = np.random.default_rng(seed)
    states = rng.standard_normal((n,) + schema.shape)
    aggs = np.column_stack([np.arange(start, start + n), rng.gamma(2.0, 50.0, n), np.full(n, version_no)])
    return list(zip(range(start, start + n), schema.encode_many(states, aggs, version)))


def item_values(version: str, n: int, version_no: float = 1.0, seed: int = 1) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(seed)
    aggs = np.column_stack([np.arange(n), np.full(n, version_no)])
    return [(f"SKU{i}", v) for i, v in
            enumerate(ITEM_SCHEMA.encode_many(rng.standard_normal((n, 4)), aggs, version))]


def namespace_keys(client, version: str, prefix: str = "quantrec") -> int:
    """Keys of one namespace, counted by SCAN (what the cache itself never uses KEYS for)."""
    return sum(1 for _ in client.scan_iter(match=f"{prefix}:v:{version}:*", count=1000))
