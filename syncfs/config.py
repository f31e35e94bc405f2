"""Mount options from flags, a TOML file and the seed's plain ``config.dat``; flags win."""

import dataclasses
import hashlib
import tomllib
from pathlib import Path

import platformdirs

DEFAULT_TRACKER_PORT = 7370
LOCAL_TRACKER_HOST = "127.0.0.1"


class ConfigError(Exception):
    """A configuration file or option is unusable; the message says which and why."""


@dataclasses.dataclass
class MountConfig:
    directory: str | None = None
    tracker: str | None = None
    listen: str | None = None
    cache_dir: str | None = None
    secret: str | None = None
    log_file: str | None = None
    log_level: str = "INFO"
    on_demand: bool = False
    fetch_timeout: float = 30.0
    keep_replaced: float = 60.0
    max_rate: float = 0.0
    cache_size: int = 0
    token: str | None = None
    allow_other: bool = False
    advertise: str | None = None
    local_tracker_port: int = 0  # 0: $SYNCFS_LOCAL_TRACKER_PORT, else DEFAULT_TRACKER_PORT


# config.dat keys (the seed's form) and TOML keys, mapped to MountConfig fields
_KEYS = {
    "directory": "directory",
    "trackerip": "tracker",
    "tracker": "tracker",
    "listen": "listen",
    "cache_dir": "cache_dir",
    "cachedir": "cache_dir",
    "secret": "secret",
    "log_file": "log_file",
    "log_level": "log_level",
    "on_demand": "on_demand",
    "fetch_timeout": "fetch_timeout",
    "keep_replaced": "keep_replaced",
    "max_rate": "max_rate",
    "cache_size": "cache_size",
    "token": "token",
    "allow_other": "allow_other",
    "advertise": "advertise",
    "local_tracker_port": "local_tracker_port",
}


def user_config_file() -> Path:
    return Path(platformdirs.user_config_dir("syncfs")) / "config.toml"


def read_config_file(path: Path) -> dict[str, object]:
    """Read a TOML file, or a ``key=value`` file such as the seed's config.dat, into
    MountConfig field names and values of those fields' types."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    raw: dict[str, object]
    if path.suffix == ".toml":
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    else:
        raw = {}
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, setting = line.partition("=")
            if not sep:
                raise ConfigError(f"{path}:{n}: expected key=value")
            raw[key.strip()] = setting.strip()
    out: dict[str, object] = {}
    base = path.parent
    for key, value in raw.items():
        field = _KEYS.get(key.lower())
        if field is None:
            raise ConfigError(f"{path}: unknown setting {key!r}")
        if field in ("on_demand", "allow_other"):
            out[field] = str(value).lower() in ("1", "true", "yes", "on")
            continue
        if field in ("fetch_timeout", "keep_replaced"):
            bad_timeout = ConfigError(f"{path}: {field} must be a number of seconds")
            # a TOML list or table would make float() raise TypeError, not ValueError
            if not isinstance(value, str | int | float):
                raise bad_timeout
            try:
                out[field] = float(value)
            except ValueError:
                raise bad_timeout from None
            continue
        if field == "local_tracker_port":
            out[field] = parse_port(value, f"{path}: local_tracker_port")
            continue
        if field == "max_rate":
            out[field] = parse_rate(str(value))
            continue
        if field == "cache_size":
            out[field] = parse_size(str(value))
            continue
        text_value = str(value)
        if field in ("directory", "cache_dir", "log_file"):
            text_value = str((base / Path(text_value).expanduser()).resolve()) if not Path(text_value).expanduser().is_absolute() else str(Path(text_value).expanduser())
        out[field] = text_value
    return out


def build(flags: dict[str, object], config_file: str | None) -> MountConfig:
    cfg = MountConfig()
    sources: list[dict[str, object]] = []
    default_file = user_config_file()
    if default_file.exists():
        sources.append(read_config_file(default_file))
    if config_file:
        sources.append(read_config_file(Path(config_file)))
    sources.append({k: v for k, v in flags.items() if v is not None})
    for source in sources:
        for key, value in source.items():
            setattr(cfg, key, value)
    if cfg.local_tracker_port:
        cfg.local_tracker_port = parse_port(cfg.local_tracker_port)
    if cfg.cache_size and not cfg.on_demand:
        raise ConfigError("--cache-size needs --on-demand: a full mount keeps every file")
    return cfg


def parse_port(value: object, what: str = "--local-tracker-port") -> int:
    """A TCP port, 1..65535, from a number or its text."""
    try:
        port = int(str(value))
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise ConfigError(f"{what} must be a port number (1..65535), not {value!r}")
    return port


def parse_rate(text: str) -> float:
    """Bytes per second from '500K', '20M', '1G' or a plain number; 0 means no limit."""
    value = _parse_bytes(text, text.strip().upper().removesuffix("/S"), "rate", "500K, 20M or 1G (bytes per second)")
    if value < 0:
        raise ConfigError(f"bad rate {text!r}: must not be negative")
    return value


def parse_size(text: str) -> int:
    """Bytes from '200M', '1.5G', '500K' or a plain number (binary units)."""
    value = _parse_bytes(text, text.strip().upper().removesuffix("B").removesuffix("I"), "size", "500M or 2G")
    if value < 1:
        raise ConfigError(f"bad size {text!r}: must be at least one byte")
    return int(value)


def _parse_bytes(text: str, t: str, what: str, example: str) -> float:
    """``t`` (``text`` upper-cased and trimmed): a number, an optional binary unit (K, M,
    G, T) and an optional B."""
    t = t.removesuffix("B")
    unit = t[-1:] if t[-1:] in ("K", "M", "G", "T") else ""
    try:
        return float(t[: len(t) - len(unit)]) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[unit]
    except ValueError:
        raise ConfigError(f"bad {what} {text!r}: use e.g. {example}") from None


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        return text.strip("[]"), default_port
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise ConfigError(f"bad port in {text!r}") from None


def default_cache_dir(mountpoint: Path) -> Path:
    key = hashlib.sha256(str(mountpoint).encode()).hexdigest()[:16]
    return Path(platformdirs.user_data_dir("syncfs")) / "mounts" / key


def default_log_file(mountpoint: Path) -> Path:
    key = hashlib.sha256(str(mountpoint).encode()).hexdigest()[:16]
    return Path(platformdirs.user_state_dir("syncfs")) / f"mount-{key}.log"


def local_tracker_dir() -> Path:
    return Path(platformdirs.user_data_dir("syncfs")) / "tracker"
