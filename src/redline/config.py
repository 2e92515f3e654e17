"""Service configuration: one file (TOML or JSON) per service, overridable, validated once.

Field names in files are the seed's camelCase (``popTimeout``, ``serviceNamespace``); in Python
they are snake_case attributes. Every field can be overridden by an environment variable
``REDLINE_<FIELD>`` (``REDLINE_POP_TIMEOUT=5``) and by ``--set field=value`` on the command line,
values read as JSON when they parse (``--set 'out=["a","b"]'``) and as plain strings otherwise.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from redline.errors import ConfigError

__all__ = ["ServiceConfig", "env_name", "is_secret", "load_config"]

C = TypeVar("C", bound=BaseModel)

_SECRET = re.compile(r"password|secret|token", re.IGNORECASE)


def is_secret(field_name: str) -> bool:
    """True for a field whose value is never shown (a password, a secret, a token)."""
    return bool(_SECRET.search(field_name))


class ServiceConfig(BaseModel):
    """Fields every service has. Services subclass it with their own fields."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    redis: str | None = Field(None, description="Redis URL; none: the default or embedded server")
    pop_timeout: float = Field(10, alias="popTimeout", gt=0, description="seconds a pop blocks")
    service_namespace: str | None = Field(
        None,
        alias="serviceNamespace",
        validation_alias=AliasChoices("serviceNamespace", "redisNamespace", "service_namespace"),
        description="prefix of lifecycle, tracking and metrics keys",
    )
    service_redis: str | None = Field(None, alias="serviceRedis")
    service_expire: int = Field(60, alias="serviceExpire", gt=0)
    service_renew: float = Field(15, alias="serviceRenew", gt=0)
    service_capacity: int = Field(10, alias="serviceCapacity", gt=0)
    service_standby: bool = Field(
        False,
        alias="serviceStandby",
        description="wait as a standby for an active slot when cscale scales the namespace",
    )
    service_revision: int = Field(
        0,
        alias="serviceRevision",
        ge=0,
        description="the deploy revision this instance runs (cscale sets it; 0: none)",
    )


def env_name(field_alias: str) -> str:
    """``popTimeout`` → ``REDLINE_POP_TIMEOUT``."""
    return "REDLINE_" + re.sub(r"(?<!^)(?=[A-Z])", "_", field_alias).upper()


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"config file {str(path)!r}: cannot read it ({exc.strerror})"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"config file {str(path)!r}: not UTF-8 text ({exc.reason})"]) from None
    kind = "TOML" if path.suffix == ".toml" else "JSON"
    try:
        data = tomllib.loads(text) if kind == "TOML" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError([f"config file {str(path)!r}: not valid {kind}: {exc}"]) from exc
    except RecursionError:  # hostile input: nesting deeper than the parser can follow
        raise ConfigError([f"config file {str(path)!r}: {kind} nested too deeply"]) from None
    if not isinstance(data, dict):
        raise ConfigError([f"config file {str(path)!r}: expected an object of fields at top level"])
    return data


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _overrides(
    model: type[BaseModel], env: Mapping[str, str], sets: Iterable[str]
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        alias = field.alias or name
        if env_name(alias) in env:
            found[alias] = _value(env[env_name(alias)])
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError([f"--set {item!r}: expected field=value"])
        found[key.strip()] = _value(text)
    return found


def _problem(model: type[BaseModel], error: Any, data: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "missing":
        return f"{where}: missing — a value is required"
    if error["type"] == "extra_forbidden":
        fields = sorted(f.alias or n for n, f in model.model_fields.items())
        close = difflib.get_close_matches(where, fields, n=1)
        meant = f"did you mean {close[0]!r}? " if close else ""
        return f"{where}: {error['input']!r} — unknown field ({meant}known: {', '.join(fields)})"
    value = error.get("input")
    shown = "***" if is_secret(where) else repr(value)
    return f"{where}: {shown} — {error['msg']}"


def load_config(
    model: type[C],
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    sets: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
) -> C:
    """Read, merge (defaults < file < env < --set) and validate.

    Raises ConfigError listing every problem, one line each.
    """
    data: dict[str, Any] = dict(defaults or {})
    if path is not None:
        data.update(_read_file(path))
    data.update(_overrides(model, env or {}, sets))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_problem(model, e, data) for e in exc.errors()]) from None
