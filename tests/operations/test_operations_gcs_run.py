"""gs:// end to end: the daily pipeline run locally (KFP SubprocessRunner) with the data,
the registry and the training checkpoints on a GCS API server on loopback (fake-gcs-server),
read and written through gcsfs / google-cloud-storage with no credentials.

kfp.local keeps its own artifacts (task outputs) in a LOCAL pipeline root: it turns a
gs:// pipeline_root into a local folder, so the pipeline root stays local here; everything
quantrec itself reads or writes (data, registry, checkpoints) goes to gs://."""

from __future__ import annotations

import fsspec
import pytest

from slice_config import SLICE_CONFIG, SLICE_RUN_DATE

# the two GMV models named explicitly: what is tested is the storage, not the model list
CONFIG = {**SLICE_CONFIG, "models": {**SLICE_CONFIG["models"], "daily": ["rqreg", "wlr"]}}

BUCKET = "quantrec-e2e"


@pytest.fixture(scope="module")
def gs_run(gcs, ops_slice, tmp_path_factory):
    from pipelines.daily import local_daily_pipeline
    from pipelines.local import run_pipeline_locally
    from pipelines.verdict import daily_verdict
    from quantrec.registry import Registry

    gcs.create_bucket(BUCKET)
    data = f"gs://{BUCKET}/data/retail_slice.parquet"
    with open(ops_slice, "rb") as src, fsspec.open(data, "wb", token="anon") as dst:
        dst.write(src.read())
    registry = f"gs://{BUCKET}/registry"
    Registry(registry, create=True)               # what --create-registry does
    root = tmp_path_factory.mktemp("gs_root")
    run = run_pipeline_locally(local_daily_pipeline, {   # the arguments `quantrec run` builds
        "run_date": SLICE_RUN_DATE, "data": data, "spec": "", "config": CONFIG, "registry": registry,
        "rebuild_codebook": "auto", "checkpoints": f"gs://{BUCKET}/checkpoints"},
        pipeline_root=root, label=SLICE_RUN_DATE)
    code, lines = daily_verdict(run)
    return {"run": run, "code": code, "lines": lines, "root": root, "registry": registry}


def test_daily_run_on_gs_publishes_to_the_gs_registry(gs_run):
    from quantrec.registry import Registry
    assert gs_run["code"] == 0, "\n".join(gs_run["lines"]) + "\n" + "\n".join(
        (gs_run["run"].failed_task.tail if gs_run["run"].failed_task else []))
    version = gs_run["run"].parameter("publish")
    reg = Registry(gs_run["registry"])
    assert reg.versions() == [version]
    v = reg.get(version)
    assert v.path.startswith(f"gs://{BUCKET}/registry/versions/") and v.manifest["run_date"] == SLICE_RUN_DATE
    fs = fsspec.filesystem("gs", token="anon")
    stored = fs.find(f"{BUCKET}/registry/versions/{version}")
    assert any(p.endswith("codebook.json") for p in stored) and any("/models/rqreg/" in p for p in stored)
    blessed = gs_run["run"].parameter("shadow-compare")
    if blessed:   # promotion appended a log entry on GCS with ifGenerationMatch=0
        assert reg.champion_name() == version
        assert fs.exists(f"{BUCKET}/registry/promotions/00000001.json")
    else:
        assert reg.champion_name() is None


def test_checkpoints_on_gs_and_nothing_of_quantrec_left_locally(gs_run):
    fs = fsspec.filesystem("gs", token="anon")
    ckpts = fs.find(f"{BUCKET}/checkpoints")
    assert any("/gmv/rqreg/" in p for p in ckpts) and any(p.endswith("trainer_state.json") for p in ckpts)
    local = {p.name for p in gs_run["root"].iterdir()}
    assert local == {"runs"}     # only kfp.local's own artifact folders: no registry, no checkpoints

