"""Settings from the environment only; every NAME may instead come from the file in NAME_FILE."""
import os
from dataclasses import dataclass


class ConfigError(RuntimeError):
    pass


def setting(name, environ=None, default=None, required=False):
    """Value of NAME, or the content of the file named by NAME_FILE (trailing newline removed)."""
    environ = os.environ if environ is None else environ
    value, path = environ.get(name), environ.get(name + "_FILE")
    if value and path:
        raise ConfigError(f"both {name} and {name}_FILE are set; use one")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                value = handle.read().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    if not value:
        if required:
            raise ConfigError(f"{name} (or {name}_FILE) must be set")
        return default
    return value


@dataclass(frozen=True)
class Settings:
    database_url: str
    broker_url: str
    release: str = "dev"
    beat_interval: float = 10.0

    @classmethod
    def from_env(cls, environ=None):
        interval = setting("BEAT_INTERVAL_SECONDS", environ, default="10")
        try:
            beat_interval = float(interval)
        except ValueError:
            raise ConfigError(f"BEAT_INTERVAL_SECONDS must be a number, not {interval!r}") from None
        if beat_interval <= 0:
            raise ConfigError("BEAT_INTERVAL_SECONDS must be greater than 0")
        return cls(
            database_url=setting("DATABASE_URL", environ, required=True),
            broker_url=setting("CELERY_BROKER_URL", environ, required=True),
            release=setting("APP_RELEASE", environ, default="dev"),
            beat_interval=beat_interval,
        )
