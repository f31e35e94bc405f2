#!/usr/bin/env bash
# Set everything up (quietly, idempotent), then mount a share:
#   ./mount.sh DIR [syncfs mount options...]
# Without --tracker, syncfs starts a local tracker itself. Unmount with: fusermount -u DIR
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if (($# == 0)); then
    echo "usage: $0 DIR [--tracker HOST[:PORT]] [--listen ADDR[:PORT]] [--secret S] [--cache-dir D] [--foreground] [--config FILE]" >&2
    exit 2
fi

SETUP_QUIET=1 bash "$ROOT/scripts/setup.sh"

dir="$1"
shift
if [[ "$dir" != -* ]]; then
    mkdir -p -- "$dir"
fi
exec "$ROOT/.venv/bin/syncfs" mount "$dir" "$@"
