"""Every setting of an installation, in one typed object read from ``RECOMMENDER_*`` variables.

pydantic-settings parses and checks the environment (a bad number is refused
with the variable's name), so no module reads ``os.environ`` itself.  Building
the object costs about a millisecond and a page run asks for it many times, so
:func:`get_settings` keeps the last one built for as long as what it was built
from (the ``RECOMMENDER_*`` variables, the working folder and its
``recommender.env``) is unchanged: tests and the CLI can still change the
environment between calls.
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "RECOMMENDER_"


class SettingsError(ValueError):
    """A ``RECOMMENDER_*`` variable holds a value that cannot be used."""


class Settings(BaseSettings):
    """Where things live and how the installation behaves."""

    # A clinic may also keep its settings in a `recommender.env` file in the working folder.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", env_file="recommender.env",
                                      frozen=True)

    data_dir: Path = Field(default_factory=lambda: Path.cwd() / "data",
                           description="Folder of the SQLite database, the audit key and the chain head.")
    model_dir: Path = Field(default_factory=lambda: Path.cwd() / "models",
                            description="Folder of model artifacts and their cards.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in the data folder. "
                                                       "PostgreSQL: `postgresql+psycopg://user@host/db`.")
    audit_key_file: Path | None = Field(None, description="HMAC key of the audit chain; default "
                                                          "`audit.key` in the data folder. Keep it off the database host.")
    audit_head_file: Path | None = Field(None, description="Chain head kept outside the database; "
                                                           "default `audit-head.json` in the data folder.")
    signing_key_file: Path | None = Field(None, description="HMAC key that signs model cards; default "
                                                            "`model-signing.key` in the data folder. Keep it outside the models folder.")
    demo: bool = Field(True, description="Seed a demo clinic on the app's first start, into a new, "
                                         "empty database only. Set `0` in production.")
    clinic_name: str = Field("Pain therapy clinic", description="Clinic name on the patient handout.")
    clinic_contact: str = Field("Call the clinic reception with any question.",
                                description="Contact line on the patient handout.")
    clinic_timezone: str = Field("UTC", description="IANA time zone in which the app shows times.")
    max_file_mb: float = Field(50.0, description="Largest contract file accepted, in MB.")
    idle_minutes: float = Field(15.0, description="Idle minutes before the app signs a user out.")
    demo_episodes: int = Field(4000, description="Simulated past episodes seeded into a new demo clinic.")
    start_worker: bool = Field(True, description="The app starts the job worker (`recommender worker`) "
                                                 "when no worker runs. Set `0` where the worker runs as "
                                                 "its own service.")
    app_threads: int = Field(1, description="OpenMP/BLAS threads per app process (each user's "
                                            "request is one thread of it).")
    worker_threads: int = Field(1, description="OpenMP/BLAS threads of the job worker (training, "
                                               "evaluation).")
    worker_nice: int = Field(10, description="CPU priority the job worker gives up (`nice`, 0–19): "
                                             "therapists' clicks go before a training on a busy machine.")
    password: SecretStr | None = Field(None, description="CLI: password of `--user` (else a prompt).")
    new_password: SecretStr | None = Field(None, description="CLI: the new password for `users add` "
                                                             "and `users reset-password` (else a prompt).")

    @field_validator("clinic_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)") from None
        return value

    @field_validator("app_threads", "worker_threads")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("worker_nice")
    @classmethod
    def _nice_range(cls, value: int) -> int:
        if not 0 <= value <= 19:
            raise ValueError("must be between 0 and 19")
        return value

    @field_validator("max_file_mb", "idle_minutes")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            raise ValueError("must be a positive number")
        return value

    @property
    def resolved_audit_key_file(self) -> Path:
        return self.audit_key_file or self.data_dir / "audit.key"

    @property
    def resolved_signing_key_file(self) -> Path:
        return self.signing_key_file or self.data_dir / "model-signing.key"

    @property
    def resolved_audit_head_file(self) -> Path:
        return self.audit_head_file or self.data_dir / "audit-head.json"


_built: tuple[tuple, Settings] | None = None
_building = threading.Lock()


def _sources() -> tuple:
    """What the settings are read from, cheaply: a change in any of it builds them again."""
    cwd = os.getcwd()
    try:
        env_file = os.stat(os.path.join(cwd, "recommender.env"))
        file_key = (env_file.st_mtime_ns, env_file.st_size, env_file.st_ino)
    except OSError:
        file_key = None
    variables = tuple(sorted((k, v) for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX)))
    return cwd, file_key, variables


def get_settings() -> Settings:
    """The settings now in force; a bad variable raises :class:`SettingsError` naming it."""
    global _built
    key = _sources()
    built = _built
    if built is not None and built[0] == key:
        return built[1]
    with _building:
        try:
            settings = Settings()
        except ValidationError as exc:
            problems = "; ".join(f"{ENV_PREFIX}{str(e['loc'][0]).upper()}: {e['msg']}" for e in exc.errors())
            raise SettingsError(f"invalid setting: {problems}") from None
        _built = (key, settings)
    return settings


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def settings_table() -> str:
    """The README's settings table, generated from the fields above (a test keeps them equal)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    defaults = {"data_dir": "`./data`", "model_dir": "`./models`"}
    for name, field in Settings.model_fields.items():
        default = defaults.get(name) or ("—" if field.default is None else f"`{field.default}`")
        lines.append(f"| `{env_name(name)}` | {default} | {field.description} |")
    return "\n".join(lines)
