"""fsspec options per URL, the one place credentials for remote storage are resolved.

Data loading and the registry both open URLs through fsspec; for ``gs://`` the
credentials are checked up front: gcsfs otherwise falls back to anonymous access and
retries for about a minute before a traceback that names no cause.

A GCS emulator (``STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT``, honoured by gcsfs and
google-cloud-storage alike) needs no credentials: gs:// URLs then go to the emulator with
anonymous access. The registry's create-if-absent write (``gcs_client``) goes through
google-cloud-storage with ``if_generation_match=0``, built here from the same settings.
"""

from __future__ import annotations

import os
from typing import Any

from quantrec.redact import redact

GCS_TOKEN_ENV = "QUANTREC_GCS_TOKEN"
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
#: project name given to the google-cloud-storage client talking to an emulator
EMULATOR_PROJECT = "quantrec-emulator"


class StorageError(ValueError):
    """A storage URL cannot be used (no credentials, ...); the message is redacted."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


def is_gcs(url: str) -> bool:
    return url.startswith(("gs://", "gcs://"))


def gcs_emulator() -> str | None:
    """The GCS emulator endpoint of $STORAGE_EMULATOR_HOST, or None (real GCS)."""
    host = os.environ.get(EMULATOR_ENV, "")
    return None if host in ("", "default") else host


def _plain_gcsfs_for_emulator() -> None:
    """gcsfs >= 2026.10 swaps in an 'extended' GCSFileSystem that asks the Storage Control
    gRPC API for every bucket's layout; an emulator has no such API: the call times out
    after 60 s and, not being cached, is repeated on every operation. With an emulator
    use the plain class, here and (through the env switch gcsfs reads at import) in the
    pipeline's task subprocesses."""
    import fsspec
    from gcsfs.core import GCSFileSystem

    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    for protocol in ("gs", "gcs"):
        fsspec.register_implementation(protocol, GCSFileSystem, clobber=True)


def storage_options(url: str) -> dict:
    """fsspec storage options for ``url``: ``{}`` for local and other protocols; for
    gs:// the token of $QUANTREC_GCS_TOKEN ("anon" for public buckets) or the Google
    application-default credentials, which must exist (StorageError otherwise); with a
    GCS emulator ($STORAGE_EMULATOR_HOST) anonymous access unless a token is set."""
    if not is_gcs(url):
        return {}
    token = os.environ.get(GCS_TOKEN_ENV)
    if gcs_emulator():
        _plain_gcsfs_for_emulator()
        return {"token": token or "anon"}
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


def apply_gcs_defaults() -> dict:
    """Make every plain ``fsspec.open("gs://...")`` of this process (checkpoints, codebooks,
    reports: the calls that do not ask ``storage_options``) use the same settings as
    ``storage_options``: the $QUANTREC_GCS_TOKEN token, or anonymous access and plain gcsfs
    with an emulator. Sets fsspec's per-protocol defaults; returns them ({} = nothing to set).
    Call it once at the start of a process that touches gs:// (a pipeline task)."""
    import fsspec.config

    token = os.environ.get(GCS_TOKEN_ENV)
    if gcs_emulator():
        _plain_gcsfs_for_emulator()
        token = token or "anon"
    if not token:
        return {}
    for protocol in ("gs", "gcs"):
        fsspec.config.conf.setdefault(protocol, {})["token"] = token
    return {"token": token}


def gcs_client(url: str) -> Any:
    """A ``google.cloud.storage.Client`` with the credentials ``storage_options(url)``
    gives gcsfs: the emulator's anonymous client, a key file named by
    $QUANTREC_GCS_TOKEN, or the application-default credentials. Used where gcsfs has
    no equivalent (generation preconditions). Anonymous access to real GCS cannot
    write: StorageError."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    if gcs_emulator():
        return storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", EMULATOR_PROJECT),
                              credentials=AnonymousCredentials())
    storage_options(url)  # the same up-front credential check (and message) as gcsfs gets
    token = os.environ.get(GCS_TOKEN_ENV)
    if token == "anon":
        raise StorageError(f"cannot write {url} with anonymous access (QUANTREC_GCS_TOKEN=anon): "
                           "a registry on gs:// needs credentials that may write the bucket")
    if token and os.path.isfile(token):
        import google.auth
        credentials, project = google.auth.load_credentials_from_file(token)
        return storage.Client(project=project, credentials=credentials)
    return storage.Client()
