#!/usr/bin/env bash
# GPU check: one table (matmul peak, T5-base training vs keras-hub, mirrored
# 2 vs 1 device, decoding vs keras-hub, export run on the GPU, int8 weights
# vs bf16 decoding) from one run of under 8 minutes on one H200. Rows and
# options: benchmarks/gpu_check.py.
#
#   benchmarks/gpu_check.sh [--out FILE] [--parts abcdef] [--work-dir DIR]
#   benchmarks/gpu_check.sh --cpu-smoke      # every part at toy size, CPU
#
# Install, on a machine with network access (keras-hub is the peer; a GPU
# needs TensorFlow's CUDA build):
#   pip install -e ".[test]" "tensorflow[and-cuda]>=2.21,<2.22"
# Without network: when `import keras_llm` fails, this script runs
#   pip install -q --no-deps -e .
# itself (the dependencies must be installed already). Nothing is downloaded
# at run time: configs, random weights and vocabularies are made locally.
#
# GPU_CHECK_TIMEOUT (seconds) bounds the whole run: default 480 (1260 with
# --cpu-smoke); the parts stop at 450 s (1200), so the table comes first.
set -euo pipefail
cd "$(dirname "$0")/.."

date -u "+%Y-%m-%d %H:%M:%S UTC"
nvidia-smi -L 2>/dev/null || echo "nvidia-smi: no NVIDIA driver found"
if ! python -c "import keras_llm" 2>/dev/null; then
  echo "keras_llm is not importable: pip install -q --no-deps -e ."
  pip install -q --no-deps -e .
fi
python - <<'EOF'
import importlib.metadata as metadata

for name in ("tensorflow", "keras", "keras-hub", "keras_llm"):
    try:
        print(f"{name} {metadata.version(name)}")
    except metadata.PackageNotFoundError:
        print(f"{name} not installed")
EOF
limit=480
for arg in "$@"; do
  if [[ "$arg" == --cpu-smoke ]]; then limit=1260; fi
done
exec timeout --kill-after=15 "${GPU_CHECK_TIMEOUT:-$limit}" \
  python benchmarks/gpu_check.py "$@"
