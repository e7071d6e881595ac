"""fsspec options per URL, the one place credentials for remote storage are resolved.

Data loading and the registry both open URLs through fsspec; for ``gs://`` the
credentials are checked up front: gcsfs otherwise falls back to anonymous access and
retries for about a minute before a traceback that names no cause.
"""

from __future__ import annotations

import os

from quantrec.redact import redact

GCS_TOKEN_ENV = "QUANTREC_GCS_TOKEN"


class StorageError(ValueError):
    """A storage URL cannot be used (no credentials, ...); the message is redacted."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


def storage_options(url: str) -> dict:
    """fsspec storage options for ``url``: ``{}`` for local and other protocols; for
    gs:// the token of $QUANTREC_GCS_TOKEN ("anon" for public buckets) or the Google
    application-default credentials, which must exist (StorageError otherwise)."""
    if not url.startswith(("gs://", "gcs://")):
        return {}
    token = os.environ.get(GCS_TOKEN_ENV)
    if token:
        return {"token": token}
    import google.auth
    import google.auth.exceptions

    env = dict(os.environ)
    # Outside a Kubernetes pod the GCE metadata probe only burns ~18 s: skip it there.
    # Inside one (a KFP cluster) it is how workload identity provides credentials.
    if "KUBERNETES_SERVICE_HOST" not in env:
        os.environ.setdefault("NO_GCE_CHECK", "true")
    try:
        google.auth.default()
    except google.auth.exceptions.DefaultCredentialsError:
        raise StorageError(
            f"cannot read {url}: no Google Cloud credentials found. Set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, run "
            "`gcloud auth application-default login`, or set QUANTREC_GCS_TOKEN=anon "
            "for a public bucket.") from None
    finally:
        if "NO_GCE_CHECK" not in env:
            os.environ.pop("NO_GCE_CHECK", None)
    return {}
