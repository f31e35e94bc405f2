#!/usr/bin/env bash
# Install what syncfs needs to build, mount and run its tests, then create .venv.
#
# Idempotent: apt runs only when a package is missing, pip only when .venv is new or
# pyproject.toml changed since the last successful install. Meant for root on Debian;
# as another user it uses sudo for apt when something is missing.
#
# Environment: PYTHON (interpreter for the venv, default python3), SETUP_QUIET=1 (say
# nothing when there is nothing to do; work that takes time is still announced, with
# progress, and errors are still shown).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { [[ "${SETUP_QUIET:-}" == 1 ]] || echo "setup: $*"; }  # nothing to do
step() { echo "setup: $*"; worked=1; }                          # work that takes a while
worked=0
die() { echo "setup: error: $*" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
SUDO=()
if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi
fi

# fuse3: fusermount3 and /dev/fuse users; libfuse3-dev + pkg-config + gcc: pyfuse3 builds
# from source; the rest are programs the end-to-end tests drive in the mount; systemd:
# systemd-analyze verifies the unit `syncfs service` writes (a Debian container image may lack it).
PACKAGES=(fuse3 libfuse3-dev pkg-config gcc libc6-dev rsync git vim-nox sqlite3 attr tmux psmisc systemd)

PYTHON="${PYTHON:-python3}"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    # a bare Debian: use its own python3 (3.11 on bookworm)
    PACKAGES+=(python3 python3-venv python3-dev)
    PYTHON=python3
elif ! "$PYTHON" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null; then
    # pyfuse3 compiles a C extension; a pyenv python ships its headers, Debian's needs -dev
    PACKAGES+=(python3-dev)
fi
if command -v "$PYTHON" >/dev/null 2>&1 && ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
    PACKAGES+=(python3-venv)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    step "installing ${missing[*]} (apt-get; this takes a minute)"
    if [[ "$(id -u)" != 0 && ${#SUDO[@]} == 0 ]]; then
        die "missing packages (${missing[*]}) and not root: install them and run again"
    fi
    "${SUDO[@]}" apt-get update -qq </dev/null >/dev/null || die "apt-get update failed"
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null \
        || die "apt-get install ${missing[*]} failed"
else
    say "system packages present"
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is $("$PYTHON" -V 2>&1); syncfs needs Python >= 3.11 (set PYTHON=...)"

if [[ ! -e /dev/fuse ]]; then
    step "/dev/fuse missing: trying modprobe fuse"
    "${SUDO[@]}" modprobe fuse 2>/dev/null || true
    [[ -e /dev/fuse ]] || echo "setup: warning: /dev/fuse is missing: mounts (and the end-to-end tests) cannot run" >&2
fi

if [[ -L .venv ]]; then
    # someone linked a venv of their own here: use it, never install into it
    say ".venv is a link to $(readlink .venv): leaving it alone"
    .venv/bin/python -c 'import trio, pyfuse3, msgpack, blake3, pytest' 2>/dev/null \
        || echo "setup: warning: the linked .venv lacks dependencies: pip install -e '.[test]' in it" >&2
    exit 0
fi

if [[ ! -x .venv/bin/python ]]; then
    step "creating .venv with $("$PYTHON" -V 2>&1)"
    rm -rf .venv
    "$PYTHON" -m venv .venv
fi

STAMP=.venv/.syncfs-setup-stamp
want="$( (sha256sum pyproject.toml; .venv/bin/python -V) 2>&1 | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    say "python dependencies up to date"
else
    step "pip install -e '.[test]' into .venv (the first time pyfuse3 compiles: about a minute)"
    rm -f "$STAMP"
    log="$(mktemp)"
    # progress: pip's own lines about each package, and a tick every 10 s while one builds
    # (short sleeps: a killed ticker leaves no sleep behind holding the output open)
    start=$SECONDS
    (while sleep 1; do
        if (((SECONDS - start) % 10 == 0)); then echo "setup:   ... still working ($((SECONDS - start)) s)"; fi
    done) &
    ticker=$!
    trap 'kill "$ticker" 2>/dev/null || true' EXIT
    set +e
    .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off -e '.[test]' 2>&1 \
        | tee "$log" \
        | { grep --line-buffered -E '^(Collecting|Building wheel for|Successfully installed)' || true; } \
        | sed -u -e 's/ (from .*//' -e 's/^Successfully installed .*/installed/' -e 's/^/setup:   /'
    status=${PIPESTATUS[0]}
    set -e
    kill "$ticker" 2>/dev/null || true
    trap - EXIT
    if ((status != 0)); then
        cat "$log" >&2
        rm -f "$log"
        die "pip install failed"
    fi
    rm -f "$log"
    echo "$want" >"$STAMP"
fi
if ((worked)); then step "ready"; else say "ready"; fi
