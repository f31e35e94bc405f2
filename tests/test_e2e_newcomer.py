"""Issue 13, finding 7: what a newcomer meets first. ``syncfs status`` piped is never cut;
``syncfs mount --help`` shows DIR as required and describes every option; the usage texts
of mount.sh and the README offer only what ``syncfs mount`` takes; mount.sh puts
``syncfs`` on PATH and says so."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest
from bgmount import BackgroundMount
from harness import ROOT, PeerProc, syncfs_cli

pytestmark = pytest.mark.timeout(120)

LABELS = ("mount", "tracker", "peers", "files", "outbox", "transfers", "pinned", "conflicts", "error", "log")


def test_status_piped_is_never_cut(cluster, tmp_path):
    deep = tmp_path / ("a-directory-with-a-rather-long-name-" * 3) / "and-one-more-level"
    peer = PeerProc(1, deep, cluster.tracker)
    cluster.peers.append(peer)
    cluster.logs.procs.append(peer)
    peer.start()
    assert len(f"mount      {peer.mnt}") > 120
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    done = subprocess.run(f"{shlex.quote(sys.executable)} -m syncfs status {shlex.quote(str(peer.mnt))} | cat",
                          shell=True, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith(f"mount      {peer.mnt}  (peer ") for line in lines), done.stdout
    assert f"log        {peer.log_file}" in lines, done.stdout
    for line in lines:  # no line is a piece of a wrapped one
        assert line.split(" ", 1)[0] in LABELS or line.startswith("  "), f"cut line {line!r} in:\n{done.stdout}"


def _option_help(text: str, option: str) -> str:
    """The help of ``option`` in argparse's --help output: its line and its continuation lines."""
    found = re.search(rf"^  {re.escape(option)}\b.*(?:\n {{6,}}\S.*)*", text, re.M)
    assert found, f"{option} not in:\n{text}"
    return found.group(0)


def test_mount_help_shows_dir_required_and_describes_every_option():
    done = syncfs_cli("mount", "--help")
    assert done.returncode == 0
    usage = done.stdout.split("\n\n")[0]
    assert re.search(r"syncfs mount DIR\b", usage), usage
    assert "[DIR]" not in usage and "[directory]" not in usage, usage
    for option in re.findall(r"^  (--[a-z-]+)", done.stdout, re.M):
        described = _option_help(done.stdout, option)
        words = re.sub(r"^  --[a-z-]+( [A-Z_\[\]:]+)?", "", described).split()
        assert len(words) >= 3, f"{option} is not described: {described!r}"
    assert "DEBUG" in _option_help(done.stdout, "--log-level")


def test_usage_texts_offer_only_what_syncfs_mount_takes():
    helptext = syncfs_cli("mount", "--help").stdout
    takes = set(re.findall(r"--[a-z-]+", helptext))
    shown = subprocess.run([str(ROOT / "mount.sh")], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 2 and "usage" in shown.stderr
    assert "--tracker TOKEN" in shown.stderr and "HOST[:PORT]" not in shown.stderr, shown.stderr
    usage = re.match(r"usage:.*(?:\n\s+\S.*)*", shown.stderr)  # the usage line and its continuations
    assert usage, shown.stderr
    assert set(re.findall(r"--[a-z-]+", usage.group(0))) <= takes, shown.stderr
    readme = (ROOT / "README.md").read_text()
    usage_block = readme.split("## Usage", 1)[1].split("```")[1]
    mount_lines = usage_block.split("syncfs mount", 1)[1].split("\nsyncfs ", 1)[0]
    assert set(re.findall(r"--[a-z-]+", mount_lines)) <= takes, mount_lines


def test_mount_sh_links_syncfs_onto_path_and_says_so(cluster, tmp_path):
    if not (ROOT / ".venv" / "bin" / "syncfs").exists():
        pytest.skip("mount.sh runs .venv/bin/syncfs: run scripts/setup.sh first")
    bindir = tmp_path / "bin"
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if not os.path.exists(os.path.join(p, "syncfs")))
    env = {**os.environ, "SYNCFS_BIN_DIR": str(bindir), "PATH": path}
    with BackgroundMount(tmp_path / "bg", cluster.tracker.token) as bg:
        bg.mnt.rmdir()  # mount.sh makes it
        done = bg.note(subprocess.run([str(ROOT / "mount.sh"), *bg.args[1:]], capture_output=True, text=True,
                                      timeout=120, env=env))
        assert done.returncode == 0, done.stdout + done.stderr
        link = bindir / "syncfs"
        assert link.resolve() == (ROOT / ".venv" / "bin" / "syncfs").resolve()
        assert f"linked {link}" in done.stderr and "not on your PATH" in done.stderr, done.stderr
        # the README's commands now work as written, from anywhere
        env["PATH"] = f"{bindir}{os.pathsep}{path}"
        st = subprocess.run(["syncfs", "status", str(bg.mnt)], capture_output=True, text=True, timeout=60,
                            env=env, cwd=tmp_path)
        assert st.returncode == 0 and "mount " in st.stdout, st.stdout + st.stderr
        # a second run is quiet about PATH: syncfs is on it
        assert subprocess.run(["syncfs", "stop", str(bg.mnt)], env=env, capture_output=True, timeout=60).returncode == 0
        again = bg.note(subprocess.run([str(ROOT / "mount.sh"), *bg.args[1:]], capture_output=True, text=True,
                                       timeout=120, env=env))
        assert again.returncode == 0, again.stdout + again.stderr
        assert "linked" not in again.stderr and "PATH" not in again.stderr, again.stderr
