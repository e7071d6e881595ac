"""Serving: the versioned Redis cache of user/item values (``cache``), their compact
encoding (``codec``) and local Redis servers for tests, benchmarks and local runs
(``redis_server``). No kfp import here."""

from quantrec.serving.cache import (CacheBusyError, CacheError, CacheInputError, CacheRead, CacheReader,
                                    CacheStore, CacheUnavailableError, CacheVerificationError,
                                    MixedVersionError, RefreshReport, VersionNotFoundError, cache_url_from_env,
                                    connect)
from quantrec.serving.codec import (CorruptValueError, EncodedRows, SchemaMismatchError, ValueSchema, decode,
                                    version_tag)

__all__ = ["CacheBusyError", "CacheError", "CacheInputError", "CacheRead", "CacheReader", "CacheStore",
           "CacheUnavailableError", "CacheVerificationError", "CorruptValueError", "MixedVersionError",
           "EncodedRows", "RefreshReport", "SchemaMismatchError", "ValueSchema", "VersionNotFoundError",
           "cache_url_from_env", "connect",
           "decode", "version_tag"]
