#!/usr/bin/env bash
# The 7B-shaped checks on a CUDA machine, sized for a short GPU lease (docs/benchmarks.md, "On a
# GPU box"):
#   here:  EXTRA="..." bash ../shared/gpu/prepare-mlx-cuda.sh
#   GPU 1: carry .gpu/a; mkdir -p /root/gpu && cp .gpu/a/* /root/gpu/
#   GPU 2: carry .gpu/b; source .gpu/b/install.sh && bash benchmarks/gpu/run-7b.sh
# Steps, in order (STEPS picks some): warmup calibrate bench train bridge.
#   warmup     one untimed 7B training step, so CUDA compiles its kernels before anything is
#              measured (a first calibrate call on a fresh machine measured nothing in 170 s)
#   calibrate  the memory grid's points, refit (points kept in $KEEP: a rerun resumes)
#   bench      prefill 512/2048, decode 128, peak memory
#   train      farol-train against mlx-lm's trainer on a saved shape folder (random 4-bit weights,
#              the tiny model's tokenizer): batch 4, max_seq_length 512, 16 LoRA layers, rank 8
#   bridge     the bridge's 8-concurrent test on that folder
# Output: at most 8 files in $OUT (or ./gpu-out): run.log (every step's log, combined), and one
# results JSON per step (warmup.json, calibrate.json, bench.json, train.json, bridge.json).
# GRID=tiny SHAPE=tiny make it a dry run of the same steps that a CPU can finish (a test runs it).
set -uo pipefail
out=${OUT:-gpu-out}
grid=${GRID:-mistral-7b}
shape=${SHAPE:-mistral-7b}
steps=${STEPS:-warmup calibrate bench train bridge}
keep=${KEEP:-$HOME/farol-gpu}
iters=${ITERS:-12}
bench_args=${BENCH_ARGS:-}  # the dry run shortens the generation benchmark with these
py=${PYTHON:-python3}
mkdir -p "$out" "$keep"
log="$out/run.log"
: > "$log"
status=0

# Each step: a header in run.log, its output appended, a nonzero exit remembered.
step() { echo "== $1 ($(date -u +%H:%M:%S))" >> "$log"; shift; "$@" >> "$log" 2>&1 || status=1; }

# Name every missing or wrong-version distribution at once, before minutes go on the first point.
step env "$py" benchmarks/gpu/check_env.py || exit 1
step device "$py" -c "import mlx.core as mx
print('mlx', mx.__version__, mx.default_device(), mx.device_info().get('device_name', ''))"

if [[ $steps == *warmup* ]]; then
  step warmup sh -c "$py benchmarks/gpu/steps.py warmup $shape | tee '$out/warmup.json'"
fi

if [[ $steps == *calibrate* ]]; then
  tmp=$(mktemp -d)
  cp packages/farol-train/src/farol_train/memory_calibration.json "$tmp/"
  step calibrate "$py" -c "from farol_train.cli import main; main()" calibrate --grid "$grid" \
      --progress "$keep/points-$grid.json" --out "$tmp/memory_calibration.json"
  # The measured points (with their source) are what the repository keeps.
  cp "$keep/points-$grid.json" "$out/calibrate.json" 2>/dev/null || status=1
  rm -rf "$tmp"
fi

if [[ $steps == *bench* ]]; then
  tmp=$(mktemp -d)
  step bench "$py" -m pytest benchmarks/test_generation.py --benchmark-enable --shape "$shape" \
      --bench-results "$tmp" -p no:cacheprovider -q -s $bench_args
  cp "$(ls "$tmp"/*.json 2>/dev/null | head -1)" "$out/bench.json" 2>/dev/null || status=1
  rm -rf "$tmp"
fi

if [[ $steps == *train* || $steps == *bridge* ]]; then
  folder="$keep/$shape-shape-4bit"
  data="$keep/data"
  if [[ ! -f $folder/config.json ]]; then
    step tokenizer "$py" -c "from farol_core.tiny import create_tiny_model
from farol_data import texts
create_tiny_model('$keep/tiny', texts(['data/sample/farense_qa.jsonl'],
                  'data/sample/biografias/jogadores'), force=True)"
    step save-shape "$py" benchmarks/gpu/steps.py save-shape "$shape" "$keep/tiny" "$folder"
  fi
  [[ -f $data/train.jsonl ]] || step prepare "$py" -c "from farol_data import prepare
prepare(['data/sample/farense_qa.jsonl'], '$data',
        biographies='data/sample/biografias/jogadores')"
fi

if [[ $steps == *train* ]]; then
  # One process per trainer: a second model in one process inflates the peak.
  # The trainers print progress too: the results are the last line.
  for t in farol mlx-lm; do
    step "train-$t" sh -c "$py benchmarks/gpu/steps.py train $t '$folder' '$data' $iters \
        > '$keep/train-$t.out' && cat '$keep/train-$t.out' && tail -n 1 '$keep/train-$t.out' \
        > '$keep/train-$t.json'"
  done
  "$py" -c "import json, sys
f, m = (json.load(open(p)) for p in sys.argv[1:3])
print(json.dumps({'farol': f, 'mlx_lm': m, 'ratio': round(f['tokens_per_s'] / m['tokens_per_s'], 3)}))" \
      "$keep/train-farol.json" "$keep/train-mlx-lm.json" > "$out/train.json" 2>> "$log" || status=1
fi

if [[ $steps == *bridge* ]]; then
  tmp=$(mktemp -d)
  step bridge env FAROL_BENCH_BRIDGE_MODEL="$folder" "$py" -m pytest \
      benchmarks/test_bridge_speed.py -k 8_concurrent --benchmark-enable \
      --bench-results "$tmp" -p no:cacheprovider -q -s
  cp "$(ls "$tmp"/*.json 2>/dev/null | head -1)" "$out/bridge.json" 2>/dev/null || status=1
  rm -rf "$tmp"
fi
echo "== done, status $status" >> "$log"
exit $status
