"""`python -m solvers reconstruct`: seconds per slice of every solver, and peak memory against the number of
slices.

Time per slice (the table in `--help`, `solvers.app.choices.SOLVERS`): 128 x 128 slices, 61 views over
+-60 degrees, 10 % noise, default settings, one thread; 2 slices per run, the slice time from the
"N slices in T s (...; CPU time ...)" line: the solve only (DDRM's SVD is computed, and cached, before
the timed runs). The CPU time of the process, which other load on a shared machine disturbs far less
than the wall time, is what we report (with one thread it is the wall time of a quiet machine).

Peak memory: the command runs in a fresh process on a tilt series of 32 and of 512 slices (61 views x
256 columns, MRC, FBP, one thread) and reports its VmHWM (peak resident set, /proc/self/status). Input
and output are memory-mapped and their pages released after each task, so the peak does not grow with
the number of slices.

    python -m pytest benchmarks/test_reconstruct.py --benchmark-only -s
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

RESULTS = Path(__file__).parent / "results" / "reconstruct.json"
SOLVERS = ["fbp", "algebraic", "cgls", "lsqr", "tv", "ddgm", "ddrm", "dps", "padis"]
MEASURED: dict = {"seconds_per_slice": {}, "peak_rss_mb": {}}

DRIVER = """
import sys
from solvers.app import cli
code = cli.main(sys.argv[1:])
for line in open('/proc/self/status'):
    if line.startswith('VmHWM:'):
        print('VmHWM', int(line.split()[1]) // 1024, 'MB')
sys.exit(code)
"""


def write_series(folder: Path, rows: int, cols: int, views: int = 61, noise: float = 0.1) -> Path:
    """A tilt series of `rows` slices (smooth blobs), written view by view into a memory-mapped MRC."""
    import mrcfile

    rng = np.random.default_rng(0)
    path = folder / f"series_{rows}x{cols}.mrc"
    mrc = mrcfile.new_mmap(path, (views, rows, cols), mrc_mode=2, overwrite=True)
    s = np.linspace(-1, 1, cols)
    base = np.exp(-((s[None, :] - 0.3 * np.sin(np.arange(rows)[:, None] / 7)) ** 2) / 0.05) * cols / 4
    for v in range(views):
        view = base * (1 + 0.1 * np.cos(v / 9)) + noise * base.std() * rng.standard_normal(base.shape)
        mrc.data[v] = view.astype(np.float32)
    mrc.voxel_size = 1.0
    mrc.close()
    (folder / "series.rawtlt").write_text("\n".join(f"{a:.3f}" for a in np.linspace(-60, 60, views)))
    return path


def run_cli(args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", DRIVER, "reconstruct", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=3600)


@pytest.fixture(scope="module")
def series128(tmp_path_factory):
    folder = tmp_path_factory.mktemp("times")
    return folder, write_series(folder, 2, 128)


@pytest.mark.parametrize("solver", SOLVERS)
def test_seconds_per_slice(benchmark, series128, solver, tmp_path, monkeypatch):
    folder, series = series128
    benchmark.group = "reconstruct: seconds per 128 x 128 slice (61 views, 1 thread, default settings)"
    args = [series, "--angles", folder / "series.rawtlt", "--solver", solver, "--threads", "1", "--no-preview",
            "--output", tmp_path / "v.mrc", "--overwrite"]
    if solver == "ddrm":  # the SVD once, outside the timing (cached on disk)
        assert run_cli(args).returncode == 0
    seconds, walls = [], []

    def once():
        done = run_cli(args)
        assert done.returncode == 0, done.stderr
        wall, cpu = re.search(r"slices in [0-9.]+ s \(([0-9.e+-]+) s per slice; CPU time in this process "
                              r"([0-9.e+-]+) s per slice", done.stdout).groups()
        seconds.append(float(cpu))
        walls.append(float(wall))

    benchmark.pedantic(once, rounds=2, iterations=1)
    MEASURED["seconds_per_slice"][solver] = {"cpu": min(seconds), "cpu_all": seconds, "wall_all": walls}
    benchmark.extra_info["seconds_per_slice"] = min(seconds)


@pytest.mark.parametrize("rows", [32, 512])
def test_peak_memory_does_not_grow_with_slices(benchmark, rows, tmp_path):
    benchmark.group = "reconstruct: peak RSS (61 views x 256 columns, FBP, 1 thread)"
    series = write_series(tmp_path, rows, 256)
    peaks = []

    def once():
        done = run_cli([series, "--angles", tmp_path / "series.rawtlt", "--solver", "fbp", "--threads", "1",
                        "--output", tmp_path / "v.mrc", "--overwrite", "--quiet"])
        assert done.returncode == 0, done.stderr
        peaks.append(int(re.search(r"VmHWM (\d+) MB", done.stdout).group(1)))

    benchmark.pedantic(once, rounds=1, iterations=1)
    input_mb = series.stat().st_size / 2**20
    MEASURED["peak_rss_mb"][rows] = {"peak_rss_mb": peaks[0], "input_mb": round(input_mb, 1),
                                     "output_mb": round(rows * 256 * 256 * 4 / 2**20, 1)}
    benchmark.extra_info.update(MEASURED["peak_rss_mb"][rows])


def teardown_module(module):
    if not any(MEASURED.values()):
        return
    earlier = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    for key, value in MEASURED.items():
        earlier.setdefault(key, {}).update({str(k): v for k, v in value.items()})
    earlier["date"] = time.strftime("%Y-%m-%d")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(earlier, indent=1) + "\n")
    print("\n" + json.dumps(MEASURED, indent=1))
