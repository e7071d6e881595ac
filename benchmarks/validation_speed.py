"""Wall time of the validation gate (``validation.runner.run_validation``) on the default data.

The gate reads every row a run reads (all rows before the run date: 1,044,847 for
2011-12-10), cleans them to count each rule per day, and runs the GX suites. Times:
  cold:  the first call of the process (includes the Great Expectations import and
         its ephemeral context, about 2-6 s),
  warm:  later calls in the same process (best and median of ``--repeat``).
``--src DIR`` imports ``quantrec`` / ``validation`` from another source tree, e.g. an
older commit extracted with ``git archive <commit> | tar -x -C DIR``: the before/after
comparison in benchmarks/RESULTS.md is this script run on both trees.

    .venv/bin/python benchmarks/validation_speed.py [--date 2011-12-10] [--repeat 5]
        [--src DIR] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared/data/online_retail_ii/online_retail_ii.parquet"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--date", default="2011-12-10", help="run date (default: the day after the data ends)")
    p.add_argument("--repeat", type=int, default=5, help="warm calls after the first one")
    p.add_argument("--src", help="source tree to import the gate from (default: this repository)")
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--quick", action="store_true", help="smoke run: 1 warm call")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    src = Path(args.src).resolve() if args.src else Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(src))
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from validation.runner import run_validation

    import validation
    assert Path(validation.__file__).resolve().is_relative_to(src), validation.__file__
    repeat = 1 if args.quick else args.repeat
    t0 = time.perf_counter()
    first = run_validation(args.date, data=args.data)
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = run_validation(args.date, data=args.data)
        warm.append(time.perf_counter() - t0)
    out = {"src": str(src), "run_date": args.date, "rows_loaded": res.rows_loaded,
           "checks": len(res.checks), "verdict": res.summary()["verdict"],
           "cold_s": round(cold, 2), "warm_best_s": round(min(warm), 2),
           "warm_median_s": round(statistics.median(warm), 2), "warm_runs": len(warm),
           "cpus": os.cpu_count(), "python": platform.python_version(),
           "load_average_1m": round(os.getloadavg()[0], 2)}
    assert first.summary()["verdict"] == out["verdict"]
    print(f"{'source':<40} {'run_date':<11} {'rows':>9} {'checks':>6} {'verdict':<7} "
          f"{'cold s':>7} {'warm best s':>11} {'warm median s':>13}")
    print(f"{str(src):<40} {args.date:<11} {out['rows_loaded'] or 0:>9,} {out['checks']:>6} {out['verdict']:<7} "
          f"{out['cold_s']:>7.2f} {out['warm_best_s']:>11.2f} {out['warm_median_s']:>13.2f}")
    print(f"(load average during the run: {out['load_average_1m']} on {out['cpus']} CPUs)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
