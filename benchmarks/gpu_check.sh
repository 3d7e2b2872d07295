#!/usr/bin/env bash
# The GPU checks of issue 7 in one command, for the lent GPU machine (which has torch, CuPy, pytest,
# pytest-benchmark and hypothesis, but no registry). Prepare here with `.ci/gpu-wheels`, then run there
# with `.whl` carried, e.g. run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=590).
# Writes to $OUT (or out/gpu): device.csv, gpu_tests.log, gpu_bench.log and the pytest-benchmark gpu.json.
set -uo pipefail
out=${OUT:-out/gpu}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,clocks.max.memory --format=csv | tee "$out/device.csv"
# the parity, dot, autograd and gradgradcheck tests of the CuPy kernels, then every other GPU-marked test
timeout 200 python3 -m pytest -q -m gpu tests/ -p no:cacheprovider 2>&1 | tee "$out/gpu_tests.log" | tail -15
timeout 330 python3 -m pytest benchmarks/test_gpu.py --benchmark-only --benchmark-group-by=group \
    --benchmark-json="$out/gpu.json" -q -p no:cacheprovider 2>&1 | tee "$out/gpu_bench.log" | tail -40
