"""The daily pipeline on an interaction table (a dataset spec without prices), run locally
through the CLI on a slice of the real data reduced to who, what and when: the purchase
model trains, evaluates and is published; every GMV stage says it is skipped and why."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from slice_config import SLICE_CONFIG, SLICE_RUN_DATE

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "benchmarks" / "specs" / "retail_interactions.yaml"


@pytest.fixture(scope="module")
def interaction_run(tmp_path_factory, real_slice):
    folder = tmp_path_factory.mktemp("interactions")
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "derive_interactions.py"), "--data", real_slice,
                    "--out", str(folder / "interactions.csv")], check=True, capture_output=True, timeout=300)
    df = pd.read_parquet(real_slice)
    root = folder / "root"
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "--date", SLICE_RUN_DATE,
                           "--data", str(folder / "interactions.csv"), "--spec", str(SPEC),
                           "--config", json.dumps(SLICE_CONFIG), "--pipeline-root", str(root)],
                          capture_output=True, text=True, timeout=900, env=dict(os.environ))
    return {"root": root, "code": proc.returncode, "out": proc.stdout, "err": proc.stderr,
            "negative_units": int((df["Quantity"] < 1).sum())}


def test_interaction_run_passes_and_says_what_it_skipped(interaction_run):
    code, out = interaction_run["code"], interaction_run["out"]
    assert code == 0, out + interaction_run["err"]
    assert "verdict: PASSED" in out
    assert re.search(r"gmv 0, purchase [1-9][\d,]*, replay [1-9][\d,]*, ltv 0", out)
    assert "gmv and ltv tables skipped: the dataset spec maps no unit_price or value column" in out
    assert "codebook skipped: the dataset spec maps no unit_price" in out
    assert "gmv: skipped (rqreg, wlr)" in out
    assert re.search(r"purchase dmqn: val logloss \d", out)
    assert "shadow decision: not blessed" in out and "shadow comparison skipped" in out


def test_interaction_run_publishes_the_purchase_model_without_a_codebook(interaction_run):
    out = interaction_run["out"]
    version = re.search(r"published: (\S+)", out).group(1)
    manifest = json.loads((interaction_run["root"] / "registry" / "versions" / version / "manifest.json")
                          .read_text())
    assert set(manifest["training"]) == {"dmqn"} and set(manifest["artifacts"]) == {"evaluation.json", "models/dmqn"}
    assert manifest["codebook_id"] is None and manifest["codebook_source"] == "skipped"
    decision = manifest["decision"]
    assert decision["verdict"] == "not blessed" and decision["skipped"]
    assert any(k.startswith("purchase/DMQN/AUC") for k in manifest["metrics"])
    assert not any(k.startswith("gmv/") for k in manifest["metrics"])


def test_interaction_run_counts_the_rows_below_min_label(interaction_run):
    """The cleaning metrics of build-tasks (in its executor output) count rule below_min_label:
    the slice's lines with fewer than 1 unit (cancellations) are not positive interactions."""
    run_dir = Path(re.search(r"run folder: (\S+)", interaction_run["out"]).group(1))
    output = json.loads((run_dir / "build-tasks" / "executor_output.json").read_text())
    metrics = [a["metadata"] for arts in output["artifacts"].values() for a in arts["artifacts"]
               if "removed/below_min_label" in a.get("metadata", {})]
    assert len(metrics) == 1
    removed = metrics[0]["removed/below_min_label"]
    assert 0 < removed <= interaction_run["negative_units"]


def test_interaction_version_names_only_the_models_it_holds(interaction_run):
    """The manifest's roles list only trained models, so serving refuses the version by name
    instead of looking for a GMV model that was never trained."""
    from quantrec.registry import Registry
    from quantrec.serving.service import ModelLoadError, load_serving_models

    version = re.search(r"published: (\S+)", interaction_run["out"]).group(1)
    registry = interaction_run["root"] / "registry"
    manifest = json.loads((registry / "versions" / version / "manifest.json").read_text())
    assert manifest["roles"] == {"purchase": ["dmqn"]}
    with pytest.raises(ModelLoadError, match="names no GMV model"):
        load_serving_models(Registry(str(registry)), version, {"purchase_model": "dmqn"})
