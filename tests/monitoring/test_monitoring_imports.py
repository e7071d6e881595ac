"""The monitoring library, like quantrec, never imports kfp (components adapt it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_monitoring_never_imports_kfp():
    sources = [p for p in (ROOT / "monitoring").rglob("*.py")
               if "import kfp" in p.read_text() or "from kfp" in p.read_text()]
    assert sources == []
    code = ("import sys, pkgutil, importlib, monitoring\n"
            "for m in pkgutil.walk_packages(monitoring.__path__, 'monitoring.'):\n"
            "    importlib.import_module(m.name)\n"
            "import evidently\n"
            "bad = [m for m in sys.modules if m == 'kfp' or m.startswith('kfp.')]\n"
            "assert 'monitoring.run' in sys.modules, sorted(sys.modules)\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"DO_NOT_TRACK": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
