"""A KFP API server (v2beta1) on loopback that implements only what `quantrec schedule`
calls through kfp.Client, and records every request (method, path, query, body) so tests
assert what the client sent. State is in memory; ids are sequential."""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any                      # parsed JSON, {"<field>": bytes} for multipart, or None
    headers: dict[str, str] = field(default_factory=dict)


def _filter_name(query: dict[str, str]) -> str | None:
    """display_name of an EQUALS predicate of a KFP filter (the only filter kfp.Client sends here)."""
    if "filter" not in query:
        return None
    preds = json.loads(query["filter"]).get("predicates", [])
    for p in preds:
        if p.get("key") == "display_name" and p.get("operation") in ("EQUALS", 1):
            return p.get("stringValue") or p.get("string_value")
    raise AssertionError(f"unexpected filter {query['filter']}")


class FakeKfp:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.experiments: dict[str, dict] = {}
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, dict] = {}
        self.recurring: dict[str, dict] = {}
        self._n = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ctype = self.headers.get("Content-Type", "")
                if raw and ctype.startswith("multipart/form-data"):
                    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                        f"Content-Type: {ctype}\r\n\r\n".encode() + raw)
                    body = {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
                            for part in msg.iter_parts()}
                else:
                    body = json.loads(raw) if raw else None
                req = Request(method, url.path, query, body, {k.lower(): v for k, v in self.headers.items()})
                with fake._lock:
                    fake.requests.append(req)
                    status, payload = fake.route(req)
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
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _id(self, kind: str) -> str:
        self._n += 1
        return f"{kind}-{self._n}"

    # -- routing ------------------------------------------------------------------------
    def route(self, r: Request) -> tuple[int, Any]:
        p, m = r.path, r.method
        if p == "/apis/v2beta1/healthz" and m == "GET":
            return 200, {"multi_user": False}
        if p == "/apis/v2beta1/experiments":
            if m == "GET":
                name = _filter_name(r.query)
                return 200, {"experiments": [e for e in self.experiments.values()
                                             if name is None or e["display_name"] == name]}
            exp = {**r.body, "experiment_id": self._id("exp")}
            self.experiments[exp["experiment_id"]] = exp
            return 200, exp
        if p == "/apis/v2beta1/pipelines":
            if m == "GET":
                name = _filter_name(r.query)
                return 200, {"pipelines": [x for x in self.pipelines.values()
                                           if name is None or x["display_name"] == name]}
            pipe = {**r.body, "pipeline_id": self._id("pipe")}
            self.pipelines[pipe["pipeline_id"]] = pipe
            return 200, pipe
        mv = re.fullmatch(r"/apis/v2beta1/pipelines/([^/]+)/versions", p)
        if mv and m == "GET":
            name = _filter_name(r.query)
            return 200, {"pipeline_versions": [{k: v for k, v in x.items() if k != "package"}
                                               for x in self.versions.values() if x["pipeline_id"] == mv.group(1)
                                               and (name is None or x["display_name"] == name)]}
        if p == "/apis/v2beta1/pipelines/upload_version" and m == "POST":
            pid = r.query["pipelineid"]
            if pid not in self.pipelines:
                return 404, {"message": f"pipeline {pid} not found"}
            version = {"pipeline_id": pid, "pipeline_version_id": self._id("ver"), "display_name": r.query["name"],
                       "description": r.query.get("description", "")}
            self.versions[version["pipeline_version_id"]] = {**version, "package": r.body["uploadfile"]}
            return 200, version
        if p == "/apis/v2beta1/recurringruns":
            if m == "GET":
                eid = r.query.get("experiment_id")
                # the API's JSON name of this field is camelCase (proto json_name), unlike the others
                return 200, {"recurringRuns": [x for x in self.recurring.values()
                                                if eid is None or x["experiment_id"] == eid],
                             "total_size": len(self.recurring)}
            run = {**r.body, "recurring_run_id": self._id("rr")}
            self.recurring[run["recurring_run_id"]] = run
            return 200, run
        mr = re.fullmatch(r"/apis/v2beta1/recurringruns/([^/:]+)(:disable|:enable)?", p)
        if mr:
            rid, verb = mr.groups()
            if rid not in self.recurring:
                return 404, {"message": f"recurring run {rid} not found"}
            if m == "DELETE":
                del self.recurring[rid]
                return 200, {}
            if verb and m == "POST":
                self.recurring[rid]["mode"] = "DISABLE" if verb == ":disable" else "ENABLE"
                return 200, {}
            if m == "GET":
                return 200, self.recurring[rid]
        return 404, {"message": f"fake KFP: no route {m} {p}"}

    def calls(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == path]
