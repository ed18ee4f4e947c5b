#!/usr/bin/env bash
# The accelerator checks and benchmarks, as one script for a CUDA machine (no install needed
# where torch, scipy and psutil are present): device-consistency tests, the FFT/direct
# crossover, and the derivative benchmark. Writes into ${OUT:-benchmarks/results/cuda}.
#   bash benchmarks/gpu_run.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-benchmarks/results/cuda}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
$PY -m pytest -q -p no:cacheprovider tests/test_device.py 2>&1 | tail -5 | tee "$OUT/device_tests.txt"
$PY benchmarks/fft_crossover.py --quick --device cuda --out "$OUT/fft_crossover_cuda.md" > "$OUT/fft_crossover_cuda.log" 2>&1
tail -4 "$OUT/fft_crossover_cuda.log"
$PY -m napari_mollifier.cli benchmark --device cuda --grids 64 128 256 512 --min-time-s 1 \
    --json "$OUT/derivatives_cuda.json" --markdown "$OUT/derivatives_cuda.md"
