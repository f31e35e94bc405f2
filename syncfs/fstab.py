"""The mount helper's form of the command: ``syncfs SOURCE DIR -o OPT,OPT,...``.

``mount -t fuse.syncfs SOURCE DIR -o OPTIONS`` (and an ``/etc/fstab`` line of type
``fuse.syncfs``) runs ``mount.fuse3``, which runs ``syncfs SOURCE DIR -o OPTIONS`` through
``/bin/sh`` with the environment of mount(8), whose PATH it drops: ``syncfs`` must be in the
shell's default path (``/usr/local/bin`` …). mount(8) and mount.fuse3 move the kernel's
options first and append ``dev,suid``; an ``fstab`` ``user`` adds ``noexec,nosuid,nodev``.

This module is pure: argv in, ``syncfs mount`` arguments out. The options are the
``syncfs mount`` flags with ``_`` for ``-`` (``listen=10.0.0.5,cache_dir=/var/cache/syncfs,
on_demand``), as sshfs takes its own; the standard mount options are accepted and either
ignored (what syncfs does anyway, or what only mount(8) uses) or refused when syncfs cannot
do what they ask (``ro``). Anything else is an error, so that a typo never mounts a share
with a setting silently missing.
"""

import dataclasses
from collections.abc import Sequence

# the subcommands of ``syncfs``: a first argument that is one of these is never the helper form
COMMANDS = frozenset({"mount", "sync", "status", "pause", "resume", "stop", "pin", "unpin", "tracker", "service"})

# SOURCE words that mean "no token here" (it then comes from config=FILE, or a local tracker)
NO_TOKEN = frozenset({"none", "syncfs"})

# ``syncfs mount`` options that take a value, and those that are flags
VALUE_OPTIONS = frozenset({
    "tracker", "token", "advertise", "listen", "cache_dir", "secret", "config",
    "fetch_timeout", "keep_replaced", "max_rate", "cache_size", "log_file", "log_level", "local_tracker_port",
})  # fmt: skip
FLAG_OPTIONS = frozenset({"on_demand", "allow_other", "foreground"})

# what syncfs does anyway (FUSE mounts are nosuid,nodev unless asked otherwise, and syncfs
# keeps them so: a share's files come from other machines), or what only mount(8),
# systemd or mount.fuse3 act on
IGNORED = frozenset({
    "defaults", "rw", "exec", "dev", "nodev", "suid", "nosuid", "async",
    "auto", "noauto", "user", "nouser", "users", "owner", "group", "nofail", "_netdev",
    "atime", "noatime", "relatime", "norelatime", "strictatime", "nostrictatime",
    "diratime", "nodiratime", "lazytime", "nolazytime", "silent", "loud",
    "default_permissions",  # always on: the kernel checks permissions
})  # fmt: skip
IGNORED_PREFIXES = ("x-", "comment=", "fsname=", "subtype=")

# accepted, with a note: what mount(8) adds for an fstab ``user`` mount, not yet enforced
NOTED = {"noexec": "noexec is not enforced by syncfs: programs in the share can still be run"}

REFUSED = {
    "ro": "syncfs has no read-only mount",
    "sync": "syncfs does not support synchronous writes (sync); drop the option",
    "dirsync": "syncfs does not support dirsync; drop the option",
    "allow_root": "syncfs has no allow_root; use allow_other (the kernel still checks permissions)",
    "auto_unmount": "syncfs has no auto_unmount: after a crash, the next mount cleans the mount point",
    "setuid": "setuid=USER is an option of mount.fuse3: mount with -t fuse.syncfs",
    "drop_privileges": "drop_privileges is an option of mount.fuse3: mount with -t fuse.syncfs",
}


class OptionError(ValueError):
    """The helper form's arguments or options are unusable; the message says which."""


@dataclasses.dataclass(frozen=True)
class HelperCall:
    """``argv``: the ``syncfs mount`` arguments; ``notes``: what to tell the user."""

    argv: list[str]
    notes: list[str]


def is_helper_call(argv: Sequence[str]) -> bool:
    """Is this the helper form (``SOURCE DIR -o …``, or ``TOKEN DIR``), not a subcommand?"""
    if not argv or argv[0] in COMMANDS or argv[0].startswith("-"):
        return False
    return any(a.startswith("-o") for a in argv[1:]) or (len(argv) >= 2 and _is_source(argv[0]))


def _is_source(text: str) -> bool:
    return text.startswith("syncfs://") or text in NO_TOKEN


def mount_args(argv: Sequence[str]) -> HelperCall:
    """Translate ``SOURCE DIR [-o OPTS]...`` (or ``DIR -o OPTS``, when mount.fuse3 had an
    empty source) into ``syncfs mount DIR …`` arguments. Raises OptionError."""
    positional: list[str] = []
    options: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "-o":
            value = next(args, None)
            if value is None:
                raise OptionError("-o needs a value: -o OPTION[,OPTION...]")
            options.extend(o for o in value.split(",") if o)
        elif arg.startswith("-o"):
            options.extend(o for o in arg[2:].split(",") if o)
        elif arg.startswith("-") and arg != "-":
            raise OptionError(f"unexpected argument {arg!r}: give syncfs mount options as -o NAME[=VALUE],...")
        else:
            positional.append(arg)
    if len(positional) == 1:
        source, directory = "none", positional[0]
    elif len(positional) == 2:
        source, directory = positional
    else:
        raise OptionError("usage: syncfs SOURCE DIR -o OPTION[,OPTION...] (SOURCE: a join token or none)")
    if not _is_source(source):
        raise OptionError(f"source {source!r} is not a join token: give syncfs://… (syncfs tracker --print-invite), "
                          "or none to take the token from config=FILE or start a local tracker")
    out = ["mount", directory]
    if source.startswith("syncfs://"):
        out += ["--token", source]
    notes: list[str] = []
    for option in options:
        out += _translate(option, notes)
    return HelperCall(out, notes)


def _translate(option: str, notes: list[str]) -> list[str]:
    name, eq, value = option.partition("=")
    if name in REFUSED:
        raise OptionError(f"option {option!r}: {REFUSED[name]}")
    if option in IGNORED or option.startswith(IGNORED_PREFIXES):
        return []
    if option in NOTED:
        notes.append(NOTED[option])
        return []
    flag = "--" + name.replace("_", "-")
    if name in VALUE_OPTIONS:
        if not eq or not value:
            raise OptionError(f"option {name} needs a value: {name}=VALUE")
        return [flag, value]
    if name in FLAG_OPTIONS:
        if eq:
            raise OptionError(f"option {name} takes no value (give just {name}, or leave it out)")
        return [flag]
    known = ", ".join(sorted(VALUE_OPTIONS | FLAG_OPTIONS))
    raise OptionError(f"unknown option {option!r}; syncfs takes {known} and the standard mount options")
