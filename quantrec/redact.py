"""The one place secrets are removed from text before it reaches a message, report,
artifact metadata or log.

Two kinds of secret are known:

* credentials inside URLs: ``scheme://user:password@host`` (redis://:pw@host,
  https://user:pw@host, gs://user:pw@bucket) and secret query parameters
  (``?token=...``, ``&password=...``, signed-URL signatures);
* the values of secret environment variables (``SECRET_ENV_VARS``), wherever they
  appear verbatim (a token echoed by a library's exception, say).

Everything that prints or writes user-influenced text calls ``redact`` (strings) or
``redact_obj`` (JSON-like trees) on it; nothing else knows what a secret looks like.
"""

from __future__ import annotations

import os
import re
from typing import Any

MASK = "***"

#: Environment variables whose values are secrets (tokens, URLs with passwords).
SECRET_ENV_VARS: tuple[str, ...] = (
    "QUANTREC_GCS_TOKEN",
    "QUANTREC_REDIS_URL",
    "REDIS_URL",
    "REDIS_PASSWORD",
    "QUANTREC_KFP_TOKEN",
    "KF_PIPELINES_SA_TOKEN_PATH_CONTENT",
)

# scheme://userinfo@  -> keep the user name (useful to debug), drop the password
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^/@\s:'\"]*)(?::(?P<pw>[^/@\s'\"]*))?@")
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;](?:token|access_token|id_token|password|passwd|pwd|secret|api_key|apikey|key|"
    r"sig|signature|x-goog-signature|x-goog-credential|credential)=)(?P<value>[^&#\s'\"]+)",
    re.IGNORECASE)
# A value shorter than this is not replaced verbatim: "anon" or "1" would mask ordinary words.
_MIN_SECRET_LEN = 6
_PUBLIC_VALUES = {"anon", "google_default", "cloud", "cache", "browser"}


def _env_secrets() -> list[str]:
    values = []
    for name in SECRET_ENV_VARS:
        value = os.environ.get(name, "")
        if len(value) >= _MIN_SECRET_LEN and value.lower() not in _PUBLIC_VALUES:
            values.append(value)
            # a URL-valued secret: its password part alone must go too
            m = _URL_USERINFO.search(value)
            if m and m.group("pw") and len(m.group("pw")) >= 3:
                values.append(m.group("pw"))
    return sorted(set(values), key=len, reverse=True)  # longest first: no partial leftovers


def _userinfo(m: re.Match) -> str:
    user, pw = m.group("user"), m.group("pw")
    if pw is None and not user:
        return m.group(0)
    if pw is None:  # scheme://token@host: a lone userinfo is usually a token
        return f"{m.group('scheme')}{MASK}@"
    return f"{m.group('scheme')}{user}:{MASK}@"


def redact(text: Any) -> Any:
    """``text`` with URL credentials, secret query values and secret env values masked.

    Non-strings are returned unchanged (use ``redact_obj`` for containers).
    """
    if not isinstance(text, str) or not text:
        return text
    out = _URL_USERINFO.sub(_userinfo, text)
    out = _SECRET_QUERY.sub(lambda m: m.group("key") + MASK, out)
    for secret in _env_secrets():
        out = out.replace(secret, MASK)
    return out


def redact_obj(obj: Any) -> Any:
    """Redact every string inside a JSON-like tree (dict keys included); returns a copy."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact_obj(k): redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact_obj(v) for v in obj)
    return obj


def redact_exception(exc: BaseException) -> str:
    """``"<Type>: <message>"`` of an exception, redacted: what a one-line error shows."""
    return redact(f"{type(exc).__name__}: {exc}")
