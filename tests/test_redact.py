"""The one redaction function: URL credentials, secret query values, secret env values."""

from __future__ import annotations

from quantrec.redact import MASK, redact, redact_obj


def test_url_passwords_are_masked_user_kept():
    assert redact("read https://alice:s3cr3t@host/x.parquet") == f"read https://alice:{MASK}@host/x.parquet"
    assert redact("redis://:hunter22@10.0.0.1:6379/0") == f"redis://:{MASK}@10.0.0.1:6379/0"
    assert redact("gs://user:pw123@bucket/a") == f"gs://user:{MASK}@bucket/a"
    assert redact("https://ghp_tokenvalue@github.com/x") == f"https://{MASK}@github.com/x"


def test_plain_urls_and_text_unchanged():
    for text in ("gs://bucket/data.parquet", "/tmp/a@b/c", "mail me at a@b.com", "redis://localhost:6379"):
        assert redact(text) == text


def test_secret_query_parameters():
    url = "https://storage.googleapis.com/b/o?X-Goog-Signature=abcdef123&alt=media&token=zzz999"
    out = redact(url)
    assert "abcdef123" not in out and "zzz999" not in out and "alt=media" in out


def test_secret_env_values_masked_anywhere(monkeypatch):
    monkeypatch.setenv("QUANTREC_GCS_TOKEN", "ya29.secret-token-value")
    monkeypatch.setenv("REDIS_URL", "redis://:pa55word@cache:6379")
    text = "token ya29.secret-token-value failed; auth pa55word rejected"
    out = redact(text)
    assert "ya29" not in out and "pa55word" not in out
    # a public token value such as "anon" is not a secret and must not mask words
    monkeypatch.setenv("QUANTREC_GCS_TOKEN", "anon")
    assert redact("anonymous anon") == "anonymous anon"


def test_redact_obj_walks_containers():
    tree = {"data": "https://u:pw@h/x", "list": ["redis://:p@h", 3], "n": 1.5, "nested": {"k": ("gs://a:b@c",)}}
    out = redact_obj(tree)
    assert "pw" not in str(out) and ":p@" not in str(out) and ":b@" not in str(out)
    assert out["n"] == 1.5 and out["list"][1] == 3 and isinstance(out["nested"]["k"], tuple)
