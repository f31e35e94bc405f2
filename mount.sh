#!/usr/bin/env bash
# Set everything up (idempotent), put `syncfs` on PATH, then mount a share:
#   ./mount.sh DIR [syncfs mount options...]
# Without --tracker TOKEN, syncfs starts a local tracker itself. Unmount with: syncfs stop DIR
#
# PATH: links .venv/bin/syncfs into $SYNCFS_BIN_DIR (default /usr/local/bin for root,
# ~/.local/bin otherwise) unless a `syncfs` on PATH is this checkout's already; an existing
# file of another name there is left alone. SYNCFS_BIN_DIR= (empty) links nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
    cat <<EOF
usage: $0 DIR [--tracker TOKEN] [--listen ADDR[:PORT]] [--on-demand] [--cache-dir D]
                 [--foreground] [--config FILE] [other syncfs mount options]
Sets up what syncfs needs (the first time: system packages and a venv, about a minute),
puts the syncfs command on PATH, then mounts a share at DIR (made if missing).
TOKEN is a share's join token (syncfs tracker --print-invite); without --tracker a tracker
runs on this machine. All options: syncfs mount --help. Unmount: syncfs stop DIR
EOF
}

if (($# == 0)); then
    usage >&2
    exit 2
fi
if [[ "$1" == -h || "$1" == --help ]]; then
    usage
    exit 0
fi

SETUP_QUIET=1 bash "$ROOT/scripts/setup.sh"

say() { echo "mount.sh: $*" >&2; }

# Make `syncfs ...` work as the README writes it.
link_syncfs() {
    local want="$ROOT/.venv/bin/syncfs" dir link found
    if [[ -n "${SYNCFS_BIN_DIR+set}" ]]; then
        dir="$SYNCFS_BIN_DIR"
    elif [[ "$(id -u)" == 0 ]]; then
        dir=/usr/local/bin
    else
        dir="$HOME/.local/bin"
    fi
    [[ -n "$dir" ]] || return 0
    found="$(command -v syncfs 2>/dev/null || true)"
    if [[ -n "$found" && "$(readlink -f -- "$found")" == "$(readlink -f -- "$want")" ]]; then
        return 0  # on PATH already
    fi
    link="$dir/syncfs"
    if [[ -L "$link" && "$(readlink -f -- "$link")" == "$(readlink -f -- "$want")" ]]; then
        :  # linked before, but the directory is not on PATH
    elif [[ -e "$link" || -L "$link" ]]; then
        say "$link is another syncfs (-> $(readlink -f -- "$link")): left alone; this checkout's is $want"
        return 0
    elif ! { mkdir -p -- "$dir" && ln -s -- "$want" "$link"; } 2>/dev/null; then
        say "could not link $link (no permission?): run syncfs as $want, or link it yourself"
        return 0
    else
        say "linked $link -> $want, so that 'syncfs ...' works as a command"
    fi
    case ":$PATH:" in
        *":$dir:"*) ;;
        *) say "$dir is not on your PATH yet: run 'export PATH=\"$dir:\$PATH\"' (a new login shell adds ~/.local/bin by itself on Debian and Ubuntu)" ;;
    esac
}
link_syncfs

dir="$1"
shift
if [[ "$dir" != -* ]] && ! mkdir -p -- "$dir" 2>/dev/null; then
    # a dead mount (its syncfs process was killed) cannot even be stat'ed: syncfs mount
    # cleans it up; anything else, mkdir says what is wrong
    why="$(LC_ALL=C stat -- "$dir" 2>&1 >/dev/null || true)"
    if [[ "$why" != *"Transport endpoint is not connected"* ]]; then
        mkdir -p -- "$dir"
    fi
fi
exec "$ROOT/.venv/bin/syncfs" mount "$dir" "$@"
