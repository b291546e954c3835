#!/usr/bin/env bash
# GPU checks of the engines in one call, for a machine with an NVIDIA GPU where nothing is
# pip-installed (torch + CUDA, onnxruntime, pytest present; no tensorrt; no network).
# Run from the repository root:   OUT=/some/dir bash benchmarks/gpu_check.sh
# Writes to "$OUT": env.txt, nvidia-smi.txt, gpu-tests.txt (+ junit xml), engines-gpu.{txt,json},
# streams-gpu.{txt,json} (how many batched 200 Hz streams fit under 1 ms p99), cpu-tests.txt.
# Every step has its own timeout; all together <= 9.5 minutes (the device tool's limit is 10).
set -u
OUT=${OUT:-/tmp/hdys-gpu-check}
mkdir -p "$OUT"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python}
cd "$(dirname "$0")/.."

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
$PY - > "$OUT/env.txt" 2>&1 <<'PYEOF'
import torch, platform
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))
for m in ("onnx", "onnxruntime", "tensorrt", "safetensors", "pytest"):
    try:
        mod = __import__(m)
        extra = mod.get_available_providers() if m == "onnxruntime" else ""
        print(m, getattr(mod, "__version__", "?"), extra)
    except Exception as exc:
        print(m, "MISSING", type(exc).__name__, exc)
PYEOF
cat "$OUT/env.txt"

# 1. GPU parity tests (torch CUDA, CUDA graph, onnxruntime CUDA EP, AOTInductor CUDA, TensorRT)
timeout 200 $PY -m pytest -q -rs -m gpu tests/test_engines.py -p no:cacheprovider \
    --junitxml "$OUT/gpu-tests.xml" > "$OUT/gpu-tests.txt" 2>&1
echo "gpu tests rc=$?" | tee -a "$OUT/gpu-tests.txt"
tail -n 15 "$OUT/gpu-tests.txt"

# 2. the engines benchmark on the GPU: 1 and 256 concurrent streams, >= 10k steps each
timeout 240 $PY benchmarks/engines.py --device cuda --streams 1 256 --steps 10000 \
    --json "$OUT/engines-gpu.json" > "$OUT/engines-gpu.txt" 2>&1
echo "engines benchmark rc=$?" | tee -a "$OUT/engines-gpu.txt"
grep -v -i warn "$OUT/engines-gpu.txt" | tail -n 20

# 3. stream capacity: the CUDA-graph step for many batched streams (p99 must stay <= 1 ms)
timeout 60 $PY benchmarks/engines.py --device cuda --backends cudagraph \
    --streams 256 512 1024 2048 --steps 3000 --warmup 200 \
    --json "$OUT/streams-gpu.json" > "$OUT/streams-gpu.txt" 2>&1
echo "streams benchmark rc=$?" | tee -a "$OUT/streams-gpu.txt"
grep -v -i warn "$OUT/streams-gpu.txt" | tail -n 8

# 4. the CPU engine tests on that machine too (fresh machine: export onnx/aoti must work)
timeout 60 $PY -m pytest -q -rs tests/test_engines.py -m "not gpu" -p no:cacheprovider \
    > "$OUT/cpu-tests.txt" 2>&1
echo "cpu engine tests rc=$?" | tee -a "$OUT/cpu-tests.txt"
tail -n 3 "$OUT/cpu-tests.txt"
