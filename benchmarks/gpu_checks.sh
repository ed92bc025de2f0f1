#!/usr/bin/env bash
# The GPU rows of docs/benchmarks.md in one command on a lent GPU machine (the `device` tool),
# in about 8 minutes of its time. Its image has torch, Lightning, scikit-learn and the rest,
# but not Hydra, kornia and a few small packages: they travel as wheels in .whl/ (ignored by git).
#
#   bash benchmarks/gpu_checks.sh wheels   # here, with PyPI: the wheels for the device's Python 3.12
#   device run, carry [".whl"]:  bash benchmarks/gpu_checks.sh run   # there: one file per check in $OUT
#
# Each check has its own time limit, so one that hangs leaves the others' output.
set -uo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(hydra-core==1.3.8 omegaconf==2.3.1 kornia==0.9.0 kornia_rs==0.2.0 orjson==3.13.0
          crc32c==2.9.post0 zlib-ng==1.1.0)

wheels() {
    mkdir -p .whl
    grep -qx "/.whl/" .git/info/exclude || echo "/.whl/" >> .git/info/exclude
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl "${PACKAGES[@]}"
    # omegaconf's parser runtime is published as a source archive only: built here (pure Python)
    python3 -m pip wheel --quiet --no-deps -w .whl antlr4-python3-runtime==4.9.3
    ls .whl
}

check() {  # check NAME SECONDS COMMAND...: COMMAND's output to $OUT/NAME.txt and to the log
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*"
    timeout "$limit" "$@" 2>&1 | grep -v -i "warning" | tee "$OUT/$name.txt"
    echo "== $name: exit ${PIPESTATUS[0]}"
}

run() {
    OUT=${OUT:-gpu_checks}
    mkdir -p "$OUT"
    python3 -m pip install --quiet --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH="$PWD/src:/tmp/site" PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv \
        | tee "$OUT/gpu.txt"
    python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/gpu.txt"
    # host synchronisations per training step (none expected; tests/test_host_sync.py on CPU)
    check cuda_syncs 90 python3 benchmarks/cuda_syncs.py
    # the numerical step at the paper's size: fp32, TF32, bf16, the reference and the blocked loss
    check train_step 120 python3 benchmarks/train_step.py --device cuda --steps 20
    # the same step in the real training loop (Lightning), and the scenes_gpu loop (ResNet-18,
    # 128 px, bf16, 4 loader workers) on a smaller generated set
    check loop_numerical 120 python3 benchmarks/throughput.py --steps 200 --warmup 20 \
        experiment=numerical_paper
    check loop_numerical_no_workers 120 python3 benchmarks/throughput.py --steps 200 \
        --warmup 20 experiment=numerical_paper data.num_workers=0
    check loop_scenes_gpu 200 python3 benchmarks/throughput.py --steps 100 --warmup 20 \
        experiment=scenes_gpu data.root=/tmp/scenes_gpu data.generate.videos=1000
    # ResNet-18 on synthetic batches at the scenes_gpu and ImageNet sizes
    check resnet18 90 python3 benchmarks/image_encoders.py --device cuda --bf16 \
        --backbones resnet --sizes 128 224 --batch 256 --steps 10 --warmup 3
    # the kernel-ridge readouts at the paper's readout size, all samples
    check kernel_ridge 150 python3 benchmarks/kernel_ridge.py --device cuda --n 20480 \
        --max-samples 20480 --old-tasks 0
}

case "${1:-}" in
    wheels) wheels ;;
    run) run ;;
    *) echo "usage: bash benchmarks/gpu_checks.sh wheels|run" >&2; exit 2 ;;
esac
