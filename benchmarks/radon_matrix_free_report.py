"""The table of benchmarks/test_radon_matrix_free.py over several runs (the machine is shared: repeat and interleave).

    python benchmarks/radon_matrix_free_report.py benchmarks/results/radon_matrix_free_run*.json

For every group and peer: the best time over all runs (min of the per-run minima), the median of the per-run
medians, and the spread of the per-run minima (max / min over runs); the ratio to ASTRA CPU 'linear' in the same
group (its best time), and the extra_info of the one-time and memory groups. Writes
benchmarks/results/radon_matrix_free.json and .md.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main(paths: list[str]) -> None:
    runs = [json.loads(Path(p).read_text()) for p in paths]
    times = defaultdict(lambda: {"min": [], "median": [], "extra": []})
    for run in runs:
        for bench in run["benchmarks"]:
            peer = bench["extra_info"].get("peer", bench["name"])
            entry = times[(bench["group"], peer)]
            entry["min"].append(bench["stats"]["min"])
            entry["median"].append(bench["stats"]["median"])
            entry["extra"].append({k: v for k, v in bench["extra_info"].items() if k != "peer"})
    rows = []
    for (group, peer), entry in sorted(times.items()):
        astra = times.get((group, "astra-linear"))
        best = min(entry["min"])
        rows.append({
            "group": group,
            "peer": peer,
            "best_ms": best * 1e3,
            "median_ms": statistics.median(entry["median"]) * 1e3,
            "spread": max(entry["min"]) / best,
            "runs": len(entry["min"]),
            "vs_astra_linear": best / min(astra["min"]) if astra else None,
            "extra": entry["extra"],
        })  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "radon_matrix_free.json").write_text(json.dumps({"runs": paths, "rows": rows}, indent=1))
    lines = ["| group | peer | best ms | median ms | spread (max/min of run minima) | runs | x ASTRA linear |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        ratio = f"{r['vs_astra_linear']:.2f}" if r["vs_astra_linear"] is not None else "-"
        lines.append(f"| {r['group']} | {r['peer']} | {r['best_ms']:.1f} | {r['median_ms']:.1f} | {r['spread']:.2f} | "
                     f"{r['runs']} | {ratio} |")  # fmt: skip
    extra = [r for r in rows if r["group"].startswith(("peak rss", "numba compile"))]
    if extra:
        lines += ["", "| group | peer | run | details |", "|---|---|---|---|"]
        for r in extra:
            for i, details in enumerate(r["extra"]):
                shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in details.items()}
                lines.append(f"| {r['group']} | {r['peer']} | {i + 1} | {json.dumps(shown)} |")
    (RESULTS / "radon_matrix_free.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
