"""Failure drills (issue 14): what an operator meets when things break, each a real run.

1. the daily pipeline SIGKILLed mid-training and re-run: training resumes from the stable
   checkpoint (the checkpoint history written before the kill survives byte for byte) and
   the registry holds exactly one version of the day;
2. a corrupt promotion log (the registry's champion "pointer": garbage JSON, an entry naming
   a version that does not exist): every reader fails with an error naming the entry file,
   nothing is promoted, the serving cache's pointer does not move;
3. disk full (a small tmpfs) under the registry / the pipeline root: ENOSPC is an error
   naming the path, nothing half-published is listed, the champion is unchanged;
4. a Redis restart during a cache refresh: the refresh fails clearly, the old version stays
   active (and keeps serving), a re-run completes and flips.

Real KFP local runs on the real-data slice of the pipeline tests, a real redis-server
(with AOF persistence, so a restart keeps the data, as a production cache would), a real
tmpfs. The operator's side of each drill: docs/operations.md.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "pipelines"))  # slice_config
from slice_config import SLICE_CONFIG, SLICE_END, SLICE_RUN_DATE, SLICE_START  # noqa: E402

from quantrec.registry import Registry  # noqa: E402
from quantrec.serving.redis_server import LocalRedisServer, RedisServerNotFound, free_port  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 4  # RQ-Reg epochs in drill 1: the kill lands after the first, well before the last
CONFIG = copy.deepcopy(SLICE_CONFIG)
CONFIG["models"]["models"]["rqreg"]["train"] = {"epochs": EPOCHS, "batch_size": 64, "patience": 10,
                                                "progress": False}


# ---- shared fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def drill_slice(tmp_path_factory) -> str:
    """The real default data restricted to the pipeline tests' slice, as a parquet file."""
    from quantrec.data.spec import load_spec, resolve_data_url
    df = pd.read_parquet(resolve_data_url(load_spec()))
    df = df[(df["InvoiceDate"] >= SLICE_START) & (df["InvoiceDate"] < SLICE_END)]
    path = tmp_path_factory.mktemp("drill_slice") / "retail_slice.parquet"
    df.to_parquet(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def cache_server(tmp_path_factory):
    """A real redis-server on a fixed loopback port with AOF persistence (fsync always):
    a restart keeps what was written, as a production cache with persistence does."""
    try:
        server = LocalRedisServer(port=free_port(), workdir=tmp_path_factory.mktemp("redis"),
                                  extra_args=["--appendonly", "yes", "--appendfsync", "always"])
    except RedisServerNotFound as e:
        pytest.fail(f"the drills need a real redis-server (never skipped): {e}", pytrace=False)
    server.start()
    yield server
    server.stop()
    assert not server.is_running()


def _cli(args: list[str]) -> subprocess.Popen:
    """`quantrec ARGS` as its own process group (so a kill takes its KFP task processes too)."""
    return subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "DO_NOT_TRACK": "1"})


def _versions_of(registry: Path, day: str) -> list[str]:
    return [m["version"] for m in (json.loads(p.read_text()) for p in sorted(registry.glob("versions/*/manifest.json")))
            if m["run_date"] == day]


# ---- drill 1: SIGKILL mid-training, re-run the same day ---------------------------------------------
@pytest.fixture(scope="module")
def killed_day(tmp_path_factory, drill_slice, cache_server):
    """`quantrec run` killed (SIGKILL to its process group) once RQ-Reg wrote a stable
    checkpoint, then the same command again."""
    root = tmp_path_factory.mktemp("drill_daily")
    args = ["run", "--date", SLICE_RUN_DATE, "--data", drill_slice, "--config", json.dumps(CONFIG),
            "--pipeline-root", str(root), "--cache", cache_server.url]
    first = _cli(args)
    deadline = time.monotonic() + 900
    states: list[Path] = []
    try:
        while not states:
            states = sorted(root.glob("checkpoints/*/gmv/rqreg/trainer_state.json"))
            if first.poll() is not None:
                pytest.fail("the run ended before the kill:\n" + first.stdout.read()[-3000:])
            assert time.monotonic() < deadline, "RQ-Reg wrote no checkpoint in time"
            time.sleep(0.05)
    finally:
        try:
            os.killpg(first.pid, signal.SIGKILL)  # the CLI and every KFP task process it started
        except ProcessLookupError:
            pass  # it had ended already (reported above)
        first.wait()
    killed_out = first.stdout.read()
    state_path = states[0]
    at_kill = json.loads(state_path.read_text())  # what is on disk after the kill: the stable checkpoint
    registry = root / "registry"
    versions_after_kill = _versions_of(registry, SLICE_RUN_DATE)
    second = _cli(args)
    out, _ = second.communicate(timeout=1500)
    return {"root": root, "registry": registry, "killed_out": killed_out, "at_kill": at_kill,
            "versions_after_kill": versions_after_kill, "final": json.loads(state_path.read_text()),
            "code": second.returncode, "out": out}


def test_drill1_a_killed_daily_run_resumes_training_and_publishes_once(killed_day):
    code, out = killed_day["code"], killed_day["out"]
    assert code == 0 and "verdict: PASSED" in out, out[-4000:]
    at_kill, final = killed_day["at_kill"], killed_day["final"]
    # the kill came mid-training: some epochs done, not all
    assert 0 <= at_kill["epoch"] < EPOCHS - 1, at_kill["epoch"]
    assert "[ok  ] publish" not in killed_day["killed_out"] and killed_day["versions_after_kill"] == []
    # resumed, not restarted: the epochs finished before the kill (their losses, metrics AND
    # measured seconds) are exactly those of the killed run; a restart would re-measure them
    done = len(at_kill["history"])
    assert final["history"][:done] == at_kill["history"]
    assert final["epoch"] == EPOCHS - 1 and [h["epoch"] for h in final["history"]] == list(range(EPOCHS))
    # one version of the day, the one the re-run published
    versions = _versions_of(killed_day["registry"], SLICE_RUN_DATE)
    assert len(versions) == 1 and f"published: {versions[0]}" in out


# ---- a served version: drills 2 and 4 start from the day drill 1 published -----------------------------
def _run_folder(out: str) -> Path:
    line = next(x for x in out.splitlines() if x.startswith("run folder: "))
    return Path(line[len("run folder: "):].strip())


@pytest.fixture(scope="module")
def served(killed_day, cache_server):
    """Drill 1's version as the registry champion and the cache's active version (the run
    did both if its shadow decision blessed it; otherwise what an operator would type:
    `quantrec registry promote` and `quantrec cache refresh`)."""
    from quantrec.serving.cache import CacheStore
    from quantrec.serving.refresh import CacheConfig
    from quantrec.stages.refresh_cache import refresh_cache_stage

    (version,) = _versions_of(killed_day["registry"], SLICE_RUN_DATE)
    reg = Registry(str(killed_day["registry"]))
    if reg.champion_name() != version:
        reg.promote(version, expected_current=None, reason="drill: serve the day's version")
    events = _run_folder(killed_day["out"]) / "build-tasks" / "events"
    client = cache_server.client()
    if CacheStore(client, progress=False).active_version() != version:
        refresh_cache_stage(reg.root, version, str(events), cache_server.url, CacheConfig.from_run_config(CONFIG),
                            progress=False)
    client.close()
    return {"registry": reg.root, "version": version, "events": str(events)}


# ---- drill 2: a corrupt champion pointer -------------------------------------------------------------
BOGUS = f"{SLICE_RUN_DATE}-0000000000"  # a well-formed name of a version that was never published


def _corrupt(registry: Path, case: str) -> Path:
    """Corrupt the champion pointer (the last promotion-log entry) of ``registry``: 'garbage'
    overwrites it with bytes that are not JSON, 'missing' appends a promotion of a version
    the registry does not hold. Returns the entry file."""
    entries = sorted((registry / "promotions").glob("*.json"))
    if case == "garbage":
        entries[-1].write_bytes(b'{"seq": 1, "action": "promote", "version": \x00\xff garbage')
        return entries[-1]
    seq = len(entries) + 1
    path = registry / "promotions" / f"{seq:08d}.json"
    last = json.loads(entries[-1].read_text())
    path.write_text(json.dumps({"seq": seq, "action": "promote", "version": BOGUS, "previous": last["version"],
                                "reason": "hand edit", "at": "2011-04-28T00:00:00+00:00"}))
    return path


def _snapshot(registry: Path) -> dict[str, bytes]:
    return {str(p.relative_to(registry)): p.read_bytes() for p in sorted(registry.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", ["garbage", "missing"])
def test_drill2_a_corrupt_champion_pointer_fails_every_reader_and_moves_nothing(case, served, cache_server,
                                                                                  tmp_path, capsys):
    from components.resolve_champion import resolve_champion
    from pipelines import cache_cli, cli, serve
    from pipelines.local import run_pipeline_locally
    from pipelines.verdict import daily_verdict
    from quantrec.registry import RegistryError
    from quantrec.stages.champion import resolve_champion as resolve_stage

    registry = tmp_path / "registry"
    shutil.copytree(served["registry"], registry)
    pointer = _corrupt(registry, case)
    named = f"promotions/{pointer.name}"
    why = "not valid JSON" if case == "garbage" else f"names version {BOGUS!r}, which registry"
    before = _snapshot(registry)
    client = cache_server.client()
    flips_before = client.llen("quantrec:history")
    cache = ["--cache", cache_server.url, "--registry", str(registry)]
    capsys.readouterr()

    # the registry CLI: one line naming the entry file, exit 2; a promotion is refused too
    assert cli.main(["registry", "show", "--url", str(registry)]) == 2
    err = capsys.readouterr().err
    assert named in err and why in err and len(err.strip().splitlines()) == 1
    assert cli.main(["registry", "promote", served["version"], "--url", str(registry)]) == 2
    assert named in capsys.readouterr().err
    # the daily run's champion resolution: the stage, and the pipeline's task run by KFP
    with pytest.raises(RegistryError, match=named.replace(".", r"\.")):
        resolve_stage(str(registry), SLICE_RUN_DATE, "auto")
    run = run_pipeline_locally(resolve_champion, {"registry": str(registry), "run_date": SLICE_RUN_DATE,
                                                  "rebuild_codebook": "auto"},
                               pipeline_root=tmp_path / "root", label="drill2")
    assert run.error and "FAILURE" in run.error
    log = run.log_path.read_text()
    assert named in log and why in log
    code, lines = daily_verdict(run)  # what `quantrec run` prints
    assert code == 1 and any(line.startswith("verdict: FAILED: task resolve-champion failed") and named in line
                             for line in lines), lines
    # the cache: status and `activate --champion` cannot compare with / follow a corrupt
    # champion (exit 2, the entry named), and move nothing
    assert cache_cli.main(["status", *cache]) == 2
    assert named in capsys.readouterr().err
    assert cache_cli.main(["activate", "--champion", *cache]) == 2
    assert named in capsys.readouterr().err
    # serving reads the cache pointer, never the promotion log: it keeps serving the version
    # the cache holds (a corrupt log must not become an outage)
    assert serve.main(["--check", *cache]) == 0
    out = capsys.readouterr().out
    assert f"serving version {served['version']}" in out and '"ready": true' in out
    # nothing promoted, nothing flipped
    assert _snapshot(registry) == before
    assert client.get("quantrec:active").decode() == served["version"]
    assert client.llen("quantrec:history") == flips_before

    # the repair of docs/operations.md: remove the bad last entry, re-promote if needed
    pointer.unlink()
    reg = Registry(str(registry))
    if reg.champion_name() != served["version"]:
        assert cli.main(["registry", "promote", served["version"], "--url", str(registry),
                         "--reason", "repair after a corrupt log entry"]) == 0
    assert cli.main(["registry", "show", "--url", str(registry)]) == 0
    assert f"version {served['version']} (champion)" in capsys.readouterr().out
    assert cache_cli.main(["status", *cache]) == 0
    client.close()


def test_drill2_a_corrupt_cache_pointer_is_named_by_serve_check_and_repaired(served, cache_server, capsys):
    """The serving side's pointer (``quantrec:active``) naming nothing the cache holds:
    `serve --check` is not ready and names the pointer; `cache status` disagrees; `cache
    activate --champion` repairs it."""
    from pipelines import cache_cli, serve

    client = cache_server.client()
    cache = ["--cache", cache_server.url, "--registry", served["registry"]]
    client.set("quantrec:active", "{garbage")
    try:
        capsys.readouterr()
        assert serve.main(["--check", *cache]) == 1
        out = capsys.readouterr().out
        assert "'quantrec:active'" in out and "{garbage" in out and '"ready": false' in out
        assert cache_cli.main(["status", *cache]) == 1
        assert f"DISAGREES with the registry champion {served['version']}" in capsys.readouterr().out
        assert cache_cli.main(["activate", "--champion", *cache]) == 0
        assert client.get("quantrec:active").decode() == served["version"]
        assert serve.main(["--check", *cache]) == 0 and '"ready": true' in capsys.readouterr().out
    finally:
        if client.get("quantrec:active") != served["version"].encode():
            client.set("quantrec:active", served["version"])  # never leave drill 4 a broken cache
        client.close()


def test_drill2_log_entries_of_the_wrong_shape_are_named(tmp_path):
    """Valid JSON that is no promotion (an unknown action, a rollback without steps, a bad
    version name) names its file, like garbage does."""
    from quantrec.registry import RegistryError
    art = tmp_path / "a.bin"
    art.write_bytes(b"weights")
    reg = Registry(str(tmp_path / "reg"), create=True)
    v, _ = reg.publish({"models/x": str(art)}, "2011-04-28")
    reg.promote(v.name)
    entry = tmp_path / "reg" / "promotions" / "00000001.json"
    good = entry.read_text()
    for bad in ({"seq": 1, "action": "crown", "version": v.name},
                {"seq": 1, "action": "rollback", "version": v.name},
                {"seq": 1, "action": "promote", "version": "../../etc"}):
        entry.write_text(json.dumps(bad))
        with pytest.raises(RegistryError, match=r"promotions/00000001\.json is corrupt"):
            reg.champion_name()
    entry.write_text(good)
    assert reg.champion_name() == v.name
    # a rollback never lands on a version that does not exist
    (tmp_path / "reg" / "promotions" / "00000002.json").write_text(json.dumps(
        {"seq": 2, "action": "promote", "version": v.name + "-gone", "previous": v.name}))
    with pytest.raises(RegistryError, match=r"champion pointer .*00000002\.json names version"):
        reg.rollback(expected_current=v.name + "-gone")


# ---- drill 3: disk full under the registry / the pipeline root ---------------------------------------
PAGE = 4096  # tmpfs allocates whole pages; directories take none


@pytest.fixture
def full_disk(tmp_path):
    """A 16 MiB tmpfs (unmounted afterwards) and ``fill(leave)``: a filler file that leaves
    exactly ``leave`` bytes free (``free()`` the bytes free; ``unfill()`` removes it)."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")

    class Disk:
        path = mnt
        filler = mnt / "filler.bin"

        @staticmethod
        def free() -> int:
            st = os.statvfs(mnt)
            return st.f_bavail * st.f_frsize

        def fill(self, leave: int) -> None:
            self.unfill()
            with open(self.filler, "wb") as f:
                f.write(b"\0" * (self.free() - leave))
            assert self.free() == leave

        def unfill(self) -> None:
            self.filler.unlink(missing_ok=True)

    try:
        yield Disk()
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def _publish_args(version) -> tuple[dict[str, str], dict]:
    """Artifacts and metadata to publish the same content as ``version`` again."""
    arts = {a: version.artifact(a) for a in version.manifest["artifacts"]}
    meta = {k: v for k, v in version.manifest.items()
            if k not in ("version", "run_date", "digest", "artifacts", "published_at")}
    return arts, meta


def _pages(arts: dict[str, str]) -> int:
    """tmpfs pages the artifact files take (each file whole pages)."""
    import fsspec
    pages = 0
    for url in arts.values():
        fs, path = fsspec.core.url_to_fs(url)
        for f in (fs.find(path) if fs.isdir(path) else [path]):
            pages += -(-fs.size(f) // PAGE)
    return pages


def test_drill3_disk_full_on_publish_and_promote_leaves_nothing_half_done(killed_day, full_disk):
    from quantrec.registry import RegistryWriteError

    src_reg = Registry(str(killed_day["registry"]))
    (name,) = _versions_of(killed_day["registry"], SLICE_RUN_DATE)
    arts, meta = _publish_args(src_reg.get(name))
    manifest_bytes = (killed_day["registry"] / "versions" / name / "manifest.json").stat().st_size
    assert manifest_bytes > PAGE  # so that "room for every artifact but the manifest" exists below
    root = full_disk.path / "registry"
    reg = Registry(str(root), create=True)

    def nothing_published() -> None:
        assert reg.versions() == [] and reg.champion_name() is None
        assert not (root / "versions" / name).exists()                     # the partial copy was removed
        assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]  # no temp file left either

    # (a) the disk fills while the artifacts are copied
    full_disk.fill(PAGE)
    with pytest.raises(RegistryWriteError) as err:
        reg.publish(arts, SLICE_RUN_DATE, meta)
    message = str(err.value)
    assert err.value.errno == 28 and "No space left on device" in message
    assert f"cannot write {root}/versions/{name}/" in message and "nothing was published" in message
    nothing_published()
    # (b) every artifact fits, the manifest does not: it never appears half-written
    full_disk.fill(_pages(arts) * PAGE + PAGE)
    with pytest.raises(RegistryWriteError, match=rf"cannot write {root}/versions/{name}/manifest\.json: "
                                                 "No space left on device"):
        reg.publish(arts, SLICE_RUN_DATE, meta)
    nothing_published()
    # (c) a promotion on a full disk writes no log entry
    full_disk.unfill()
    version, created = reg.publish(arts, SLICE_RUN_DATE, meta)   # space again: the same content, the same name
    assert created and version.name == name and reg.versions() == [name]
    full_disk.fill(0)
    with pytest.raises(RegistryWriteError, match=r"cannot write .*promotions/00000001\.json: No space left"):
        reg.promote(name, expected_current=None)
    assert reg.champion_name() is None and list((root / "promotions").glob("*")) == []
    full_disk.unfill()
    reg.promote(name, expected_current=None)
    assert reg.champion_name() == name


def test_drill3_a_full_pipeline_root_stops_the_run_at_once_naming_the_path(drill_slice, full_disk, capsys):
    from pipelines import cli
    root = full_disk.path / "root"
    full_disk.fill(0)
    common = ["run", "--date", SLICE_RUN_DATE, "--data", drill_slice, "--pipeline-root", str(root)]
    assert cli.main(common) == 2  # the default registry under the root cannot even be created
    err = capsys.readouterr().err
    assert f"cannot write {root}/registry/registry.json: No space left on device" in err
    assert cli.main([*common, "--no-registry"]) == 2
    err = capsys.readouterr().err
    assert f"cannot write the pipeline root {root}: No space left on device" in err
    full_disk.unfill()
    assert Registry(str(root / "registry"), create=True).versions() == []  # space again: a clean start


# ---- drill 4: Redis restarts during a cache refresh ----------------------------------------------------
def test_drill4_redis_restart_during_a_refresh_keeps_the_old_version_and_a_rerun_flips(served, cache_server,
                                                                                     tmp_path):
    """A refresh of the new champion while Redis (a) restarts quickly, (b) goes down for the
    rest of the refresh and then restarts: each time the refresh fails clearly and flips
    nothing, the scoring service (one process throughout) answers 503 while Redis is down and
    200 with the old version right after; a re-run of the refresh stage completes and flips.

    Serving through an outage after which Redis comes back EMPTY (no persistence) is covered
    by tests/serving/test_serving_app.py::test_redis_down_then_back_the_service_recovers_
    without_a_restart (503 "no active version" until the next refresh); here Redis keeps its
    data (AOF), as a production cache with persistence does."""
    import dataclasses
    import warnings

    with warnings.catch_warnings():  # starlette prefers httpx2 for its TestClient; httpx works
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from quantrec.data import schema as S
    from quantrec.data.tasks import read_table
    from quantrec.models import load_model
    from quantrec.serving.app import create_app
    from quantrec.serving.cache import CacheBusyError, CacheStore, CacheUnavailableError, connect
    from quantrec.serving.refresh import CacheConfig, build_cache_values
    from quantrec.serving.service import ScoringService, ServiceConfig
    from quantrec.stages.refresh_cache import refresh_cache_stage

    reg = Registry(served["registry"])
    v1 = served["version"]
    old = reg.get(v1)
    v2 = f"{v1}-b"  # the next version (same content: this drill is about the cache)
    if v2 not in reg.versions():
        reg.publish({a: old.artifact(a) for a in old.manifest["artifacts"]}, old.manifest["run_date"],
                    {k: old.manifest[k] for k in ("roles", "decision") if k in old.manifest}, name=v2)
    reg.promote(v2, expected_current=v1, reason="drill 4")
    config = dataclasses.replace(CacheConfig.from_run_config(CONFIG), batch_size=50, depth=1, lock_ttl_s=3.0)
    purchase = (old.manifest.get("roles") or {}).get("purchase", [None])[0]
    events = read_table(served["events"])
    values = build_cache_values(v2, events, SLICE_RUN_DATE, load_model(old.artifact(f"models/{purchase}"))
                                if purchase else None, config, purchase_name=purchase, progress=False)
    assert len(values.blocks.user_ids) > 200  # enough batches that the restart lands mid-write

    user = str(values.blocks.user_ids[0])
    mine = events[events[S.USER].astype(str) == user]
    body = {"user_id": user, "candidates": [str(i) for i in mine[S.ITEM].unique()[:5]],
            "ts": f"{SLICE_RUN_DATE}T10:00:00"}
    svc = ScoringService(ServiceConfig(cache=cache_server.url, registry=reg.root, socket_timeout=1.0))
    seen = {}

    def restart_after(pairs, n, down_for_the_rest: bool):
        for i, pair in enumerate(pairs):
            if i == n:
                cache_server.stop()  # SIGTERM: the AOF is on disk (appendfsync always)
                seen["during"] = http.post("/score", json=body)
                if not down_for_the_rest:
                    cache_server.start()  # a quick restart: same port, same data folder
            yield pair

    def refresh(store_: CacheStore, pairs):
        return store_.refresh(v2, pairs, values.items(), user_schema=values.user_schema,
                              item_schema=values.item_schema, pairs=values.pairs(), pair_schema=values.pair_schema,
                              meta=values.meta())

    def old_version_still_serves() -> None:
        assert client.get("quantrec:active").decode() == v1
        assert client.hget(f"quantrec:v:{v2}:manifest", "status") in (b"writing", b"failed")
        after = http.post("/score", json=body)  # the same service process, no restart
        assert after.status_code == 200 and after.json()["version"] == v1
        assert after.json()["candidates"] == before.json()["candidates"]

    with TestClient(create_app(svc)) as http:
        before = http.post("/score", json=body)
        assert before.status_code == 200 and before.json()["version"] == v1
        # (a) a quick restart mid-write, with the client the refresh task makes (connect's
        # defaults: it retries commands, but a batch half-sent on a dead socket is lost):
        # the refresh fails clearly; the old version stays active and serves
        quick = CacheStore(connect(cache_server.url), prefix=config.prefix, keep=config.keep,
                           batch_size=config.batch_size, depth=config.depth, lock_ttl_s=config.lock_ttl_s,
                           progress=False)
        with pytest.raises(CacheUnavailableError) as err:
            refresh(quick, restart_after(values.users(), 120, down_for_the_rest=False))
        assert f"nothing was flipped (the active version is still '{v1}')" in str(err.value)
        assert seen["during"].status_code == 503 and "unreachable" in seen["during"].json()["detail"]
        client = cache_server.client()
        old_version_still_serves()
        quick.client.close()
        client.close()
        # (b) Redis stays down for the rest of the refresh, then restarts
        store = CacheStore(connect(cache_server.url, socket_timeout=2.0, retries=0), prefix=config.prefix,
                           keep=config.keep, batch_size=config.batch_size, depth=config.depth,
                           lock_ttl_s=config.lock_ttl_s, progress=False)
        with pytest.raises(CacheUnavailableError) as err:
            refresh(store, restart_after(values.users(), 120, down_for_the_rest=True))
        assert f"nothing was flipped (the active version is still '{v1}')" in str(err.value)
        assert seen["during"].status_code == 503 and "unreachable" in seen["during"].json()["detail"]
        cache_server.start()  # the restart: same port, same data folder
        client = cache_server.client()
        old_version_still_serves()
        # a re-run right away may find the dead refresh's lock (its release could not reach
        # the server): a clear busy error that says when the lock expires; then it completes
        report_path = tmp_path / "refresh.json"
        try:
            report = refresh_cache_stage(reg.root, v2, served["events"], cache_server.url, config,
                                         str(report_path), progress=False)
        except CacheBusyError as busy:
            assert "expires in" in str(busy)
            deadline = time.monotonic() + 10
            while client.exists("quantrec:lock") and time.monotonic() < deadline:
                time.sleep(0.1)
            report = refresh_cache_stage(reg.root, v2, served["events"], cache_server.url, config,
                                         str(report_path), progress=False)
        assert report["status"] == "refreshed" and report["previous"] == v1 and report["active"] == v2
        assert report["verification"]["read_back_errors"] == []
        assert client.get("quantrec:active").decode() == v2
        assert client.hget(f"quantrec:v:{v2}:manifest", "status") == b"complete"
        flipped = http.post("/score", json=body)
        assert flipped.status_code == 200 and flipped.json()["version"] == v2
    svc.close()
    store.client.close()
    client.close()
