"""The mount helper's form ``syncfs SOURCE DIR -o OPTS`` (mount -t fuse.syncfs, /etc/fstab):
what ``syncfs mount`` arguments each form and option becomes, and which are refused."""

import re

import pytest
from harness import syncfs_cli

from syncfs import fstab
from syncfs.fstab import OptionError, is_helper_call, mount_args

TOKEN = "syncfs://s3cr%2Fet@tracker.example.net:7370/" + "ab" * 32


def test_what_mount_fuse3_passes_for_a_realistic_fstab_line():
    # /etc/fstab:
    #   TOKEN  /srv/share  fuse.syncfs  listen=10.0.0.5,cache_dir=/var/cache/syncfs,on_demand,allow_other,
    #          _netdev,nofail,x-systemd.after=network-online.target,user,noatime  0 0
    # reaches syncfs (mount(8) puts the kernel's options first, drops x-*, adds what `user`
    # implies; mount.fuse3 drops user/nofail/_netdev and appends dev,suid) as:
    argv = [TOKEN, "/srv/share", "-o",
            "rw,noexec,nosuid,nodev,noatime,listen=10.0.0.5,cache_dir=/var/cache/syncfs,on_demand,allow_other,dev,suid"]
    assert is_helper_call(argv)
    call = mount_args(argv)
    assert call.argv == ["mount", "/srv/share", "--token", TOKEN, "--listen", "10.0.0.5",
                         "--cache-dir", "/var/cache/syncfs", "--on-demand", "--allow-other"]
    assert call.notes == [fstab.NOTED["noexec"]]


def test_the_options_of_an_fstab_line_as_written_are_accepted_too():
    # `syncfs TOKEN DIR -o <the fstab field>`, run by hand
    opts = ("defaults,_netdev,nofail,noauto,x-systemd.automount,x-systemd.idle-timeout=60,comment=x,"
            "listen=10.0.0.5:7400,advertise=share.example.net:7400,fetch_timeout=60,max_rate=20M,"
            "cache_size=2G,log_level=DEBUG,log_file=/var/log/syncfs.log,config=/etc/syncfs/share.toml")
    call = mount_args(["none", "/mnt/s", "-o", opts])
    assert call.argv == ["mount", "/mnt/s", "--listen", "10.0.0.5:7400", "--advertise", "share.example.net:7400",
                         "--fetch-timeout", "60", "--max-rate", "20M", "--cache-size", "2G", "--log-level", "DEBUG",
                         "--log-file", "/var/log/syncfs.log", "--config", "/etc/syncfs/share.toml"]
    assert call.notes == []


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["none", "/m", "-o", "on_demand"], ["mount", "/m", "--on-demand"]),
        (["syncfs", "/m", "-oon_demand,allow_other"], ["mount", "/m", "--on-demand", "--allow-other"]),
        # mount.fuse3 leaves out an empty source
        (["/m", "-o", "tracker=" + TOKEN], ["mount", "/m", "--tracker", TOKEN]),
        ([TOKEN, "/m"], ["mount", "/m", "--token", TOKEN]),
        # -o more than once; an empty option (",,") is nothing
        ([TOKEN, "/m", "-o", "listen=a,,", "-o", "listen=b"], ["mount", "/m", "--token", TOKEN,
                                                              "--listen", "a", "--listen", "b"]),
        # a value may hold '=' and spaces (fstab's \040 arrives decoded)
        (["none", "/m", "-o", "secret=a=b c"], ["mount", "/m", "--secret", "a=b c"]),
    ],
)
def test_forms(argv, expected):
    assert is_helper_call(argv)
    assert mount_args(argv).argv == expected


@pytest.mark.parametrize(
    "argv, message",
    [
        (["none", "/m", "-o", "ro"], "no read-only mount"),
        (["none", "/m", "-o", "cache-dir=/x"], "unknown option 'cache-dir=/x'"),
        (["none", "/m", "-o", "reconnect"], "unknown option 'reconnect'"),
        (["none", "/m", "-o", "listen"], "listen needs a value"),
        (["none", "/m", "-o", "listen="], "listen needs a value"),
        (["none", "/m", "-o", "on_demand=yes"], "on_demand takes no value"),
        (["none", "/m", "-o", "allow_root"], "no allow_root"),
        (["none", "/m", "-o", "setuid=ann"], "option of mount.fuse3"),
        (["none", "/m", "-o"], "-o needs a value"),
        (["none", "/m", "-f"], "unexpected argument '-f'"),
        (["none", "/m", "/n", "-o", "on_demand"], "usage: syncfs SOURCE DIR"),
        (["ann@host:/x", "/m", "-o", "on_demand"], "is not a join token"),
    ],
)
def test_refused(argv, message):
    assert is_helper_call(argv)
    with pytest.raises(OptionError, match=re.escape(message)):
        mount_args(argv)


@pytest.mark.parametrize(
    "argv",
    [[], ["mount", "/m", "-o", "x"], ["status"], ["--help"], ["stop", "/m"], ["tracker", "--print-invite"],
     ["mout", "/m"], ["/m"]],
)
def test_subcommands_and_typos_are_not_the_helper_form(argv):
    assert not is_helper_call(argv)


def test_the_option_table_matches_syncfs_mount():
    """Every option the helper form names is a ``syncfs mount`` flag and every flag of
    ``syncfs mount`` is an option here (a new flag must be added to fstab.py)."""
    done = syncfs_cli("mount", "--help")
    assert done.returncode == 0, done.stderr
    flags = set(re.findall(r"^\s+(?:-\w, )?--([a-z][a-z-]*)", done.stdout, re.MULTILINE)) - {"help"}
    assert {f.replace("-", "_") for f in flags} == fstab.VALUE_OPTIONS | fstab.FLAG_OPTIONS


def test_the_command_list_matches_syncfs():
    done = syncfs_cli("--help")
    choices = re.search(r"\{([a-z,]+)\}", done.stdout)
    assert choices, done.stdout
    assert set(choices.group(1).split(",")) == fstab.COMMANDS


def test_cli_reports_a_bad_option_before_doing_anything(tmp_path):
    done = syncfs_cli(TOKEN, str(tmp_path), "-o", "rw,cache_dir=/x,bogus")
    assert done.returncode == 2
    assert "syncfs: unknown option 'bogus'" in done.stderr
