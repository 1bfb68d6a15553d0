#!/usr/bin/env bash
# The checks only a GPU can make, in one go: the CUDA kernels' tests, the engine against the static network on
# the GPU (float16, with the GPU time per kernel of a static and a sparse frame), and the speed presets at
# 1024x2048 (static / random / rl 0.5, RN18 and RN50, float16, two clips side by side, each stage timed) compared
# with static. Needs torch with CUDA and the test extras (pytest, hypothesis); runs without Ray (--executor
# inline). A failed step is reported and the later ones still run; the exit status is 1 if any failed.
# Usage: bash scripts/gpu_check.sh [REPORT_ROOT]  (default runs/gpu_check)
set -uo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-${BLOCKCOPY_VENV:-.venv}/bin/python}"
root="${1:-runs/gpu_check}"
"$py" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'error: no CUDA device: this check needs a GPU')" \
  || exit 1
failed=()
step() {  # title, then the command; prints the step's wall time and keeps going when it fails
  local title=$1 start=$SECONDS; shift
  echo "== $title"
  "$@" || failed+=("$title")
  echo "   ($((SECONDS - start)) s)"
}
step "CUDA kernels against the PyTorch twins; frames normalised on the GPU" \
  "$py" -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_engine_backends.py \
  tests/test_evaluate.py::test_prepare_on_a_gpu_normalises_there_as_the_cpu_does
step "engine against the static network, float16, with the GPU time per kernel" \
  "$py" -m jobs.benchmark --suite engine --device cuda --half --configs 1024x2048@128 512x1024@64 --frames 5 --ops 8
preset() {  # name, then the job's flags
  local name=$1; shift
  step "preset $name" "$py" -m jobs.evaluate --executor inline --res 1024 --num-clips-eval 8 --single-clip-loop \
    --fast --half --batch-size 2 --timings --report-dir "$root/$name" "$@"
}
rl=(--block-policy rl_semseg --block-target 0.5 --block-size 128 --num-clips-warmup 40)
rn50=(--model-backbone resnet50 --random-weights)  # no RN50 checkpoint ships: speed does not depend on weights
preset rn18_static --block-policy static
preset rn18_random --block-policy random --block-size 128
preset rn18_rl05 "${rl[@]}"
preset rn50_static "${rn50[@]}" --block-policy static
preset rn50_random "${rn50[@]}" --block-policy random --block-size 128
preset rn50_rl05 "${rn50[@]}" "${rl[@]}"
BLOCKCOPY_KERNELS=twin preset rn18_random_twins --block-policy random --block-size 128
step "RN18 against static" "$py" -m jobs.report --baseline "$root/rn18_static" "$root"/rn18_*
step "RN50 against static" "$py" -m jobs.report --baseline "$root/rn50_static" "$root"/rn50_*
if ((${#failed[@]})); then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
