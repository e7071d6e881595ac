"""Compile the pipelines to the YAML a KFP cluster runs (checked in under compiled/)."""

from __future__ import annotations

from pathlib import Path

from kfp import compiler

from pipelines.daily import daily_pipeline
from pipelines.monitoring import monitoring_pipeline

COMPILED_DIR = Path(__file__).parent / "compiled"
PIPELINES = {"daily.yaml": daily_pipeline, "monitoring.yaml": monitoring_pipeline}


def compile_all(out_dir: str | Path = COMPILED_DIR) -> list[Path]:
    """Write one YAML per pipeline into ``out_dir``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, func in PIPELINES.items():
        path = out / name
        compiler.Compiler().compile(pipeline_func=func, package_path=str(path))
        paths.append(path)
    return paths
