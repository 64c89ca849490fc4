#!/usr/bin/env bash
# Idempotent set-up shared by `make run` and `make test`: a local virtualenv holding the
# package (editable) and its test extras. Re-installs only when pyproject.toml changes.
# With --data it also fetches Fashion-MNIST from the machine's package manager when it can;
# otherwise the loader falls back to torchvision's download at run time.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${PRUNE_GYM_VENV:-.venv}
python=${PYTHON:-python3}
stamp="$venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"

if [ ! -x "$venv/bin/python" ]; then
    echo "bootstrap: creating virtualenv $venv"
    "$python" -m venv "$venv"
fi
if [ ! -e "$stamp" ]; then
    echo "bootstrap: installing prune-gym and its dependencies into $venv (torch is large: minutes on first run)"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e ".[test]"
    rm -f "$venv"/.installed-*
    touch "$stamp"
fi

if [ "${1:-}" = "--data" ]; then
    debian_dir=/usr/share/datasets/fashion-mnist
    if [ ! -e "$debian_dir/train-images-idx3-ubyte.gz" ] && command -v apt-get >/dev/null; then
        sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo -n"
        echo "bootstrap: installing Debian's dataset-fashion-mnist"
        $sudo apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
            || { $sudo apt-get update -q >/dev/null 2>&1 && $sudo apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; } \
            || echo "bootstrap: could not install dataset-fashion-mnist; torchvision will try to download it"
    fi
fi
