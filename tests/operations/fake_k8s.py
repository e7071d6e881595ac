"""A Kubernetes API server on loopback for the PyTorchJob custom resource
(kubeflow.org/v1 pytorchjobs: create, get, delete), recording every request.

Two ways a job progresses:
- ``scripted``: each GET returns the next status of a given list (tests of wait logic);
- ``run``: a small stand-in for the Training Operator: it starts every replica's
  container command as a local process with the env vars the operator sets (MASTER_ADDR,
  MASTER_PORT, WORLD_SIZE, RANK, PET_NNODES, PET_NODE_RANK, PET_NPROC_PER_NODE),
  expands ``$(VAR)`` in args like the kubelet, runs ``torchrun`` as
  ``python -m torch.distributed.run``, and reports Created / Running / Succeeded or
  Failed (with the failing replica's last output) in ``status.conditions``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PATH = re.compile(r"^/apis/kubeflow\.org/v1/namespaces/([^/]+)/pytorchjobs(?:/([^/]+))?$")


@dataclass
class Request:
    method: str
    path: str
    body: Any


def _cond(kind: str, message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": "True", "reason": f"PyTorchJob{kind}", "message": message,
            "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeK8s:
    def __init__(self, mode: str = "scripted", script: list[list[str]] | None = None,
                 log_dir: Path | None = None) -> None:
        self.mode, self.script, self.log_dir = mode, list(script or []), log_dir
        self.requests: list[Request] = []
        self.jobs: dict[tuple[str, str], dict] = {}
        self.procs: list[subprocess.Popen] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw) if raw else None
                with fake._lock:
                    fake.requests.append(Request(method, self.path.split("?")[0], body))
                    status, payload = fake.route(method, self.path.split("?")[0], body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def api(self) -> Any:
        """A CustomObjectsApi talking to this server."""
        from kubernetes import client
        conf = client.Configuration()
        conf.host = self.url
        return client.CustomObjectsApi(client.ApiClient(conf))

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig file for this server (what ``kube_api()`` loads outside a cluster)."""
        import yaml
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}]}))
        return path

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.server.shutdown()
        self.server.server_close()

    def route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        m = PATH.match(path)
        if not m:
            return 404, {"kind": "Status", "message": f"no route {method} {path}"}
        ns, name = m.groups()
        if method == "POST" and name is None:
            key = (ns, body["metadata"]["name"])
            if key in self.jobs:
                return 409, {"kind": "Status", "reason": "AlreadyExists",
                             "message": f'pytorchjobs.kubeflow.org "{key[1]}" already exists'}
            job = {**body, "status": {"conditions": [_cond("Created")]}}
            self.jobs[key] = job
            if self.mode == "run":
                threading.Thread(target=self._operate, args=(job,), daemon=True).start()
            return 201, job
        job = self.jobs.get((ns, name or ""))
        if job is None:
            return 404, {"kind": "Status", "reason": "NotFound", "message": f'pytorchjobs "{name}" not found'}
        if method == "DELETE":
            del self.jobs[(ns, name)]
            return 200, {"kind": "Status", "status": "Success"}
        if method == "GET":
            if self.mode == "scripted" and self.script:
                job["status"] = {"conditions": [_cond(k) if isinstance(k, str) else _cond(*k)
                                                for k in self.script.pop(0)]}
            return 200, job
        return 405, {"kind": "Status", "message": "method not allowed"}

    # -- the stand-in operator --------------------------------------------------------------
    def _operate(self, job: dict) -> None:
        specs = job["spec"]["pytorchReplicaSpecs"]
        nproc = int(job["spec"].get("nprocPerNode", "1"))
        total = sum(int(s["replicas"]) for s in specs.values())
        port = _free_port()
        procs = []
        for rtype in ("Master", "Worker"):
            if rtype not in specs:
                continue
            for i in range(int(specs[rtype]["replicas"])):
                rank = i + (1 if rtype == "Worker" else 0)
                (container,) = specs[rtype]["template"]["spec"]["containers"]
                assert container["name"] == "pytorch"
                env = {e["name"]: e["value"] for e in container.get("env", [])}
                env.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(total * nproc),
                            "RANK": str(rank), "PET_NNODES": str(total), "PET_NODE_RANK": str(rank),
                            "PET_NPROC_PER_NODE": str(nproc), "PYTHONUNBUFFERED": "0"})
                args = [re.sub(r"\$\((\w+)\)", lambda mm: env.get(mm.group(1), mm.group(0)), a)
                        for a in container["args"]]
                cmd = container["command"]
                if cmd == ["torchrun"]:
                    cmd = [sys.executable, "-m", "torch.distributed.run"]
                log = open(self.log_dir / f"{job['metadata']['name']}-{rtype.lower()}-{i}.log", "w")
                procs.append((rtype, i, log, subprocess.Popen(cmd + args, env={**os.environ, **env},
                                                               stdout=log, stderr=subprocess.STDOUT)))
        self.procs += [p for *_, p in procs]
        with self._lock:
            job["status"] = {"conditions": [_cond("Created"), _cond("Running")]}
        failed = None
        for rtype, i, log, p in procs:
            code = p.wait()
            log.close()
            if code != 0 and failed is None:
                tail = Path(log.name).read_text().strip().splitlines()[-3:]
                failed = f"{rtype.lower()}-{i} exited with code {code}: " + " | ".join(tail)
        with self._lock:
            end = _cond("Failed", failed) if failed else _cond("Succeeded", "PyTorchJob successfully completed.")
            job["status"] = {"conditions": [_cond("Created"), {**_cond("Running"), "status": "False"}, end]}
