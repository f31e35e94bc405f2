"""Mount configuration: flags over --config FILE over the user's config.toml."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from harness import require_fuse, wait_for

from syncfs import config
from syncfs.config import ConfigError


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    return tmp_path


def test_seed_config_dat_form(home):
    dat = home / "config.dat"
    dat.write_text("directory=../Documents/mydirectory\ntrackerIP=192.23.7.106\n")
    cfg = config.build({}, str(dat))
    assert cfg.tracker == "192.23.7.106"
    assert cfg.directory == str((home / "../Documents/mydirectory").resolve())


def test_flags_win_over_files_and_files_over_user_config(home):
    user = config.user_config_file()
    user.parent.mkdir(parents=True)
    user.write_text('tracker = "user-host:1"\nlisten = "127.0.0.5"\nsecret = "from-user"\n')
    extra = home / "share.toml"
    extra.write_text('tracker = "file-host:2"\n')
    cfg = config.build({"tracker": None, "secret": "from-flag"}, str(extra))
    assert (cfg.tracker, cfg.listen, cfg.secret) == ("file-host:2", "127.0.0.5", "from-flag")


@pytest.mark.parametrize(
    "text, why", [("nonsense\n", "key=value"), ("colour=blue\n", "unknown setting")]
)
def test_bad_config_files_are_refused(home, text, why):
    bad = home / "bad.dat"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=why):
        config.build({}, str(bad))


@pytest.mark.parametrize("value", ['"soon"', "[30]", "{ s = 30 }"])
def test_a_fetch_timeout_that_is_no_number_is_refused(home, value):
    bad = home / "bad.toml"
    bad.write_text(f"fetch_timeout = {value}\n")
    with pytest.raises(ConfigError, match="fetch_timeout must be a number"):
        config.build({}, str(bad))


def test_split_host_port():
    assert config.split_host_port("h:12", 7) == ("h", 12)
    assert config.split_host_port("h", 7) == ("h", 7)
    assert config.split_host_port("[::1]:9", 7) == ("::1", 9)
    with pytest.raises(ConfigError):
        config.split_host_port("h:x", 7)


def test_cache_size_takes_sizes_and_needs_on_demand(home):
    assert config.parse_size("200M") == 200 << 20
    assert config.parse_size("1.5GiB") == 3 << 29
    assert config.parse_size("4096") == 4096
    for bad in ("lots", "-1M", "0", ""):
        with pytest.raises(ConfigError, match="bad size"):
            config.parse_size(bad)
    toml = home / "share.toml"
    toml.write_text('on_demand = true\ncache_size = "2G"\n')
    assert config.build({}, str(toml)).cache_size == 2 << 30
    with pytest.raises(ConfigError, match="--cache-size needs --on-demand"):
        config.build({"cache_size": 1 << 20}, None)


@pytest.mark.timeout(60)
def test_mount_without_tracker_starts_a_local_one(home, tmp_path):
    """The embedded default: no --tracker starts a tracker on this machine, with its secret."""
    require_fuse()
    port = _free_port()
    env = dict(os.environ, SYNCFS_LOCAL_TRACKER_PORT=str(port))
    first, second = tmp_path / "shared", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    state = Path(env["XDG_DATA_HOME"]) / "syncfs" / "tracker"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "syncfs", "mount", str(first)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        assert os.path.ismount(first)
        assert (state / "secret").stat().st_mode & 0o777 == 0o600
        (first / "works").write_text("yes")
        assert (state / "invite").stat().st_mode & 0o777 == 0o600
        token = (state / "invite").read_text().strip()
        assert token.startswith("syncfs://") and f"@127.0.0.1:{port}/" in token
        # a second peer given the local tracker's join token sees the file
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "syncfs",
                "mount",
                str(second),
                "--tracker",
                token,
                "--listen",
                "127.0.0.21",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        wait_for(
            lambda: (second / "works").read_text() == "yes", what="the file on the second mount"
        )
    finally:
        for mnt in (first, second):
            subprocess.run(["fusermount3", "-u", str(mnt)], timeout=30, capture_output=True)
            if os.path.ismount(mnt):
                subprocess.run(["fusermount3", "-u", "-z", str(mnt)], timeout=30)
        pid_file = state / "tracker.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_local_tracker_port_from_flags_and_files(home):
    toml = home / "share.toml"
    toml.write_text("local_tracker_port = 7444\n")
    assert config.build({}, str(toml)).local_tracker_port == 7444
    assert config.build({"local_tracker_port": 7555}, str(toml)).local_tracker_port == 7555
    for bad in ("0", "70000", '"x"'):
        toml.write_text(f"local_tracker_port = {bad}\n")
        with pytest.raises(ConfigError, match="local_tracker_port must be a port number"):
            config.build({}, str(toml))
