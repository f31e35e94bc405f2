"""Floors for bench/transfer.py: what the least code that keeps syncfs's rules costs here.

A target stated against a plain TCP copy or the raw disk says nothing about how much of
the gap the design itself demands. These floors measure, in the same run and on the same
bytes, only what every syncfs transfer must do, with none of syncfs's own code:

- ``TlsFloor.copy``: the bytes over TLS 1.3 (the same contexts and certificates as peer
  links), each 1 MiB piece hashed with blake3 by the sender (a holder checks what it read)
  and by the receiver (which writes it to a file): item 1's floor.
- ``TlsFloor.fetch``: one chunk asked for and answered over an open TLS link, read and
  hashed by the holder, hashed and written by the asker: item 6b's floor, FUSE excluded.
- ``MinimalFuse``: a pyfuse3 passthrough of ~150 lines that hands each request straight
  to the directory tree below it (inode numbers kept in two dicts, attributes from
  ``lstat``), with the same options as the mount (writeback cache, 1 s entry and
  attribute timeouts, user.* xattrs answered, so the kernel asks for security.capability
  on every write(2) as it does of syncfs): item 3's floor for a Python FUSE daemon on this
  libfuse, and bench/metadata.py's for trees of small files.

Blocking sockets and plain loops: these are yardsticks, not designs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import blake3

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from syncfs.handshake import client_context  # noqa: E402
from syncfs.identity import Identity  # noqa: E402

PIECE = 1 << 20
SIZE = struct.Struct(">Q")


def start_script(script: str, *args: str) -> subprocess.Popen:
    """``script`` in a Python process of its own group, talking on stdout; see ``end``."""
    return subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, start_new_session=True)


def first_line(proc: subprocess.Popen) -> bytes:
    """What ``proc`` printed first (its port, or that it is ready); empty if it died."""
    return proc.stdout.readline().strip() if proc.stdout else b""


def end(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and everything it started."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)

# The far end of TlsFloor: "C" + size receives a copy (hash, write, ack); "G" + size
# serves that many bytes of the file it was given, read and hashed, once per request.
_FAR_END = r"""
import os, socket, struct, sys
sys.path.insert(0, sys.argv[1])
import blake3
from syncfs.handshake import server_context
from syncfs.identity import Identity

SIZE = struct.Struct(">Q")
ctx = server_context(Identity.load_or_create(__import__("pathlib").Path(sys.argv[2])))
copy_to, serve_from = sys.argv[3], sys.argv[4]
srv = socket.create_server((sys.argv[5], 0))
print(srv.getsockname()[1], flush=True)
buf = bytearray(1 << 20)
view = memoryview(buf)


def read_exactly(s, n):
    got = 0
    while got < n:
        k = s.recv_into(view[got:n])
        if not k:
            raise EOFError
        got += k
    return view[:n]


while True:
    conn, _ = srv.accept()
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        conn.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as trio's streams
    try:
        with ctx.wrap_socket(conn, server_side=True) as s:
            while True:
                kind = s.recv(1)
                if not kind:
                    break
                (n,) = SIZE.unpack(bytes(read_exactly(s, SIZE.size)))
                if kind == b"C":
                    with open(copy_to, "wb") as f:
                        left = n
                        while left:
                            piece = read_exactly(s, min(left, len(buf)))
                            blake3.blake3(piece).digest()
                            f.write(piece)
                            left -= len(piece)
                    s.sendall(b"k")
                else:
                    fd = os.open(serve_from, os.O_RDONLY)
                    try:
                        data = os.pread(fd, n, 0)
                    finally:
                        os.close(fd)
                    blake3.blake3(data).digest()
                    s.sendall(data)
    except (OSError, EOFError):
        pass
"""


class TlsFloor:
    """A far-end process on ``host`` that receives TLS copies and serves one chunk."""

    def __init__(self, workdir: Path, host: str, chunk: bytes = b"") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.dest = workdir / "tls-copy.bin"
        self.chunk_file = workdir / "tls-chunk.bin"
        self.chunk_file.write_bytes(chunk)
        self.chunk_len = len(chunk)
        Identity.load_or_create(workdir / "id")
        self.proc = start_script(_FAR_END, str(ROOT), str(workdir / "id"), str(self.dest), str(self.chunk_file), host)
        line = first_line(self.proc)
        if not line:
            self.close()
            raise RuntimeError("the TLS floor's far end did not start")
        self.addr = (host, int(line))
        self.ctx = client_context()

    def _connect(self) -> socket.socket:
        raw = socket.create_connection(self.addr)
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            raw.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as trio's streams
        return self.ctx.wrap_socket(raw)

    def copy(self, data: bytes | memoryview) -> float:
        """Seconds from connect (TCP and TLS included) until the far end has hashed and
        written all of ``data``, each piece hashed here first."""
        view = memoryview(data)
        t0 = time.perf_counter()
        with self._connect() as s:
            s.sendall(b"C" + SIZE.pack(len(view)))
            for off in range(0, len(view), PIECE):
                piece = view[off:off + PIECE]
                blake3.blake3(piece).digest()
                s.sendall(piece)
            if s.recv(1) != b"k":
                raise RuntimeError("the TLS floor's far end did not acknowledge")
        elapsed = time.perf_counter() - t0
        if self.dest.stat().st_size != len(view):
            raise RuntimeError("the TLS floor's copy has the wrong size")
        return elapsed

    def fetches(self, runs: int) -> list[float]:
        """Seconds per chunk round trip on one open link: ask, the far end reads and hashes
        the chunk and sends it, hash it here and write it into a file."""
        times = []
        out = self.workdir / "tls-fetched.bin"
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        buf = bytearray(self.chunk_len)
        view = memoryview(buf)
        try:
            with self._connect() as s:
                for _ in range(runs + 1):  # the first pays for the handshake: not counted
                    t0 = time.perf_counter()
                    s.sendall(b"G" + SIZE.pack(self.chunk_len))
                    got = 0
                    while got < self.chunk_len:
                        n = s.recv_into(view[got:])
                        if not n:
                            raise RuntimeError("the TLS floor's far end closed the link")
                        got += n
                    blake3.blake3(view).digest()
                    os.pwrite(fd, view, 0)
                    times.append(time.perf_counter() - t0)
        finally:
            os.close(fd)
        return times[1:]

    def close(self) -> None:
        end(self.proc)
        for f in (self.dest, self.chunk_file, self.workdir / "tls-fetched.bin"):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()


# --------------------------------------------------------------------------- FUSE

_MINIMAL_FUSE = r'''
import errno, os, stat, sys
import pyfuse3, trio

TIMEOUT = 1.0  # syncfs's ATTR_TIMEOUT, for entries and attributes alike


def errnos(fn):
    async def handler(*args):
        try:
            return await fn(*args)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        except KeyError:  # an inode whose name is gone
            raise pyfuse3.FUSEError(errno.ENOENT) from None
    return handler


class Passthrough(pyfuse3.Operations):
    enable_writeback_cache = True

    def __init__(self, back):
        super().__init__()
        self.paths, self.inos, self.next = {pyfuse3.ROOT_INODE: back}, {back: pyfuse3.ROOT_INODE}, pyfuse3.ROOT_INODE + 1

    def _ino(self, path):
        if path not in self.inos:
            self.inos[path], self.paths[self.next], self.next = self.next, path, self.next + 1
        return self.inos[path]

    def _child(self, parent, name):
        return os.path.join(self.paths[parent], os.fsdecode(name))

    def _gone(self, path):
        for p in [p for p in self.inos if p == path or p.startswith(path + "/")]:
            del self.paths[self.inos.pop(p)]

    def _attr(self, ino, st=None):
        st = st or os.lstat(self.paths[ino])
        a = pyfuse3.EntryAttributes()
        for k in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_blocks",
                  "st_atime_ns", "st_mtime_ns", "st_ctime_ns"):
            setattr(a, k, getattr(st, k))
        a.st_ino, a.st_blksize, a.attr_timeout, a.entry_timeout = ino, 4096, TIMEOUT, TIMEOUT
        return a

    async def getattr(self, ino, ctx=None):
        return self._attr(ino)

    async def lookup(self, parent, name, ctx=None):
        path = self._child(parent, name)
        st = os.lstat(path)
        return self._attr(self._ino(path), st)

    async def setattr(self, ino, attr, fields, fh, ctx):
        path = self.paths[ino]
        if fields.update_size:
            os.truncate(fh if fh is not None else path, attr.st_size)
        if fields.update_mode:
            os.chmod(path, stat.S_IMODE(attr.st_mode))
        if fields.update_mtime or fields.update_atime:
            st = os.lstat(path)
            os.utime(path, ns=(attr.st_atime_ns if fields.update_atime else st.st_atime_ns,
                               attr.st_mtime_ns if fields.update_mtime else st.st_mtime_ns), follow_symlinks=False)
        return self._attr(ino)

    async def readlink(self, ino, ctx):
        return os.fsencode(os.readlink(self.paths[ino]))

    async def mkdir(self, parent, name, mode, ctx):
        path = self._child(parent, name)
        os.mkdir(path, mode & 0o7777)
        return self._attr(self._ino(path))

    async def symlink(self, parent, name, target, ctx):
        path = self._child(parent, name)
        os.symlink(os.fsdecode(target), path)
        return self._attr(self._ino(path))

    async def rmdir(self, parent, name, ctx):
        path = self._child(parent, name)
        os.rmdir(path)
        self._gone(path)

    async def unlink(self, parent, name, ctx):
        path = self._child(parent, name)
        os.unlink(path)
        self._gone(path)

    async def rename(self, parent_old, name_old, parent_new, name_new, flags, ctx):
        old, new = self._child(parent_old, name_old), self._child(parent_new, name_new)
        os.rename(old, new)
        self._gone(new)
        for p in [p for p in self.inos if p == old or p.startswith(old + "/")]:
            ino = self.inos.pop(p)
            self.paths[ino] = new + p[len(old):]
            self.inos[self.paths[ino]] = ino

    async def opendir(self, ino, ctx):
        return ino

    async def readdir(self, fh, start_id, token):
        names = sorted(os.listdir(self.paths[fh]))
        for i in range(start_id, len(names)):
            path = os.path.join(self.paths[fh], names[i])
            if not pyfuse3.readdir_reply(token, os.fsencode(names[i]), self._attr(self._ino(path), os.lstat(path)), i + 1):
                return

    async def releasedir(self, fh):
        pass

    async def statfs(self, ctx):
        st, out = os.statvfs(self.paths[pyfuse3.ROOT_INODE]), pyfuse3.StatvfsData()
        for k in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_favail"):
            setattr(out, k, getattr(st, k))
        out.f_namemax = 255
        return out

    async def create(self, parent, name, mode, flags, ctx):
        path = self._child(parent, name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, mode & 0o7777)
        return pyfuse3.FileInfo(fh=fd), self._attr(self._ino(path))

    async def open(self, ino, flags, ctx):
        mode = os.O_RDONLY if flags & os.O_ACCMODE == os.O_RDONLY else os.O_RDWR
        return pyfuse3.FileInfo(fh=os.open(self.paths[ino], mode | (flags & os.O_TRUNC)), keep_cache=True)

    async def read(self, fh, off, size):
        return os.pread(fh, size, off)

    async def write(self, fh, off, buf):
        return os.pwrite(fh, buf, off)

    async def fsync(self, fh, datasync):
        os.fsync(fh)

    async def flush(self, fh):
        pass

    async def release(self, fh):
        os.close(fh)

    async def forget(self, inodes):
        pass

    async def getxattr(self, ino, name, ctx):
        raise pyfuse3.FUSEError(errno.ENODATA)  # as a file system with user.* xattrs

    async def listxattr(self, ino, ctx):
        return []


for _name, _fn in list(vars(Passthrough).items()):
    if _name[0] != "_" and callable(_fn) and _name != "forget":
        setattr(Passthrough, _name, errnos(_fn))

ops = Passthrough(sys.argv[2])
options = set(pyfuse3.default_options) | {"fsname=minimal", "default_permissions"}
pyfuse3.init(ops, sys.argv[1], options)
os.write(1, b"ready\n")
try:
    trio.run(pyfuse3.main)
finally:
    pyfuse3.close(unmount=True)
'''


class MinimalFuse:
    """The minimal pyfuse3 passthrough, mounted at ``workdir/mnt`` over ``workdir/back``."""

    def __init__(self, workdir: Path) -> None:
        self.mnt = workdir / "mnt"
        self.back = workdir / "back"
        self.mnt.mkdir(parents=True, exist_ok=True)
        self.back.mkdir(parents=True, exist_ok=True)
        self.proc = start_script(_MINIMAL_FUSE, str(self.mnt), str(self.back))
        line = first_line(self.proc)
        deadline = time.monotonic() + 10
        while line == b"ready" and not os.path.ismount(self.mnt) and time.monotonic() < deadline:
            time.sleep(0.01)
        if not os.path.ismount(self.mnt):
            self.close()
            raise RuntimeError("the minimal FUSE file system did not mount")

    def path(self, name: str) -> Path:
        return self.mnt / name

    def close(self) -> None:
        if os.path.ismount(self.mnt):
            done = subprocess.run(["fusermount3", "-u", str(self.mnt)], capture_output=True, timeout=30)
            if done.returncode:
                subprocess.run(["fusermount3", "-uz", str(self.mnt)], capture_output=True, timeout=30)
        end(self.proc)
