#!/usr/bin/env bash
# Idempotent set-up: installs every Debian and PyPI package the build and the tests need.
# Nothing is downloaded from anywhere but Debian's archive and PyPI. Safe to run repeatedly:
# it installs only what is missing.
set -euo pipefail

DEB_PACKAGES=(
  cmake ninja-build g++ pkg-config ccache git
  nlohmann-json3-dev libpcre2-dev libfmt-dev libcli11-dev libgtest-dev
  libboost-dev libxxhash-dev
)
# PyPI: CUTLASS/CuTe headers (--no-deps: only the headers are used), and the Python peers the
# tests compare against (Hugging Face tokenizers, jinja2) plus the OpenAI client for server tests.
PIP_NODEPS=(nvidia-cutlass==4.2.0.0)
PIP_PACKAGES=(tokenizers==0.23.3 jinja2==3.1.6 numpy safetensors==0.8.0 openai==3.57.0)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
pip_missing() {  # prints the requirements that are not installed at the pinned version
  "$PY" - "$@" <<'PYEOF'
import sys
from importlib import metadata
for req in sys.argv[1:]:
    name, _, version = req.partition("==")
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        print(req); continue
    if version and have != version:
        print(req)
PYEOF
}
need=$(pip_missing "${PIP_NODEPS[@]}")
if [ -n "$need" ]; then
  echo "setup: pip install --no-deps $need"
  "$PY" -m pip install -q --no-deps $need
fi
need=$(pip_missing "${PIP_PACKAGES[@]}")
if [ -n "$need" ]; then
  echo "setup: pip install $need"
  "$PY" -m pip install -q $need
fi
echo "setup: ok"
