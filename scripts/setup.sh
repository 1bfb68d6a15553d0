#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv that sees the system's packages (so an installed torch,
# e.g. a GPU user's own CUDA build, is reused), torch only when none is importable, then this project.
#
#   PYTHON=python3.11        interpreter to build the environment from (default: python3)
#   BLOCKCOPY_VENV=path      where the environment lives (default: .venv)
#   TORCH_VERSION=2.13.0     torch release installed when none is present
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${BLOCKCOPY_VENV:-.venv}
python=${PYTHON:-python3}
torch_version=${TORCH_VERSION:-2.13.0}

if [ ! -x "$venv/bin/python" ]; then
    echo "[setup] creating $venv (system site-packages visible, so an installed torch is reused)"
    "$python" -m venv --system-site-packages "$venv"
fi
pip=("$venv/bin/python" -m pip install --quiet)

if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    # Prefer a wheel already on this machine (pip's find-links; its dependencies then come from the usual
    # index); without a GPU take the CPU build, never the multi-GB CUDA one; with a GPU the default (CUDA) build.
    if "${pip[@]}" --no-deps --no-index "torch==$torch_version" 2>/dev/null; then
        "${pip[@]}" "torch==$torch_version"
        echo "[setup] installed torch $torch_version from a local wheel"
    elif command -v nvidia-smi >/dev/null 2>&1; then
        "${pip[@]}" "torch==$torch_version"
    else
        "${pip[@]}" "torch==$torch_version" --index-url https://download.pytorch.org/whl/cpu \
            --extra-index-url https://pypi.org/simple
    fi
fi

stamp="$venv/.blockcopy-installed"
digest=$(cat pyproject.toml setup.py csrc/* | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    echo "[setup] installing blockcopy-core and its dependencies into $venv"
    # Without build isolation, so that setup.py compiles the kernels against the torch installed above.
    "${pip[@]}" "setuptools>=70.1"
    "${pip[@]}" --no-build-isolation -e ".[test]"
    echo "$digest" > "$stamp"
fi
"$venv/bin/python" -c "import torch; print(f'[setup] ready: torch {torch.__version__}, cuda available: {torch.cuda.is_available()}')"
