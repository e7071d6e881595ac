"""Scale-out training: a Kubeflow Training Operator ``PyTorchJob`` (kubeflow.org/v1) that
runs ``quantrec.stages.ddp`` under torchrun on N pods, built from code, submitted and
watched through the Kubernetes API. Pure functions build the manifest; the submit/wait
functions take a ``kubernetes.client.CustomObjectsApi`` (tests hand in one pointed at a
fake API server on loopback). Nothing here imports kfp.

How the pods find each other: the operator gives every replica's container the env vars
MASTER_ADDR, MASTER_PORT and RANK (the replica's index: 0 for the Master, 1.. for the
Workers; every operator version since v1 sets them). The container runs::

    torchrun --nnodes=<replicas> --nproc_per_node=<n> --node_rank=$(RANK)
             --master_addr=$(MASTER_ADDR) --master_port=$(MASTER_PORT)
             -m quantrec.stages.ddp --model ... --train ... --val ... --out ...

(Kubernetes expands ``$(VAR)`` in args from the container's env.) Explicit flags rather
than torchrun's PET_* env defaults, because which PET_* variables the operator sets
changed between its releases. Every rank reads the same train/val parquet from shared
storage (gs://) and rank 0 writes ``<out>/model`` and ``<out>/checkpoints`` there; a
restarted pod (restartPolicy OnFailure) resumes from the checkpoints.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

GROUP, VERSION, PLURAL, KIND = "kubeflow.org", "v1", "pytorchjobs", "PyTorchJob"
CONTAINER = "pytorch"          # the operator requires the training container to have this name
ENTRY_MODULE = "quantrec.stages.ddp"
TRAIN, VAL, MODEL_CONFIG, MODEL_DIR = "train.parquet", "val.parquet", "model_config.json", "model"


class PyTorchJobError(RuntimeError):
    """The job failed, timed out or could not be submitted; the message says which and why."""


@dataclass
class PyTorchJobConfig:
    """What the PyTorchJob runs and on what.

    name: the job's name (DNS-1123, <= 40 characters: the operator derives pod and
        service names from it); see ``job_name``.
    workdir: shared URL (gs://) holding train.parquet, val.parquet, model_config.json;
        the job writes <workdir>/model and <workdir>/checkpoints there.
    replicas: pods in total (1 Master + replicas-1 Workers); nproc_per_node: processes
        per pod. World size = replicas * nproc_per_node; the global batch of the model's
        TrainConfig is split across all of them.
    cpu / memory / gpu: per-pod resource limits (requests = limits: a DDP step waits for
        the slowest rank). backend: "gloo" (CPU) or "nccl" (GPU).
    active_deadline_seconds: the operator kills the job after this long (runPolicy).
    """

    name: str
    image: str
    model: str
    workdir: str
    namespace: str = "kubeflow"
    replicas: int = 2
    nproc_per_node: int = 1
    backend: str = "gloo"
    cpu: str = "2"
    memory: str = "4Gi"
    gpu: int = 0
    service_account: str = ""
    active_deadline_seconds: int = 4 * 3600
    backoff_limit: int = 3
    ttl_seconds_after_finished: int = 7 * 24 * 3600
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?", self.name):
            raise ValueError(f"PyTorchJob name {self.name!r} is not a DNS-1123 label of at most 40 characters")
        if self.replicas < 1 or self.nproc_per_node < 1:
            raise ValueError(f"replicas ({self.replicas}) and nproc_per_node ({self.nproc_per_node}) must be >= 1")
        if self.backend not in ("gloo", "nccl"):
            raise ValueError(f"backend must be gloo or nccl, got {self.backend!r}")
        if self.backend == "nccl" and self.gpu < 1:
            raise ValueError("backend nccl needs gpu >= 1 per pod")
        if not self.workdir or not self.image:
            raise ValueError("a PyTorchJob needs an image and a shared workdir URL")


def job_name(model: str, run_key: str) -> str:
    """``qr-<model>-<hash of the run key>``: stable for a run (a retried KFP task finds the
    job it submitted instead of starting a second one), a valid DNS-1123 label."""
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[:16] or "model"
    return f"qr-{slug}-{hashlib.sha256(run_key.encode()).hexdigest()[:12]}"


def workdir_paths(workdir: str) -> dict[str, str]:
    """The files of a job's workdir: train, val, config (inputs), model, checkpoints (outputs)."""
    base = workdir.rstrip("/")
    return {"train": f"{base}/{TRAIN}", "val": f"{base}/{VAL}", "config": f"{base}/{MODEL_CONFIG}",
            "model": f"{base}/{MODEL_DIR}", "checkpoints": f"{base}/checkpoints"}


def ddp_args(model: str, workdir: str, backend: str = "gloo") -> list[str]:
    """The arguments of ``python -m quantrec.stages.ddp`` for a workdir (see ``ddp.main``);
    ``ddp`` writes <workdir>/model and <workdir>/checkpoints."""
    p = workdir_paths(workdir)
    return ["--model", model, "--train", p["train"], "--val", p["val"], "--out", workdir.rstrip("/"),
            "--config", p["config"], "--backend", backend]


def torchrun_args(replicas: int, nproc_per_node: int) -> list[str]:
    """torchrun's flags inside a PyTorchJob pod (``$(VAR)``: expanded by Kubernetes from
    the env the operator sets)."""
    return [f"--nnodes={replicas}", f"--nproc_per_node={nproc_per_node}", "--node_rank=$(RANK)",
            "--master_addr=$(MASTER_ADDR)", "--master_port=$(MASTER_PORT)", "-m", ENTRY_MODULE]


def build_manifest(cfg: PyTorchJobConfig) -> dict[str, Any]:
    """The PyTorchJob object (a JSON-able dict) for ``cfg``."""
    limits: dict[str, Any] = {"cpu": cfg.cpu, "memory": cfg.memory}
    if cfg.gpu:
        limits["nvidia.com/gpu"] = cfg.gpu
    env = [{"name": "OMP_NUM_THREADS", "value": str(max(1, _cpus(cfg.cpu) // cfg.nproc_per_node))},
           {"name": "DO_NOT_TRACK", "value": "1"}]
    env += [{"name": k, "value": v} for k, v in sorted(cfg.env.items())]
    container = {"name": CONTAINER, "image": cfg.image, "command": ["torchrun"],
                 "args": torchrun_args(cfg.replicas, cfg.nproc_per_node) + ddp_args(cfg.model, cfg.workdir, cfg.backend),
                 "env": env, "resources": {"limits": limits, "requests": dict(limits)}}
    pod_spec: dict[str, Any] = {"containers": [container]}
    if cfg.service_account:
        pod_spec["serviceAccountName"] = cfg.service_account  # workload identity for gs://
    labels = {"app.kubernetes.io/part-of": "quantrec", "quantrec/model": cfg.model, **cfg.labels}

    def replica(count: int) -> dict[str, Any]:
        return {"replicas": count, "restartPolicy": "OnFailure",  # a restarted pod resumes from checkpoints
                "template": {"metadata": {"labels": dict(labels)}, "spec": copy.deepcopy(pod_spec)}}

    specs = {"Master": replica(1)}
    if cfg.replicas > 1:
        specs["Worker"] = replica(cfg.replicas - 1)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
            "metadata": {"name": cfg.name, "namespace": cfg.namespace, "labels": dict(labels)},
            "spec": {"nprocPerNode": str(cfg.nproc_per_node),
                     "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": cfg.backoff_limit,
                                   "activeDeadlineSeconds": cfg.active_deadline_seconds,
                                   "ttlSecondsAfterFinished": cfg.ttl_seconds_after_finished},
                     "pytorchReplicaSpecs": specs}}


def _cpus(cpu: str) -> int:
    """Whole CPUs of a Kubernetes quantity ("2", "500m" -> 1 at least)."""
    return max(1, int(float(cpu[:-1]) / 1000) if cpu.endswith("m") else int(float(cpu)))


def manifest_yaml(manifest: dict[str, Any]) -> str:
    import yaml
    return yaml.safe_dump(manifest, sort_keys=False, width=100)


# ---- inputs ---------------------------------------------------------------------------------
def prepare_workdir(table_path: str, workdir: str, model: str, model_config: dict[str, Any], label: str,
                    max_train_rows: int = 0) -> dict[str, int]:
    """Write a task table's train / val split and the model config into ``workdir`` (the
    same split the in-process train stage uses). Returns the row counts."""
    import fsspec

    from quantrec.stages.common import train_val_frames
    tr, va = train_val_frames(table_path, max_train_rows, label)
    p = workdir_paths(workdir)
    fs, root = fsspec.core.url_to_fs(workdir)
    fs.makedirs(root, exist_ok=True)
    for frame, key in ((tr, "train"), (va, "val")):
        with fsspec.open(p[key], "wb") as f:
            frame.to_parquet(f, index=False)
    with fsspec.open(p["config"], "w") as f:
        json.dump(model_config, f, indent=2, sort_keys=True)
    return {"train_rows": len(tr), "val_rows": len(va)}


# ---- submit and wait ------------------------------------------------------------------------
def job_state(job: dict[str, Any]) -> tuple[str, str]:
    """(state, message) of a PyTorchJob from its status conditions: "Succeeded" or
    "Failed" once one of them is True, else the newest True condition (Created, Running,
    Restarting, Suspended), else "Pending"."""
    conditions = (job.get("status") or {}).get("conditions") or []
    true = [c for c in conditions if str(c.get("status")) == "True"]
    for final in ("Failed", "Succeeded"):
        for c in true:
            if c.get("type") == final:
                return final, str(c.get("message") or c.get("reason") or "")
    if true:
        c = true[-1]
        return str(c.get("type")), str(c.get("message") or c.get("reason") or "")
    return "Pending", ""


def submit(api: Any, manifest: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create the job; (job, created). A job of that name that exists already (a retried
    task) is returned as it is, with created=False: never a second job for one run."""
    from kubernetes.client.exceptions import ApiException
    ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    try:
        return api.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, manifest), True
    except ApiException as exc:
        if exc.status != 409:
            raise PyTorchJobError(f"cannot submit PyTorchJob {ns}/{name}: {exc.status} {exc.reason}: "
                                  f"{_k8s_message(exc)}") from None
    return api.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name), False


def _k8s_message(exc: Any) -> str:
    try:
        return json.loads(exc.body).get("message", "")[:300]
    except (TypeError, ValueError, AttributeError):
        return str(exc.body or "")[:300]


def wait(api: Any, namespace: str, name: str, timeout_s: float, poll_s: float = 15.0,
         on_state: Callable[[str, str], None] | None = None, clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Poll the job until Succeeded (returns it), Failed (PyTorchJobError with the
    operator's message) or ``timeout_s`` (PyTorchJobError; the job is deleted so it stops
    using the cluster). ``on_state`` is called on every change of state."""
    from kubernetes.client.exceptions import ApiException
    deadline, last = clock() + timeout_s, None
    while True:
        try:
            job = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                raise PyTorchJobError(f"PyTorchJob {namespace}/{name} disappeared (deleted?)") from None
            raise PyTorchJobError(f"cannot read PyTorchJob {namespace}/{name}: {exc.status} {exc.reason}") from None
        state, message = job_state(job)
        if state != last and on_state:
            on_state(state, message)
        last = state
        if state == "Succeeded":
            return job
        if state == "Failed":
            raise PyTorchJobError(f"PyTorchJob {namespace}/{name} failed: {message or 'no message'}")
        if clock() >= deadline:
            delete(api, namespace, name)
            raise PyTorchJobError(f"PyTorchJob {namespace}/{name} did not finish within {timeout_s:.0f} s "
                                  f"(last state {state}); it was deleted")
        sleep(poll_s)


def delete(api: Any, namespace: str, name: str) -> None:
    """Delete the job and its pods (foreground propagation); absent is fine."""
    from kubernetes.client.exceptions import ApiException
    try:
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                            body={"propagationPolicy": "Foreground"})
    except ApiException as exc:
        if exc.status != 404:
            raise


def run_job(api: Any, manifest: dict[str, Any], timeout_s: float, poll_s: float = 15.0,
            on_state: Callable[[str, str], None] | None = None, **wait_kwargs: Any) -> dict[str, Any]:
    """Submit (or re-attach to) the job and wait for it. Returns {"name", "namespace",
    "created", "state", "seconds"}."""
    t0 = time.perf_counter()
    _, created = submit(api, manifest)
    meta = manifest["metadata"]
    wait(api, meta["namespace"], meta["name"], timeout_s, poll_s, on_state, **wait_kwargs)
    return {"name": meta["name"], "namespace": meta["namespace"], "created": created, "state": "Succeeded",
            "seconds": round(time.perf_counter() - t0, 1)}


def kube_api() -> Any:
    """A CustomObjectsApi from the pod's service account (in cluster) or ~/.kube/config."""
    import os

    from kubernetes import client, config
    try:
        config.load_incluster_config()
    except config.ConfigException:
        # $KUBECONFIG read now: the client library reads it once, at its import
        path = os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0]
        try:
            config.load_kube_config(config_file=path)
        except (config.ConfigException, OSError) as exc:
            raise PyTorchJobError(f"no Kubernetes API access: not in a cluster and no usable kubeconfig "
                                  f"({path}: {exc})") from None
    return client.CustomObjectsApi()


def copy_tree(src: str, dest: str) -> int:
    """Copy every file under ``src`` to ``dest`` (fsspec URLs); returns the file count."""
    import fsspec
    sfs, spath = fsspec.core.url_to_fs(src)
    dfs, dpath = fsspec.core.url_to_fs(dest)
    files = [f for f in sfs.find(spath)]
    if not files:
        raise PyTorchJobError(f"the job succeeded but wrote nothing under {src}")
    for f in files:
        rel = f[len(spath.rstrip("/")) + 1:]
        target = f"{dpath.rstrip('/')}/{rel}"
        dfs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        with sfs.open(f, "rb") as fi, dfs.open(target, "wb") as fo:
            fo.write(fi.read())
    return len(files)
