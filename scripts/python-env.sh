# Sourced by ./setup.sh and ./test.sh: which Python the grader lives in, and how to install system packages.
# `use_python make` sets PY to the active virtual environment's python3, else ./.venv's (made here when missing);
# `use_python find` does the same without making anything, falling back to python3. A system Python that forbids
# pip installs (PEP 668: Debian 12+, Ubuntu 23.04+) is never installed into.

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() { as_root apt-get update -qq && as_root apt-get install -y --no-install-recommends "$@"; }
in_venv() { python3 -c 'import sys; sys.exit(0 if sys.prefix != sys.base_prefix else 1)'; }

use_python() {
    if in_venv; then
        PY=python3
    elif [ -x .venv/bin/python ]; then
        PY=.venv/bin/python
    elif [ "$1" = make ]; then
        echo "==> making the virtual environment .venv"
        if ! python3 -m venv .venv 2>/dev/null; then
            rm -rf .venv
            local version
            version=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
            echo "==> installing python${version}-venv (this Python has no venv module)"
            apt_install "python${version}-venv"
            python3 -m venv .venv
        fi
        PY=.venv/bin/python
    else
        PY=python3
    fi
}
