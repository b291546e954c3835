#!/usr/bin/env bash
# GPU checks of the engines in one call, for a machine with an NVIDIA GPU where nothing is
# pip-installed (torch + CUDA, onnxruntime, pytest present; no tensorrt; no network).
# Run from the repository root:   OUT=/some/dir bash benchmarks/gpu_check.sh
# Writes to "$OUT": env.txt, nvidia-smi.txt, gpu-tests.txt (+ junit xml), engines-gpu.{txt,json},
# streams-gpu.{txt,json} (how many batched 200 Hz streams fit under 1 ms p99), cpu-tests.txt,
# latency-gpu-1.{txt,json} (serve on CUDA, 1 stream at 240 Hz, beside the bare relay) and
# latency-gpu-256.{txt,json} (256 streams at 200 Hz through the one batched loop).
# serve's defaults include the bundled model's mirror average (2 rows per frame: 512 rows at
# 256 streams); latency.py --no-mirror measures without it.
# Every step has its own timeout; all together <= 8 minutes (issue 10's budget).
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
timeout 120 $PY -m pytest -q -rs -m gpu tests/test_engines.py -p no:cacheprovider \
    --junitxml "$OUT/gpu-tests.xml" > "$OUT/gpu-tests.txt" 2>&1
echo "gpu tests rc=$?" | tee -a "$OUT/gpu-tests.txt"
tail -n 15 "$OUT/gpu-tests.txt"

# 2. the engines benchmark on the GPU: 1 and 256 concurrent streams, >= 10k steps each
timeout 100 $PY benchmarks/engines.py --device cuda --streams 1 256 --steps 10000 \
    --json "$OUT/engines-gpu.json" > "$OUT/engines-gpu.txt" 2>&1
echo "engines benchmark rc=$?" | tee -a "$OUT/engines-gpu.txt"
grep -v -i warn "$OUT/engines-gpu.txt" | tail -n 20

# 3. stream capacity: the CUDA-graph step for many batched streams (p99 must stay <= 1 ms)
timeout 40 $PY benchmarks/engines.py --device cuda --backends cudagraph \
    --streams 256 512 1024 2048 --steps 3000 --warmup 200 \
    --json "$OUT/streams-gpu.json" > "$OUT/streams-gpu.txt" 2>&1
echo "streams benchmark rc=$?" | tee -a "$OUT/streams-gpu.txt"
grep -v -i warn "$OUT/streams-gpu.txt" | tail -n 8

# 4. the CPU engine tests on that machine too (fresh machine: export onnx/aoti must work)
timeout 45 $PY -m pytest -q -rs tests/test_engines.py -m "not gpu" -p no:cacheprovider \
    > "$OUT/cpu-tests.txt" 2>&1
echo "cpu engine tests rc=$?" | tee -a "$OUT/cpu-tests.txt"
tail -n 3 "$OUT/cpu-tests.txt"

# 5. the live chain on CUDA (serve at its defaults with --device cuda; the relay is the floor):
#    1 stream at 240 Hz (targets: e2e p99 <= 1 ms, step p99 <= 0.15 ms), then 256 streams at
#    200 Hz (targets: 0 dropped, e2e p99 <= 2 ms)
timeout 70 $PY benchmarks/latency.py --device cuda --source zmq --rate 240 --streams 1 \
    --seconds 10 --warmup 3 --step-steps 3000 --json "$OUT/latency-gpu-1.json" \
    > "$OUT/latency-gpu-1.txt" 2>&1
echo "latency 1 stream rc=$?" | tee -a "$OUT/latency-gpu-1.txt"
tail -n 16 "$OUT/latency-gpu-1.txt"
timeout 95 $PY benchmarks/latency.py --device cuda --source zmq --rate 200 --streams 256 \
    --seconds 10 --warmup 5 --step-steps 0 --json "$OUT/latency-gpu-256.json" \
    > "$OUT/latency-gpu-256.txt" 2>&1
echo "latency 256 streams rc=$?" | tee -a "$OUT/latency-gpu-256.txt"
tail -n 16 "$OUT/latency-gpu-256.txt"
