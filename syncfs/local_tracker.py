"""The embedded tracker: the one ``syncfs mount`` (or ``sync``) without ``--tracker`` joins,
on 127.0.0.1 (port 7370, or ``--local-tracker-port``), its state under the XDG data
directory, started in the background when none runs.

What listens on that port is asked, not assumed: a syncfs tracker answers a TLS handshake
with the certificate of its state directory's identity. Anything else there is reported at
once. The tracker started here exits by itself once no peer has been connected for
``IDLE_EXIT`` seconds (``--exit-when-idle``), so it ends soon after the last mount that
used it; ``syncfs tracker --stop --state-dir D`` stops it (or any tracker) at once, by the
pid file every tracker keeps in its state directory.
"""

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from . import config
from .config import ConfigError
from .invite import BadToken, Invite, parse

PORT_ENV = "SYNCFS_LOCAL_TRACKER_PORT"
INVITE_FILE = "invite"
IDENTITY_DIR = "identity"
PID_FILE = "tracker.pid"
LOG_FILE = "tracker.log"
IDLE_EXIT = 10.0  # seconds without a peer after which the embedded tracker exits
PROBE_TIMEOUT = 3.0
START_TIMEOUT = 15.0


class LocalTrackerError(ConfigError):
    """The local tracker cannot be used on ``port``; ``why`` says what is in the way."""

    def __init__(self, port: int, why: str) -> None:
        super().__init__(why)
        self.port = port
        self.why = why


@dataclasses.dataclass(frozen=True)
class Probe:
    """What answers on a port: nothing, the tracker of the state directory, or something
    else (``foreign`` says what)."""

    listening: bool
    foreign: str = ""

    @property
    def ours(self) -> bool:
        return self.listening and not self.foreign


def local_port(configured: int) -> int:
    """The embedded tracker's port: ``configured`` (flag or configuration file), else
    $SYNCFS_LOCAL_TRACKER_PORT, else 7370."""
    if configured:
        return configured
    text = os.environ.get(PORT_ENV, "")
    try:
        return int(text) if text else config.DEFAULT_TRACKER_PORT
    except ValueError:
        raise ConfigError(f"${PORT_ENV} must be a port number, not {text!r}") from None


def ensure_local_tracker(port: int) -> Invite:
    """The join token of the local tracker on ``port``, started in the background if none
    runs. Raises LocalTrackerError when the port is held by something else, or when this
    user's local tracker runs on another port."""
    host = config.LOCAL_TRACKER_HOST
    state = config.local_tracker_dir()
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _launch_lock(state):  # two mounts starting at once start one tracker
        found = probe(host, port, tracker_fingerprint(state))
        if found.foreign:
            raise _held(host, port, state, found.foreign)
        if not found.listening:
            pid = running_pid(state)
            if pid is None:
                _start(state, host, port)
            else:
                invite = _read_invite(state)
                if invite is None or invite.port != port:
                    where = f"on port {invite.port}" if invite else "on another port"
                    raise LocalTrackerError(
                        port, f"the local tracker already runs {where} (pid {pid}, state {state}): use that "
                        f"port (--local-tracker-port), or stop it first: syncfs tracker --stop --state-dir {state}")
                _wait_until_ours(state, host, port, None)
        return _wait_for_invite(state, port)


def probe(host: str, port: int, expected: str | None, timeout: float = PROBE_TIMEOUT) -> Probe:
    """Ask what listens on ``host:port``: a TLS server with the certificate ``expected``
    (a fingerprint) is ours."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return Probe(False)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # pinned by fingerprint below
    try:
        with ctx.wrap_socket(sock, server_hostname=None) as tls:
            der = tls.getpeercert(binary_form=True)
    except TimeoutError:
        return Probe(True, f"it gave no TLS answer within {timeout:g} s")
    except (ssl.SSLError, OSError) as exc:
        return Probe(True, f"it does not speak TLS as a syncfs tracker does: {exc}")
    finally:
        sock.close()
    got = hashlib.sha256(der).hexdigest() if der else "none"
    if got != expected:
        return Probe(True, f"a TLS server with certificate {got[:16]}…, not this tracker's")
    return Probe(True)


def tracker_fingerprint(state: Path) -> str | None:
    """The fingerprint of the certificate of the tracker of ``state`` (None before its first start)."""
    try:
        pem = (state / IDENTITY_DIR / "cert.pem").read_text()
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- pid file


def write_pid_file(state: Path) -> None:
    """Record this process as the tracker of ``state`` (at start, once it listens)."""
    tmp = state / f"{PID_FILE}.tmp"
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(state / PID_FILE)


def remove_pid_file(state: Path) -> None:
    """At exit: remove the pid file if it still names this process."""
    with contextlib.suppress(OSError, ValueError):
        if int((state / PID_FILE).read_text()) == os.getpid():
            (state / PID_FILE).unlink()


def running_pid(state: Path) -> int | None:
    """The pid of the tracker running with state directory ``state``, or None."""
    try:
        pid = int((state / PID_FILE).read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    # a pid file left by a crash may name a process that has nothing to do with us now
    return pid if b"tracker" in cmdline and _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


# --------------------------------------------------------------------------- starting


@contextlib.contextmanager
def _launch_lock(state: Path) -> Iterator[None]:
    with open(state / "launch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _held(host: str, port: int, state: Path, what: str) -> LocalTrackerError:
    return LocalTrackerError(
        port, f"{host}:{port} is held by another program, not the local syncfs tracker ({what}); stop it, "
        "or put the local tracker on another port: --local-tracker-port PORT (or local_tracker_port in the "
        f"configuration file); or join a share with --tracker TOKEN. (The local tracker's state: {state})")


def _start(state: Path, host: str, port: int) -> None:
    with open(os.devnull, "rb") as devnull, open(state / LOG_FILE, "ab") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "tracker", "--host", host, "--port", str(port), "--state-dir", str(state),
             "--exit-when-idle", f"{IDLE_EXIT:g}"],
            stdin=devnull, stdout=out, stderr=out, start_new_session=True,
        )
    _wait_until_ours(state, host, port, child)


def _wait_until_ours(state: Path, host: str, port: int, child: "subprocess.Popen[bytes] | None") -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        found = probe(host, port, tracker_fingerprint(state))
        if found.ours:
            return
        if found.foreign and tracker_fingerprint(state) is not None:
            raise _held(host, port, state, found.foreign)
        if child is not None and child.poll() is not None:
            raise LocalTrackerError(port, f"the local tracker did not start: {_last_line(state / LOG_FILE)} "
                                    f"(see {state / LOG_FILE})")
        if time.monotonic() > deadline:
            raise LocalTrackerError(port, f"the local tracker did not start within {START_TIMEOUT:g} s; "
                                    f"see {state / LOG_FILE}")
        time.sleep(0.05)


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no log"


def _read_invite(state: Path) -> Invite | None:
    try:
        return parse((state / INVITE_FILE).read_text())
    except (OSError, BadToken):
        return None


def _wait_for_invite(state: Path, port: int) -> Invite:
    """The token the running tracker wrote once it listened (a moment after it answers)."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        invite = _read_invite(state)
        if invite is not None and invite.port == port and invite.fingerprint == tracker_fingerprint(state):
            return invite
        if time.monotonic() > deadline:
            raise LocalTrackerError(port, f"a tracker runs on {config.LOCAL_TRACKER_HOST}:{port} but "
                                    f"{state / INVITE_FILE} holds no join token for it (restart it, or pass "
                                    "--tracker TOKEN)")
        time.sleep(0.05)
