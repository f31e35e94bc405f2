"""``syncfs service``: the unit's name (systemd-escape --path), its text (quoting of paths
with spaces, % and $), that systemd-analyze accepts it, and install/remove of the files."""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from harness import syncfs_cli

from syncfs import service
from syncfs.service import ServiceError, escape_path, exec_line, unit_name, unit_text

TOKEN = "syncfs://se%2Fc$ret@tracker.example.net:7370/" + "ab" * 32
IN_CI = os.environ.get("CI", "").lower() in ("true", "1", "yes")


def exec_words(line: str) -> list[str]:
    """How systemd splits one of our Exec lines: double quotes with \\\\ and \\" escapes,
    %% a literal %, $$ a literal $ (our lines use nothing else of its syntax)."""
    return shlex.split(line.replace("%%", "%").replace("$$", "$"))


def setting(text: str, key: str) -> str:
    values = [line.partition("=")[2] for line in text.splitlines() if line.startswith(f"{key}=")]
    assert len(values) == 1, (key, text)
    return values[0]


@pytest.mark.parametrize(
    "path, escaped",
    [
        ("/home/ann/shared", "home-ann-shared"),
        ("/home/ann/My Share", r"home-ann-My\x20Share"),
        ("/srv/sync-fs/a_b:c.d", r"srv-sync\x2dfs-a_b:c.d"),
        ("/home/ann/.hidden/x", r"home-ann-.hidden-x"),
        ("/.hidden", r"\x2ehidden"),
        ("/mnt/Ünïcødé", r"mnt-\xc3\x9cn\xc3\xafc\xc3\xb8d\xc3\xa9"),
        ("/mnt//a/", "mnt-a"),
        ("/", "-"),
        ("/mnt/a\\b%c$d", r"mnt-a\x5cb\x25c\x24d"),
    ],
)
def test_escape_path_is_systemd_escape_path(path, escaped):
    assert escape_path(path) == escaped
    tool = shutil.which("systemd-escape")
    if tool:
        assert subprocess.run([tool, "--path", path], capture_output=True, text=True).stdout.strip() == escaped


def test_unit_name_and_its_limits():
    assert unit_name("/home/ann/My Share") == r"syncfs-home-ann-My\x20Share.service"
    with pytest.raises(ServiceError, match="normalized"):
        unit_name("/home/ann/../bob")
    with pytest.raises(ServiceError, match="shorter mount point"):
        unit_name("/" + "x" * 250)


def test_unit_text_runs_the_mount_in_the_foreground_and_restarts_it():
    text = unit_text("/home/ann/My 100% Share", ["/opt/syncfs/bin/syncfs"], ["--tracker", TOKEN, "--on-demand"],
                     system=False, fusermount="/usr/bin/fusermount3")
    assert exec_words(setting(text, "ExecStart")) == [
        "/opt/syncfs/bin/syncfs", "mount", "/home/ann/My 100% Share", "--foreground", "--tracker", TOKEN, "--on-demand"]
    # the secret's '%2F' and '$' reach syncfs as written, not as a specifier or a variable
    assert "%%2Fc$$ret" in setting(text, "ExecStart")
    stop = setting(text, "ExecStop")
    assert stop.startswith("-") and exec_words(stop[1:]) == ["/usr/bin/fusermount3", "-u", "/home/ann/My 100% Share"]
    pre = setting(text, "ExecStartPre")
    assert pre.startswith("-")
    assert exec_words(pre[1:]) == ["/bin/sh", "-c", 'stat -f -- "$1" >/dev/null 2>&1 || exec /usr/bin/fusermount3 -u -z -- "$1"',
                                   "syncfs", "/home/ann/My 100% Share"]
    assert setting(text, "Description") == "syncfs share mounted at /home/ann/My 100%% Share"
    assert setting(text, "Restart") == "on-failure"
    assert 1 <= int(setting(text, "RestartSec")) <= 30
    assert setting(text, "WantedBy") == "default.target"
    assert "network-online" not in text  # no such unit in a user manager


def test_system_unit_waits_for_the_network_and_starts_at_boot():
    text = unit_text("/srv/share", ["/usr/local/bin/syncfs"], ["--foreground", "--config", "/etc/syncfs/share.toml"],
                     system=True)
    assert setting(text, "WantedBy") == "multi-user.target"
    assert setting(text, "After") == "network-online.target" and setting(text, "Wants") == "network-online.target"
    assert exec_words(setting(text, "ExecStart")) == [
        "/usr/local/bin/syncfs", "mount", "/srv/share", "--foreground", "--config", "/etc/syncfs/share.toml"]


def test_a_line_break_cannot_go_into_a_unit():
    with pytest.raises(ServiceError, match="line break"):
        exec_line(["/bin/x", "a\nb"])


def _analyze_verify(unit_file: Path, *, user: bool, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        if IN_CI:
            pytest.fail("systemd-analyze is required under CI (Debian package systemd)", pytrace=False)
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}  # a user manager's, even where none runs
    return subprocess.run([tool, *(["--user"] if user else []), "verify", str(unit_file)],
                          capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("system", [False, True])
def test_the_generated_unit_passes_systemd_analyze_verify(tmp_path, system):
    mnt = tmp_path / "My 100% Share"
    mnt.mkdir()
    how = ["--system"] if system else []
    done = syncfs_cli("service", "install", str(mnt), *how, "--print", "--tracker", TOKEN, "--on-demand",
                      "--listen", "127.0.0.12", "--cache-dir", str(tmp_path / "cache dir"))
    assert done.returncode == 0, done.stderr
    units = tmp_path / "units"
    units.mkdir()
    unit = units / unit_name(str(mnt))
    unit.write_text(done.stdout)
    checked = _analyze_verify(unit, user=not system, tmp_path=tmp_path)
    assert checked.returncode == 0 and checked.stderr == "", checked.stderr
    # and it does check: a unit whose program is missing, or with a bad setting, is refused
    unit.write_text(done.stdout.replace(service.syncfs_command()[0], "/nonexistent/syncfs"))
    assert _analyze_verify(unit, user=not system, tmp_path=tmp_path).returncode != 0
    unit.write_text(done.stdout.replace("Restart=on-failure", "Restart=sometimes"))
    assert "sometimes" in _analyze_verify(unit, user=not system, tmp_path=tmp_path).stderr


def test_install_checks_the_mount_options_and_the_directory(tmp_path):
    done = syncfs_cli("service", "install", str(tmp_path), "--bogus")
    assert done.returncode == 2 and "--bogus" in done.stderr
    done = syncfs_cli("service", "install", str(tmp_path / "missing"))
    assert done.returncode == 1 and "does not exist" in done.stderr


def _offline_env(tmp_path: Path) -> dict[str, str]:
    """A user whose systemd cannot be reached: its config under tmp_path, no session bus."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "DBUS_SESSION_BUS_ADDRESS"}
    return {**env, "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_RUNTIME_DIR": str(runtime)}


def test_install_and_remove_without_a_reachable_systemd(tmp_path):
    mnt = tmp_path / "my share"
    mnt.mkdir()
    env = _offline_env(tmp_path)
    run = [sys.executable, "-m", "syncfs", "service"]
    done = subprocess.run([*run, "install", str(mnt), "--tracker", TOKEN], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    name = unit_name(str(mnt))
    unit = tmp_path / "config" / "systemd" / "user" / name
    assert unit.read_text().startswith("# Written by `syncfs service install DIR`")
    assert unit.stat().st_mode & 0o077 == 0  # it holds the token
    link = unit.parent / "default.target.wants" / name
    assert link.is_symlink() and link.resolve() == unit
    assert "systemd is not reachable" in done.stderr
    assert f"systemctl --user daemon-reload && systemctl --user start '{name}'" in done.stderr
    # installing again replaces it
    done = subprocess.run([*run, "install", str(mnt), "--on-demand"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--on-demand" in unit.read_text() and TOKEN not in unit.read_text()

    done = subprocess.run([*run, "remove", str(mnt)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not unit.exists() and not link.is_symlink()
    assert f"systemctl --user stop '{name}' && systemctl --user daemon-reload" in done.stderr
    done = subprocess.run([*run, "remove", str(mnt)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1 and "no syncfs service for" in done.stderr


def test_a_system_unit_goes_to_the_given_directory(tmp_path):
    mnt = tmp_path / "srv"
    mnt.mkdir()
    units = tmp_path / "etc-systemd-system"
    text = unit_text(str(mnt), ["/usr/local/bin/syncfs"], [], system=True)
    assert service.install(str(mnt), text, units, ["false"], system=True) == 0
    assert (units / "multi-user.target.wants" / unit_name(str(mnt))).resolve() == units / unit_name(str(mnt))
    assert service.remove(str(mnt), units, ["false"]) == 0
    assert list(units.rglob("*.service")) == []
