"""syncfs as a system tool: ``mount -t fuse.syncfs`` and an fstab line mount a working
share and ``umount`` unmounts it; the commands of the unit ``syncfs service`` writes mount,
bring a crashed mount back, and unmount.

mount(8) runs ``mount.fuse3``, which runs ``syncfs`` through /bin/sh without mount's PATH:
the ``syncfs_on_mount_path`` fixture puts a ``syncfs`` in /usr/local/bin for the test unless
one is there (this checkout's code runs either way: PYTHONPATH, which mount keeps, points here).
"""

import contextlib
import errno
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Cluster, force_unmount, is_mounted, log_problems, mount_info, wait_for

from syncfs.service import unit_text

pytestmark = pytest.mark.timeout(120)

SH_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IN_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")
ADDR = "127.0.0.14"  # the harness's peer 3: the tests here start one harness peer (p1, .12)


@pytest.fixture
def syncfs_on_mount_path() -> Iterator[None]:
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("mount -t fuse.syncfs needs root under CI", pytrace=False)
        pytest.skip("mount(8) of a fuse.syncfs file system needs root")
    import shutil

    if shutil.which("syncfs", path=SH_DEFAULT_PATH):
        yield
        return
    link = Path("/usr/local/bin/syncfs")
    script = f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m syncfs "$@"\n'
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(link, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755)
    except FileExistsError:  # another run made one just now
        yield
        return
    with os.fdopen(fd, "w") as f:
        f.write(script)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if link.read_text() == script:
                link.unlink()


def _pids_serving(mnt: Path) -> list[int]:
    """Processes whose command line names ``mnt`` (the mount's, wherever it came from)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if str(mnt).encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                    out.append(int(entry.name))
    return out


@contextlib.contextmanager
def cleaned_up(mnt: Path) -> Iterator[None]:
    """Whatever the test leaves mounted at ``mnt`` or running for it goes, even after a failure."""
    try:
        yield
    finally:
        for pid in _pids_serving(mnt):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        force_unmount(mnt)
        wait_for(lambda: not _pids_serving(mnt), timeout=10, what=f"the processes of {mnt} to end")


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def _check_share(cluster: Cluster, mnt: Path, tag: str) -> None:
    """A file written in ``mnt`` reaches peer p1 and one written on p1 reaches ``mnt``."""
    p1 = cluster.peers[0]
    (mnt / f"{tag}-here.txt").write_text(f"{tag} from the mount")
    (p1.mnt / f"{tag}-p1.txt").write_text(f"{tag} from p1")
    wait_for(lambda: (p1.mnt / f"{tag}-here.txt").read_text() == f"{tag} from the mount", what="mount -> p1")
    wait_for(lambda: (mnt / f"{tag}-p1.txt").read_text() == f"{tag} from p1", what="p1 -> mount")


def _unmount_and_wait(mnt: Path, pid: int) -> None:
    done = _run("umount", str(mnt))
    assert done.returncode == 0, done.stderr
    assert not is_mounted(mnt)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout=15, what="the mount's process to exit")


def _no_log_problems(log: Path) -> None:
    assert log_problems(log.read_text()) == []


def test_mount_t_fuse_syncfs_mounts_a_working_share_and_umount_unmounts(cluster, tmp_path, syncfs_on_mount_path):
    cluster.add_peer()
    mnt = tmp_path / "share"
    mnt.mkdir()
    log = tmp_path / "share.log"
    opts = f"rw,noatime,nofail,_netdev,listen={ADDR},cache_dir={tmp_path / 'cache'},log_file={log},log_level=DEBUG"
    with cleaned_up(mnt):
        done = _run("mount", "-t", "fuse.syncfs", cluster.tracker.token, str(mnt), "-o", opts)
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        pid = int(re.search(r"\(pid (\d+)", done.stdout).group(1))
        info = mount_info(mnt)
        assert info is not None and info[2] == "fuse.syncfs"
        _check_share(cluster, mnt, "t")
        _unmount_and_wait(mnt, pid)
        assert list(mnt.iterdir()) == []
    _no_log_problems(log)


def test_an_fstab_line_mounts_with_mount_fstab(cluster, tmp_path, syncfs_on_mount_path):
    cluster.add_peer()
    mnt = tmp_path / "my share"  # fstab writes the space as \040
    mnt.mkdir()
    log = tmp_path / "share.log"
    fstab = tmp_path / "fstab"
    opts = (f"listen={ADDR},cache_dir={tmp_path / 'cache'},log_file={log},"
            "noauto,nofail,_netdev,x-systemd.after=network-online.target,defaults")
    fstab.write_text(f"# a line as it would be in /etc/fstab\n"
                     f"{cluster.tracker.token}  {str(mnt).replace(' ', chr(92) + '040')}  fuse.syncfs  {opts}  0  0\n")
    with cleaned_up(mnt):
        done = _run("mount", "--fstab", str(fstab), str(mnt))
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        pid = int(re.search(r"\(pid (\d+)", done.stdout).group(1))
        _check_share(cluster, mnt, "fstab")
        _unmount_and_wait(mnt, pid)
    _no_log_problems(log)


def _exec(text: str, key: str) -> list[str]:
    """The command of ``key=`` in a unit, split as systemd does for our units (see test_service)."""
    (line,) = [raw.partition("=")[2] for raw in text.splitlines() if raw.startswith(f"{key}=")]
    return shlex.split(line.removeprefix("-").replace("%%", "%").replace("$$", "$"))


def test_the_units_commands_mount_bring_a_crash_back_and_unmount(cluster, tmp_path):
    """What systemd does with the unit: ExecStartPre, ExecStart; after a crash (kill -9, a dead
    mount left) Restart=on-failure runs both again; then ExecStop unmounts and the process exits."""
    cluster.add_peer()
    mnt = tmp_path / "unit share"
    mnt.mkdir()
    log = tmp_path / "unit.log"
    text = unit_text(str(mnt), [sys.executable, "-m", "syncfs"],
                     ["--tracker", cluster.tracker.token, "--listen", ADDR, "--cache-dir", str(tmp_path / "cache"),
                      "--log-file", str(log)], system=False)
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        assert subprocess.run(_exec(text, "ExecStartPre"), timeout=30).returncode == 0
        assert not is_mounted(mnt)  # nothing, or only a dead mount, was there: now nothing is
        proc = subprocess.Popen(_exec(text, "ExecStart"), stdin=subprocess.DEVNULL, start_new_session=True)
        procs.append(proc)
        wait_for(lambda: proc.poll() is not None or (is_mounted(mnt) and os.path.ismount(mnt)),
                 what="the unit's mount", timeout=30)
        assert proc.poll() is None, f"ExecStart exited with {proc.returncode}"
        return proc

    with cleaned_up(mnt):
        try:
            proc = start()
            _check_share(cluster, mnt, "first")
            # a start while the mount is live leaves it alone (systemd would then fail ExecStart)
            subprocess.run(_exec(text, "ExecStartPre"), timeout=30)
            assert os.path.ismount(mnt) and (mnt / "first-p1.txt").exists()
            proc.kill()  # a crash: the mount stays, dead
            proc.wait(timeout=10)
            assert is_mounted(mnt)
            with pytest.raises(OSError) as dead:
                os.statvfs(mnt)
            assert dead.value.errno == errno.ENOTCONN
            proc = start()  # what Restart=on-failure does
            _check_share(cluster, mnt, "again")
            assert subprocess.run(_exec(text, "ExecStop"), timeout=30).returncode == 0
            assert proc.wait(timeout=15) == 0
            assert not is_mounted(mnt)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(timeout=10)
    _no_log_problems(log)
