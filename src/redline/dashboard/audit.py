"""The dashboard's audit trail: every action, who took it, from where and when.

Each action is logged (INFO, ``redline.dashboard.audit``) and kept in Redis, so the list
survives a restart of the dashboard and every dashboard process over one Redis shows the same:

- ``redline:dashboard:audit`` — a stream, one entry per action (its id says when), fields
  ``who`` (the basic-auth user name, ``token`` or ``anonymous``), ``addr`` (the client's
  address, as the dashboard saw it: behind a proxy, the proxy's), ``action`` and ``details``.
  Capped at `AUDIT_KEPT` entries: each new one drops the oldest beyond that.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError
from starlette.requests import Request

from redline.connection import AsyncClient, text
from redline.dashboard.security import who

__all__ = ["AUDIT", "AUDIT_KEPT", "AUDIT_KEY", "AuditEntry", "audit", "newest", "recent"]

AUDIT = logging.getLogger("redline.dashboard.audit")
AUDIT_KEY = "redline:dashboard:audit"
AUDIT_KEPT = 10_000  # actions kept in the stream (the oldest go first)


@dataclass(frozen=True)
class AuditEntry:
    """One action: when (epoch seconds, from the entry id), who, from where, what."""

    id: str
    t: float
    who: str
    addr: str
    action: str
    details: str

    @classmethod
    def of(cls, entry_id: Any, fields: dict[Any, Any]) -> AuditEntry:
        found = {text(k): text(v) for k, v in fields.items()}
        ident = text(entry_id)
        return cls(
            ident,
            int(ident.partition("-")[0]) / 1000,
            found.get("who", "?"),
            found.get("addr", "?"),
            found.get("action", "?"),
            found.get("details", ""),
        )


async def audit(request: Request, action: str, **details: Any) -> None:
    """Log `action` with who took it and keep it in the audit stream. The action is done by
    then: a failed write to Redis is logged (a warning) rather than failing the request."""
    actor = who(request)
    told = " ".join(f"{k}={v!r}" for k, v in details.items())
    AUDIT.info("%s by %s: %s", action, actor, told)
    name, _, addr = actor.rpartition("@")
    fields = {"who": name, "addr": addr, "action": action, "details": told}
    client: AsyncClient = request.app.state.redis
    try:
        await client.xadd(AUDIT_KEY, fields, maxlen=AUDIT_KEPT, approximate=False)  # type: ignore[arg-type]
    except (RedisError, OSError) as error:
        AUDIT.warning("%s by %s not kept in %s: %s", action, actor, AUDIT_KEY, error)


async def recent(client: AsyncClient, count: int) -> list[AuditEntry]:
    """The newest `count` actions, newest first."""
    found: list[Any] = await client.xrevrange(AUDIT_KEY, count=count)  # type: ignore[assignment]
    return [AuditEntry.of(entry_id, fields) for entry_id, fields in found]


async def newest(client: AsyncClient) -> str:
    """The id of the newest action ("" when none): it changes with every action."""
    found: list[Any] = await client.xrevrange(AUDIT_KEY, count=1)  # type: ignore[assignment]
    return text(found[0][0]) if found else ""
