#!/usr/bin/env bash
# The 7B-shaped checks on a CUDA machine: the memory model's seven Mistral-7B points, then the
# generation benchmarks on the Mistral-7B shape. Steps (docs/benchmarks.md, "On a GPU box"):
#   here:  EXTRA="..." bash ../shared/gpu/prepare-mlx-cuda.sh
#   GPU 1: carry .gpu/a; mkdir -p /root/gpu && cp .gpu/a/* /root/gpu/
#   GPU 2: carry .gpu/b; source .gpu/b/install.sh && STEPS=calibrate bash benchmarks/gpu/run-7b.sh
#   GPU 3: carry .gpu/b; source .gpu/b/env.sh && STEPS=bench bash benchmarks/gpu/run-7b.sh
# Everything lands in $OUT (the device tool brings it back), or in ./gpu-out.
# GRID=tiny SHAPE=tiny make it a dry run of the same steps that a CPU can finish.
# STEPS=calibrate or STEPS=bench runs one step, so each fits a 10-minute call. Measured points
# are kept in $KEEP, outside $OUT (which each call empties): run the same command again on the
# still-warm machine and a calibration stopped at the limit resumes where it stopped.
set -uo pipefail
out=${OUT:-gpu-out}
grid=${GRID:-mistral-7b}
shape=${SHAPE:-mistral-7b}
steps=${STEPS:-calibrate bench}
keep=${KEEP:-$HOME/farol-gpu}
mkdir -p "$out" "$keep"

# Name every missing or wrong-version distribution at once, before minutes go on the first point.
python3 benchmarks/gpu/check_env.py || exit 1
python3 -c "import mlx.core as mx
print('mlx', mx.__version__, mx.default_device(), mx.device_info().get('device_name', ''))" || exit 1

# Memory: each point in its own process; the refit goes to a copy of the calibration file.
if [[ $steps == *calibrate* ]]; then
  cp packages/farol-train/src/farol_train/memory_calibration.json "$out/"
  python3 -c "from farol_train.cli import main; main()" calibrate --grid "$grid" \
      --progress "$keep/points-$grid.json" --out "$out/memory_calibration.json" 2>&1 |
      tee "$out/calibrate.log"
  cp "$keep/points-$grid.json" "$out/"
fi

# Speed: prefill 512 and 2048, decode 128 tokens, peak memory; results JSON in $out.
if [[ $steps == *bench* ]]; then
  python3 -m pytest benchmarks/test_generation.py --benchmark-enable --shape "$shape" \
      --bench-results "$out" -p no:cacheprovider -q -s 2>&1 | tee "$out/bench.log"
fi
