"""Compile checks: the checked-in YAML is current, and the library never imports kfp."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from pipelines.compile import COMPILED_DIR, PIPELINES, compile_all
from quantrec.data.spec import repo_root


def test_checked_in_yaml_is_not_stale(tmp_path):
    fresh = compile_all(tmp_path)
    for path in fresh:
        checked_in = COMPILED_DIR / path.name
        assert checked_in.exists(), f"{checked_in} missing: run `quantrec compile`"
        assert path.read_text() == checked_in.read_text(), (
            f"{checked_in} is stale: run `quantrec compile` and commit it")
    assert {p.name for p in fresh} == set(PIPELINES)


def test_compiled_pipeline_declares_parameters_image_and_gate():
    spec = yaml.safe_load((COMPILED_DIR / "daily.yaml").read_text())
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {"run_date", "data", "spec", "config"} <= set(params)
    from components._image import IMAGE
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {IMAGE} and IMAGE.endswith(":" + __import__("quantrec").__version__)
    # the stages after validation sit under a condition on the gate's output
    conds = [t.get("triggerPolicy", {}).get("condition", "") for t in spec["root"]["dag"]["tasks"].values()]
    assert any("validate-data" in c and "Output" in c for c in conds)


def test_library_never_imports_kfp():
    root = repo_root() / "quantrec"
    offenders = [str(p) for p in root.rglob("*.py") if "import kfp" in p.read_text()
                 or "from kfp" in p.read_text()]
    assert offenders == []
    code = ("import sys, pkgutil, importlib, quantrec\n"
            "for m in pkgutil.walk_packages(quantrec.__path__, 'quantrec.'):\n"
            "    importlib.import_module(m.name)\n"
            "bad = [m for m in sys.modules if m == 'kfp' or m.startswith('kfp.')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_dockerfile_installs_every_package_the_components_import():
    text = (repo_root() / "images" / "Dockerfile").read_text()
    assert "torch==2.13.0" in text and "pip install ." in text
    import tomllib
    packages = tomllib.loads((repo_root() / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    for pkg in (p.rstrip("*") for p in packages):
        assert f"COPY {pkg} ./{pkg}" in text, f"images/Dockerfile does not copy {pkg}"


def test_cli_compile_writes_the_checked_in_yaml(tmp_path):
    from pipelines.cli import main
    assert main(["compile", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "daily.yaml").read_text() == (COMPILED_DIR / "daily.yaml").read_text()


def _tasks(spec: dict) -> dict:
    """Every task of a compiled pipeline, nested condition sub-DAGs included."""
    out = {}
    for comp in [spec["root"], *spec.get("components", {}).values()]:
        out.update(comp.get("dag", {}).get("tasks", {}))
    return out


def test_caching_is_off_where_a_task_reads_or_changes_the_outside_world():
    daily = _tasks(yaml.safe_load((COMPILED_DIR / "daily.yaml").read_text()))
    uncached = {n for n, t in daily.items() if not t.get("cachingOptions", {}).get("enableCache")}
    # data URL, registry pointer, registry writes, champion moves: never from a cache
    assert {"resolve-run-date", "validate-data", "resolve-champion", "publish", "promote", "refresh-cache"} <= uncached
    # pure functions of this run's artifacts may cache (their keys change with the data)
    assert {"build-tasks", "fit-codebook", "train", "evaluate-offline", "shadow-compare"}.isdisjoint(uncached)
    monitoring = _tasks(yaml.safe_load((COMPILED_DIR / "monitoring.yaml").read_text()))
    assert set(monitoring) == {"resolve-run-date", "monitor"}
    assert not any(t.get("cachingOptions", {}).get("enableCache") for t in monitoring.values())


def test_every_pipeline_parameter_is_documented_for_the_ui():
    for name in PIPELINES:
        spec = yaml.safe_load((COMPILED_DIR / name).read_text())
        params = spec["root"]["inputDefinitions"]["parameters"]
        undocumented = [p for p, d in params.items() if not d.get("description")]
        assert undocumented == [], f"{name}: parameters without a description: {undocumented}"


def test_a_scheduled_run_resolves_its_date_from_the_schedule_time():
    """Compiled for a cluster: the first task reads KFP's schedule-time placeholder, and
    every stage takes that task's output, so a recurring run needs no typed date."""
    for name in PIPELINES:
        spec = yaml.safe_load((COMPILED_DIR / name).read_text())
        tasks = _tasks(spec)
        first = tasks["resolve-run-date"]["inputs"]["parameters"]
        assert first["schedule_time"]["runtimeValue"]["constant"] == "{{$.pipeline_job_schedule_time_utc}}"
        assert first["run_date"]["componentInputParameter"] == "run_date"
        assert "run_date" not in spec["root"]["inputDefinitions"]["parameters"] or \
            spec["root"]["inputDefinitions"]["parameters"]["run_date"].get("defaultValue") == ""
        for task_name, task in tasks.items():
            param = task.get("inputs", {}).get("parameters", {}).get("run_date")
            if task_name != "resolve-run-date" and param is not None:
                assert "resolve-run-date" in json.dumps(param), f"{name}: {task_name} takes run_date elsewhere"


def test_run_date_resolution():
    import pytest
    from quantrec.stages.run_date import resolve_run_date
    assert resolve_run_date("2011-12-10", "2026-12-02T02:00:00Z") == ("2011-12-10", "given")
    assert resolve_run_date("", "2026-12-02T02:00:00Z")[0] == "2026-12-02"
    assert resolve_run_date("", "2026-12-02T23:30:00+00:00")[0] == "2026-12-02"
    with pytest.raises(ValueError, match="no run date"):
        resolve_run_date("", "")
    with pytest.raises(ValueError, match="no run date"):
        resolve_run_date("", "{{$.pipeline_job_schedule_time_utc}}")  # an unsubstituted placeholder
