"""``syncfs service install|remove DIR``: a systemd unit that keeps a mount up.

The unit runs ``syncfs mount DIR --foreground …`` as a user service (started at login,
``WantedBy=default.target``) or, with ``--system``, a system one (at boot, after the network),
restarts it after a crash, unmounts on stop, and detaches a mount that a crash left dead
before each start. Its name comes from the mount point the way ``systemd-escape --path``
makes one (``/home/ann/My Share`` -> ``syncfs-home-ann-My\\x20Share.service``).

The unit text and the name are pure functions (``unit_name``, ``unit_text``); ``main`` writes
the file, enables it the way ``systemctl enable`` does (a symlink in ``TARGET.wants``), and asks
systemd to reload and start it when systemd is reachable, else says what to run.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
RESTART_SEC = 5
# the longest unit name systemd accepts (UNIT_NAME_MAX - 1)
UNIT_NAME_MAX = 255
START_TIMEOUT = 30.0
_UNIT_CHARS = re.compile(r"[A-Za-z0-9:_.]")
_BARE_ARG = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


class ServiceError(Exception):
    """The service cannot be written or removed as asked; the message says why."""


def escape_path(path: str) -> str:
    """``systemd-escape --path PATH``: '/' between components becomes '-', every byte other
    than ASCII letters, digits, ':', '_' and '.' (and a leading '.') becomes ``\\xNN``."""
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ServiceError(f"{path}: give a normalized path (no . or .. components)")
    if not parts:
        return "-"
    out = []
    for i, byte in enumerate("/".join(parts).encode()):
        c = chr(byte)
        if c == "/":
            out.append("-")
        elif byte < 128 and _UNIT_CHARS.fullmatch(c) and not (i == 0 and c == "."):
            out.append(c)
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def unit_name(mountpoint: str) -> str:
    name = f"syncfs-{escape_path(mountpoint)}.service"
    if len(name) > UNIT_NAME_MAX:
        raise ServiceError(f"the unit name for {mountpoint} would be {len(name)} characters (systemd takes "
                           f"{UNIT_NAME_MAX}): use a shorter mount point path")
    return name


def exec_arg(arg: str) -> str:
    """One word of an ``Exec*=`` line, as systemd reads it back: double-quoted (with C escapes)
    unless plain, ``%`` as ``%%`` (specifiers) and ``$`` as ``$$`` (variables)."""
    if "\n" in arg or "\r" in arg or "\0" in arg:
        raise ServiceError(f"{arg!r}: a line break or NUL cannot be part of a systemd command line")
    text = arg if _BARE_ARG.fullmatch(arg) else '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text.replace("%", "%%").replace("$", "$$")


def exec_line(argv: Sequence[str]) -> str:
    return " ".join(exec_arg(a) for a in argv)


def unit_text(mountpoint: str, command: Sequence[str], mount_args: Sequence[str], *, system: bool,
              fusermount: str = "/usr/bin/fusermount3") -> str:
    """The unit for ``command mount MOUNTPOINT --foreground MOUNT_ARGS`` (``command``: how
    to run syncfs, e.g. its absolute path)."""
    start = [*command, "mount", mountpoint, "--foreground", *(a for a in mount_args if a != "--foreground")]
    # a crash leaves the mount dead: detach it, never a live one. statfs always asks the file
    # system (a stat may be answered from the kernel's cache), and fails ENOTCONN on a dead one
    clean = ["/bin/sh", "-c", f'stat -f -- "$1" >/dev/null 2>&1 || exec {fusermount} -u -z -- "$1"', "syncfs",
             mountpoint]
    after = "Wants=network-online.target\nAfter=network-online.target\n" if system else ""
    target = "multi-user.target" if system else "default.target"
    how = "--system " if system else ""
    return (
        f"# Written by `syncfs service install {how}DIR`; remove it with `syncfs service remove {how}DIR`.\n"
        "[Unit]\n"
        f"Description=syncfs share mounted at {mountpoint.replace('%', '%%')}\n"
        f"{after}"
        "\n[Service]\n"
        "Type=exec\n"
        f"ExecStartPre=-{exec_line(clean)}\n"
        f"ExecStart={exec_line(start)}\n"
        "# a busy mount refuses; systemd then sends SIGTERM and syncfs detaches it as it exits\n"
        f"ExecStop=-{exec_line([fusermount, '-u', mountpoint])}\n"
        "Restart=on-failure\n"
        f"RestartSec={RESTART_SEC}\n"
        "\n[Install]\n"
        f"WantedBy={target}\n"
    )


def syncfs_command() -> list[str]:
    """How the unit runs this syncfs: the ``syncfs`` script beside this interpreter (a venv's),
    else this interpreter with ``-m syncfs``."""
    script = Path(sys.executable).parent / "syncfs"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script.absolute())]
    return [sys.executable, "-m", "syncfs"]


def user_unit_dir() -> Path:
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "systemd" / "user"


def main(argv: list[str], check_mount_args: Callable[[list[str]], object]) -> int:
    """``syncfs service ...``; ``check_mount_args`` parses ``DIR [mount options]`` as
    ``syncfs mount`` would (exits on an error, as argparse does)."""
    parser = argparse.ArgumentParser(prog="syncfs service", allow_abbrev=False,
                                     description="Keep a mount up with systemd: mounted at login (or boot), "
                                     "restarted after a crash.")
    sub = parser.add_subparsers(dest="action", required=True)
    ins = sub.add_parser("install", allow_abbrev=False, help="write, enable and start the unit for DIR",
                         usage="syncfs service install DIR [--system] [--print] [syncfs mount options]")
    ins.add_argument("directory", metavar="DIR", help="the mount point (an existing empty directory); the options "
                     "after it are those of syncfs mount (--tracker TOKEN, --on-demand, ...)")
    ins.add_argument("--print", action="store_true", help="print the unit instead of installing it")
    rem = sub.add_parser("remove", allow_abbrev=False, help="stop, disable and delete the unit for DIR")
    rem.add_argument("directory", metavar="DIR")
    for p in (ins, rem):
        p.add_argument("--system", action="store_true",
                       help=f"a system unit in {SYSTEM_UNIT_DIR} (root; mounts at boot) instead of a user unit")
    args, mount_args = parser.parse_known_args(argv)
    if args.action == "remove" and mount_args:
        parser.error(f"unrecognized arguments: {' '.join(mount_args)}")
    directory = os.path.normpath(os.path.abspath(os.path.expanduser(args.directory)))
    unit_dir = SYSTEM_UNIT_DIR if args.system else user_unit_dir()
    systemctl = ["systemctl"] if args.system else ["systemctl", "--user"]
    try:
        if args.action == "install":
            if not os.path.isdir(directory):
                raise ServiceError(f"mount point {directory} does not exist or is not a directory: create it first")
            check_mount_args([directory, *mount_args])
            text = unit_text(directory, syncfs_command(), mount_args, system=args.system,
                             fusermount=shutil.which("fusermount3") or "/usr/bin/fusermount3")
            if args.print:
                print(text, end="")
                return 0
            return install(directory, text, unit_dir, systemctl, system=args.system)
        return remove(directory, unit_dir, systemctl)
    except ServiceError as exc:
        print(f"syncfs: {exc}", file=sys.stderr)
        return 1


def install(directory: str, text: str, unit_dir: Path, systemctl: list[str], *, system: bool) -> int:
    """Write and enable the unit; start it if systemd answers. 0 once installed."""
    name = unit_name(directory)
    path = unit_dir / name
    target = "multi-user.target" if system else "default.target"
    try:
        unit_dir.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{name}.tmp")
        # the options may hold the share's token or secret: readable by its owner only
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temp, path)
        wants = unit_dir / f"{target}.wants"
        wants.mkdir(exist_ok=True)
        link = wants / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(path)  # what `systemctl enable` makes
    except OSError as exc:
        hint = " (a --system unit needs root)" if system and exc.errno in (1, 13) else ""
        raise ServiceError(f"cannot write {path}: {exc.strerror}{hint}") from None
    print(f"syncfs: wrote {path}, enabled for {target}")
    cmd = " ".join(systemctl)
    problem = _systemctl(systemctl, "daemon-reload")
    if problem:
        print(f"syncfs: systemd is not reachable ({problem}): it starts at the next "
              f"{'boot' if system else 'login'}; to start it now, run:\n"
              f"  {cmd} daemon-reload && {cmd} start {_shell_word(name)}", file=sys.stderr)
        return 0
    if os.path.ismount(directory):
        print(f"syncfs: {directory} is mounted now, not by the service: it takes over at the next "
              f"{'boot' if system else 'login'}, or now with:\n  syncfs stop {_shell_word(directory)} && "
              f"{cmd} start {_shell_word(name)}")
        return 0
    problem = _systemctl(systemctl, "start", name)
    deadline = time.monotonic() + START_TIMEOUT
    while not problem and not os.path.ismount(directory) and time.monotonic() < deadline:
        time.sleep(0.2)
    if problem or not os.path.ismount(directory):
        journal = "journalctl" + ("" if system else " --user")
        print(f"syncfs: {name} did not mount {directory}{f' ({problem})' if problem else ''}: see "
              f"{cmd} status {_shell_word(name)} and {journal} -u {_shell_word(name)}", file=sys.stderr)
        return 1
    print(f"syncfs: {directory} mounted by {name}")
    return 0


def remove(directory: str, unit_dir: Path, systemctl: list[str]) -> int:
    """Stop (it unmounts), disable and delete the unit of ``directory``."""
    name = unit_name(directory)
    path = unit_dir / name
    if not path.exists():
        raise ServiceError(f"no syncfs service for {directory} (no {path})")
    cmd = " ".join(systemctl)
    problem = _systemctl(systemctl, "stop", name)
    try:
        for link in unit_dir.glob(f"*.wants/{glob_escape(name)}"):
            link.unlink()  # what `systemctl disable` removes
        path.unlink()
    except OSError as exc:
        raise ServiceError(f"cannot remove {path}: {exc.strerror}") from None
    if not problem:
        problem = _systemctl(systemctl, "daemon-reload")
    print(f"syncfs: removed {path}")
    if problem:
        print(f"syncfs: systemd is not reachable ({problem}): if the service is running, run:\n"
              f"  {cmd} stop {_shell_word(name)} && {cmd} daemon-reload", file=sys.stderr)
    return 0


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _systemctl(systemctl: list[str], *args: str) -> str | None:
    """Run systemctl; None if it succeeded, else what went wrong (its first line)."""
    try:
        done = subprocess.run([*systemctl, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[0] if lines else f"{' '.join(systemctl)} {' '.join(args)} exited with {done.returncode}"


def _shell_word(text: str) -> str:
    return text if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", text) else "'" + text.replace("'", "'\\''") + "'"
