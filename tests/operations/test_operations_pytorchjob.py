"""Scale-out: the PyTorchJob manifest against the Training Operator's schema fields it uses,
torchrun accepting the pod's arguments, submit / wait against a Kubernetes API server on
loopback, and the component end to end: a stand-in operator runs the manifest's command
as 2 pods (torchrun, gloo) on a real-data slice and the trained model comes back as the
component's Model artifact. (DDP == single process is proven in tests/stages/test_stages_ddp.py.)"""


import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from components.pytorchjob import render_example, train_pytorchjob, with_pod_timeout
from fake_k8s import FakeK8s
from quantrec.stages import pytorchjob as pj

REPO = Path(__file__).resolve().parents[2]

# The fields quantrec uses, as declared by the Training Operator's Go types
# (kubeflow/training-operator pkg/apis/kubeflow.org/v1: pytorch_types.go PyTorchJobSpec,
# common_types.go RunPolicy / ReplicaSpec / CleanPodPolicy / RestartPolicy); unknown keys
# are refused so a typo (e.g. "pytorchReplicaSpec") fails here, not on the cluster.
_REPLICA = {"type": "object", "additionalProperties": False, "required": ["replicas", "template"],
            "properties": {"replicas": {"type": "integer", "minimum": 1},
                           "restartPolicy": {"enum": ["Always", "OnFailure", "Never", "ExitCode"]},
                           "template": {"type": "object", "required": ["spec"], "properties": {
                               "metadata": {"type": "object"},
                               "spec": {"type": "object", "required": ["containers"], "properties": {
                                   "serviceAccountName": {"type": "string"},
                                   "containers": {"type": "array", "minItems": 1, "items": {
                                       "type": "object", "required": ["name", "image"], "properties": {
                                           "name": {"type": "string"}, "image": {"type": "string"},
                                           "command": {"type": "array", "items": {"type": "string"}},
                                           "args": {"type": "array", "items": {"type": "string"}},
                                           "env": {"type": "array", "items": {
                                               "type": "object", "required": ["name", "value"],
                                               "properties": {"name": {"type": "string"},
                                                              "value": {"type": "string"}}}},
                                           "resources": {"type": "object"}}}}}}}}}}
PYTORCHJOB_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "kubeflow.org/v1"}, "kind": {"const": "PyTorchJob"},
        "metadata": {"type": "object", "required": ["name", "namespace"],
                     "properties": {"name": {"type": "string", "pattern": r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
                                             "maxLength": 63}}},
        "spec": {"type": "object", "additionalProperties": False, "required": ["pytorchReplicaSpecs"],
                 "properties": {
                     "nprocPerNode": {"type": "string"},          # *string: auto | cpu | gpu | int
                     "runPolicy": {"type": "object", "additionalProperties": False, "properties": {
                         "cleanPodPolicy": {"enum": ["All", "Running", "None"]},
                         "ttlSecondsAfterFinished": {"type": "integer"},
                         "activeDeadlineSeconds": {"type": "integer"},
                         "backoffLimit": {"type": "integer"}, "suspend": {"type": "boolean"}}},
                     "elasticPolicy": {"type": "object"},
                     "pytorchReplicaSpecs": {"type": "object", "additionalProperties": False,
                                             "required": ["Master"],
                                             "properties": {"Master": _REPLICA, "Worker": _REPLICA}}}}}}


def _cfg(**kw) -> pj.PyTorchJobConfig:
    base = dict(name="qr-rqreg-abc", image="img:1", model="rqreg", workdir="gs://b/w/rqreg", replicas=3)
    return pj.PyTorchJobConfig(**{**base, **kw})


def test_manifest_matches_the_operator_schema_and_the_operator_rules():
    m = pj.build_manifest(_cfg(service_account="sa", gpu=0))
    jsonschema.validate(m, PYTORCHJOB_SCHEMA)
    specs = m["spec"]["pytorchReplicaSpecs"]
    assert specs["Master"]["replicas"] == 1 and specs["Worker"]["replicas"] == 2      # 3 pods in all
    for spec in specs.values():
        (c,) = spec["template"]["spec"]["containers"]
        assert c["name"] == "pytorch"                      # the operator finds the container by this name
        assert c["command"] == ["torchrun"] and "--nnodes=3" in c["args"] and "--node_rank=$(RANK)" in c["args"]
        assert c["args"][c["args"].index("--out") + 1] == "gs://b/w/rqreg"
    # replicas do not share mutable objects (editing one pod template must not edit the other)
    assert specs["Master"]["template"]["spec"] is not specs["Worker"]["template"]["spec"]
    single = pj.build_manifest(_cfg(replicas=1))
    jsonschema.validate(single, PYTORCHJOB_SCHEMA)
    assert list(single["spec"]["pytorchReplicaSpecs"]) == ["Master"]
    with pytest.raises(jsonschema.ValidationError):   # the schema does refuse a misspelt field
        jsonschema.validate({**m, "spec": {**m["spec"], "pytorchReplicaSpec": {}}}, PYTORCHJOB_SCHEMA)


def test_bad_job_settings_are_named_errors():
    with pytest.raises(ValueError, match="DNS-1123"):
        _cfg(name="Bad_Name")
    with pytest.raises(ValueError, match="must be >= 1"):
        _cfg(replicas=0)
    with pytest.raises(ValueError, match="nccl needs gpu"):
        _cfg(backend="nccl")
    name = pj.job_name("RQ-Reg model", "2011-12-10-" + "a" * 12 + "-" + "b" * 8)
    assert pj.PyTorchJobConfig(name=name, image="i", model="rqreg", workdir="gs://b").name == name
    assert name == pj.job_name("RQ-Reg model", "2011-12-10-" + "a" * 12 + "-" + "b" * 8)  # stable per run


def test_torchrun_accepts_the_pod_arguments():
    from torch.distributed.run import get_args_parser
    m = pj.build_manifest(_cfg(nproc_per_node=2))
    (c,) = m["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"]
    env = {"RANK": "2", "MASTER_ADDR": "job-master-0", "MASTER_PORT": "23456"}  # as the operator sets them
    args = [a.replace("$(RANK)", env["RANK"]).replace("$(MASTER_ADDR)", env["MASTER_ADDR"])
            .replace("$(MASTER_PORT)", env["MASTER_PORT"]) for a in c["args"]]
    parsed = get_args_parser().parse_args(args)
    assert (parsed.nnodes, parsed.nproc_per_node, parsed.node_rank) == ("3", "2", 2)
    assert (parsed.master_addr, parsed.master_port, parsed.module) == ("job-master-0", 23456, True)
    assert parsed.training_script == "quantrec.stages.ddp"
    assert parsed.training_script_args[:2] == ["--model", "rqreg"]


def test_checked_in_example_manifest_is_not_stale():
    import yaml
    checked_in = (REPO / "images" / "pytorchjob.yaml").read_text()
    assert checked_in == render_example(), "images/pytorchjob.yaml is stale: run `python -m components.pytorchjob`"
    jsonschema.validate(yaml.safe_load(checked_in), PYTORCHJOB_SCHEMA)


# ---- submit / wait against the API server ----------------------------------------------------
@pytest.fixture
def k8s_scripted(request):
    server = FakeK8s("scripted", script=getattr(request, "param", []))
    yield server
    server.stop()


@pytest.mark.parametrize("k8s_scripted", [[["Created"], ["Created", "Running"], ["Created", "Running"],
                                           ["Created", "Running", ("Succeeded", "done")]]], indirect=True)
def test_submit_and_wait_until_succeeded(k8s_scripted):
    manifest = pj.build_manifest(_cfg())
    states = []
    out = pj.run_job(k8s_scripted.api(), manifest, timeout_s=60, poll_s=0, on_state=lambda s, m: states.append(s))
    assert out["created"] is True and out["state"] == "Succeeded"
    assert states == ["Created", "Running", "Succeeded"]
    post = [r for r in k8s_scripted.requests if r.method == "POST"]
    assert len(post) == 1 and post[0].path == "/apis/kubeflow.org/v1/namespaces/kubeflow/pytorchjobs"
    assert post[0].body == manifest
    gets = [r for r in k8s_scripted.requests if r.method == "GET"]
    assert len(gets) == 4 and {r.path for r in gets} == {"/apis/kubeflow.org/v1/namespaces/kubeflow/pytorchjobs/qr-rqreg-abc"}
    # the same run again (a retried task): re-attaches to the job, never a second one
    k8s_scripted.script = [["Created", "Running", "Succeeded"]]
    again = pj.run_job(k8s_scripted.api(), manifest, timeout_s=60, poll_s=0)
    assert again["created"] is False and len(k8s_scripted.jobs) == 1


@pytest.mark.parametrize("k8s_scripted", [[["Created", "Running"],
                                           ["Created", ("Failed", "master-0 exited with code 1: OOMKilled")]]],
                         indirect=True)
def test_a_failed_job_raises_with_the_operator_message(k8s_scripted):
    with pytest.raises(pj.PyTorchJobError, match="failed: master-0 exited with code 1: OOMKilled"):
        pj.run_job(k8s_scripted.api(), pj.build_manifest(_cfg()), timeout_s=60, poll_s=0)


@pytest.mark.parametrize("k8s_scripted", [[["Created", "Running"]] * 10], indirect=True)
def test_a_job_over_its_timeout_is_deleted(k8s_scripted):
    now = [0.0]
    with pytest.raises(pj.PyTorchJobError, match="did not finish within 30 s .*Running.*deleted"):
        pj.run_job(k8s_scripted.api(), pj.build_manifest(_cfg()), timeout_s=30, poll_s=10,
                   clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    (delete,) = [r for r in k8s_scripted.requests if r.method == "DELETE"]
    assert delete.path.endswith("/pytorchjobs/qr-rqreg-abc") and delete.body["propagationPolicy"] == "Foreground"
    assert not k8s_scripted.jobs


def test_submit_refused_is_a_clear_error(k8s_scripted):
    bad = pj.build_manifest(_cfg())
    bad["metadata"]["namespace"] = "other"
    k8s_scripted.route = lambda *a: (403, {"kind": "Status", "reason": "Forbidden",
                                           "message": 'pytorchjobs.kubeflow.org is forbidden: User "x" cannot create'})
    with pytest.raises(pj.PyTorchJobError, match="cannot submit PyTorchJob other/qr-rqreg-abc: 403 .*forbidden"):
        pj.submit(k8s_scripted.api(), bad)


def test_pod_timeout_compiles_into_the_kubernetes_platform_spec(tmp_path):
    import yaml
    from kfp import compiler, dsl

    @dsl.pipeline(name="pytorchjob-probe")
    def probe(workdir: str = "gs://b/w"):
        from kfp.dsl import importer
        table = importer(artifact_uri="gs://b/t.parquet", artifact_class=dsl.Dataset)
        task = train_pytorchjob(model_name="rqreg", run_date="2011-12-10", table=table.output,
                                snapshot=table.output, config={}, workdir=workdir, timeout_minutes=50)
        with_pod_timeout(task, 50)

    compiler.Compiler().compile(probe, str(tmp_path / "p.yaml"))
    docs = list(yaml.safe_load_all((tmp_path / "p.yaml").read_text()))
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    (execu,) = [v for k, v in platform.items() if "train-pytorchjob" in k]
    assert int(execu["activeDeadlineSeconds"]) == (50 + 10) * 60   # the job's timeout + 10 minutes


# ---- the component end to end, 2 pods on a real-data slice -------------------------------------
def test_component_trains_with_two_torchrun_pods_on_real_data(tmp_path, real_lines, monkeypatch):
    from kfp.dsl import Dataset, Model

    from quantrec.data.features import build_aggregates
    from quantrec.data.tasks import build_gmv_task, write_table
    from quantrec.data.windows import WindowConfig, compute_windows
    from quantrec.models import load_model

    lines = real_lines[(real_lines["day"] >= "2011-09-01") & (real_lines["day"] < "2011-10-01")]
    windows = compute_windows(lines["day"], "2011-09-30", WindowConfig(eval_days=1, val_days=3, train_days=20))
    gmv = build_gmv_task(lines, windows, build_aggregates(lines, as_of=windows.run_date))
    table_path = str(tmp_path / "gmv.parquet")
    write_table(gmv, table_path, "gmv")
    config = {"models": {"max_train_rows": 384, "models": {"rqreg": {
        "d_model": 16, "code_emb_dim": 8, "feat_emb_dim": 4, "layers": 2, "codebook_size": 8,
        "train": {"epochs": 2, "batch_size": 64, "progress": False, "num_threads": 1}}}}}

    server = FakeK8s("run", log_dir=tmp_path)
    try:
        monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig(tmp_path / "kubeconfig")))
        table = Dataset(uri=table_path)
        snapshot = Dataset(uri=str(tmp_path / "snapshot"), metadata={"digest": "f" * 64})
        model = Model(uri=str(tmp_path / "out" / "model"))
        name = train_pytorchjob.python_func(
            model_name="rqreg", run_date="2011-09-30", table=table, snapshot=snapshot, config=config,
            workdir=str(tmp_path / "work"), model=model, replicas=2, nproc_per_node=1, cpu="1",
            timeout_minutes=10)
    finally:
        server.stop()
    logs = sorted(p.name for p in tmp_path.glob(f"{name}-*.log"))
    assert logs == [f"{name}-master-0.log", f"{name}-worker-0.log"]           # two pods ran
    (job,) = server.jobs.values()
    assert [c["type"] for c in job["status"]["conditions"] if c["status"] == "True"][-1] == "Succeeded"
    state = json.loads(next((tmp_path / "work").rglob("trainer_state.json")).read_text())
    assert len(state["history"]) == 2                                            # both epochs, under DDP
    trained = load_model(model.path)                                             # the Model artifact
    va = gmv[gmv.split == "val"].head(300)
    pred = trained.predict(va)
    assert np.isfinite(pred).all() and not np.allclose(pred, pred.mean())
    assert model.metadata["world_size"] == 2 and model.metadata["job"]["created"] is True
