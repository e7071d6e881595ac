from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components._image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_pytorchjob(model_name: str, run_date: str, table: Input[Dataset], snapshot: Input[Dataset], config: dict,
                     workdir: str, model: Output[Model], namespace: str = "kubeflow", replicas: int = 2,
                     nproc_per_node: int = 1, cpu: str = "2", memory: str = "4Gi", gpu: int = 0,
                     backend: str = "gloo", service_account: str = "", timeout_minutes: int = 240,
                     image: str = "") -> str:
    """Train one neural model with torch DDP on the cluster: submit a Kubeflow PyTorchJob
    (torchrun on every pod), wait for it, pass the trained model on. Returns the job name.

    Args:
        model_name: the model to train (a trainer-based model of the run config, e.g. "rqreg").
        run_date: YYYY-MM-DD of the run (with the data digest and config it names the job and
            its workdir, so a retried task re-attaches to its job instead of starting another).
        table: the task table the model trains on (its train / val split is used).
        snapshot: the validated snapshot (its digest keys the job's workdir).
        config: the run configuration (the model's config comes from its "models" section).
        workdir: shared URL root (gs://...) the pods read inputs from and write model and
            checkpoints to; a restarted pod resumes from the checkpoints.
        namespace: Kubernetes namespace of the job (needs the Kubeflow Training Operator).
        replicas: pods in total (1 Master + replicas-1 Workers).
        nproc_per_node: torchrun processes per pod (world size = replicas x nproc_per_node).
        cpu: CPU limit per pod (Kubernetes quantity).
        memory: memory limit per pod (Kubernetes quantity).
        gpu: GPUs per pod (0 = CPU training).
        backend: torch.distributed backend: "gloo" (CPU) or "nccl" (GPU).
        service_account: the pods' Kubernetes service account ("" = the namespace default);
            it needs access to the workdir bucket.
        timeout_minutes: how long to wait; the job is deleted when it runs longer.
        image: the training image ("" = this component's image).
    """
    from components._image import IMAGE as DEFAULT_IMAGE
    from components._meta import attach, say
    from quantrec.config import RunConfig
    from quantrec.models.base import config_to_json, label_column
    from quantrec.stages import pytorchjob as pj
    from quantrec.stages.common import run_key

    cfg = RunConfig.from_dict(config)
    model_cfg = cfg.models.model_config(model_name)
    key = run_key(run_date, snapshot.metadata["digest"], cfg.to_dict())
    work = f"{workdir.rstrip('/')}/{key}/{model_name}"
    rows = pj.prepare_workdir(table.path, work, model_name, config_to_json(model_cfg), label_column(model_cfg.task),
                              cfg.models.max_train_rows)
    job = pj.PyTorchJobConfig(name=pj.job_name(model_name, key), image=image or DEFAULT_IMAGE, model=model_name,
                              workdir=work, namespace=namespace, replicas=replicas, nproc_per_node=nproc_per_node,
                              backend=backend, cpu=cpu, memory=memory, gpu=gpu, service_account=service_account,
                              active_deadline_seconds=timeout_minutes * 60)
    say(f"PyTorchJob {namespace}/{job.name}: {model_name} on {replicas} pod(s) x {nproc_per_node} process(es), "
        f"{rows['train_rows']} train rows")
    result = pj.run_job(pj.kube_api(), pj.build_manifest(job), timeout_s=timeout_minutes * 60,
                        on_state=lambda state, message: say(f"PyTorchJob {job.name}: {state} {message}".strip()))
    files = pj.copy_tree(pj.workdir_paths(work)["model"], model.path)
    attach(model, {"model": model_name, "job": result, "workdir": work, "files": files, **rows,
                   "world_size": replicas * nproc_per_node})
    say(f"{model_name} trained by PyTorchJob {job.name} in {result['seconds']:.0f} s "
        f"({'submitted' if result['created'] else 're-attached'})")
    return job.name


def with_pod_timeout(task, timeout_minutes: int):
    """Bound the submitting pod itself (kfp-kubernetes): a little longer than the job's own
    timeout, so a submitter stuck on the API server cannot hang the run forever."""
    from kfp import kubernetes
    return kubernetes.set_timeout(task, seconds=(timeout_minutes + 10) * 60)


def example_manifest() -> dict:
    """The PyTorchJob this component submits, for a documented example run (checked in as
    images/pytorchjob.yaml; a test fails when it is stale): RQ-Reg on 4 CPU pods."""
    from quantrec.stages import pytorchjob as pj
    job = pj.PyTorchJobConfig(name=pj.job_name("rqreg", "2011-12-10-<data digest>-<config digest>"), image=IMAGE,
                              model="rqreg", workdir="gs://BUCKET/quantrec/pytorchjobs/<run key>/rqreg",
                              namespace="kubeflow", replicas=4, nproc_per_node=1, cpu="4", memory="8Gi",
                              service_account="quantrec-training")
    return pj.build_manifest(job)


EXAMPLE_HEADER = ("# A Kubeflow PyTorchJob as components/pytorchjob.py submits it (rendered by\n"
                  "# `python -m components.pytorchjob`; tests/operations checks it is not stale).\n"
                  "# RQ-Reg trained with torch DDP on 4 CPU pods; the operator sets MASTER_ADDR,\n"
                  "# MASTER_PORT and RANK in every pod, Kubernetes expands $(VAR) in args.\n")


def render_example() -> str:
    from quantrec.stages.pytorchjob import manifest_yaml
    return EXAMPLE_HEADER + manifest_yaml(example_manifest())


if __name__ == "__main__":
    from pathlib import Path
    out = Path(__file__).resolve().parents[1] / "images" / "pytorchjob.yaml"
    out.write_text(render_example())
    print(out)
