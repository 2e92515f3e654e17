"""sregister: which services run, and their live instances — discovery read from Redis.

Every instance registers itself through the lifecycle (``<ns>:<id>`` hash with a TTL, its id in
``<ns>:ids``); lifecycle's start also records the namespace in one hash, ``redline:registry``
(field = namespace, value = JSON ``{"service": name, …}``), so a reader can find every service
without scanning keys. An instance that stops renewing disappears when its hash expires: listing
reads the ids and keeps only those whose hash still exists.

>>> await instances(client, "demo:mpush")       # the live instances of one namespace
>>> await peers(client, "hrouter")              # the live instances of a service, any namespace
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redline.connection import AsyncClient, text
from redline.runtime.lifecycle import ids_key, instance_key, registry_key

__all__ = [
    "Instance",
    "all_instances",
    "instances",
    "peers",
    "register_namespace",
    "retire",
    "services",
]


def _int(value: str | None) -> int:
    try:
        return int(float(value)) if value else 0
    except ValueError:
        return 0


@dataclass(frozen=True)
class Instance:
    """One live service instance, as its lifecycle hash describes it."""

    namespace: str
    id: str
    host: str
    pid: int
    started: int
    renewed: int
    service: str = ""
    version: str = ""
    serves: str = ""
    role: str = "active"
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The lifecycle hash; deleting it shuts the instance down cleanly."""
        return instance_key(self.namespace, self.id)

    @classmethod
    def from_hash(cls, namespace: str, ident: str, raw: Mapping[Any, Any]) -> Instance:
        """Build from an ``HGETALL`` reply (bytes or str keys)."""
        data = {text(k): text(v) for k, v in raw.items()}
        return cls(
            namespace,
            ident,
            host=data.get("host", ""),
            pid=_int(data.get("pid")),
            started=_int(data.get("started")),
            renewed=_int(data.get("renewed")),
            service=data.get("service", ""),
            version=data.get("version", ""),
            serves=data.get("serves", ""),
            role=data.get("role", "active"),
            fields=data,
        )


async def register_namespace(
    client: AsyncClient, namespace: str, service: str, **info: Any
) -> None:
    """Record that `namespace` holds instances of `service` (lifecycle's start does this for
    every instance; other tools can register a namespace of their own)."""
    await client.hset(registry_key(), namespace, json.dumps({"service": service, **info}))


async def services(client: AsyncClient) -> dict[str, dict[str, Any]]:
    """Every registered namespace → its registry record (``{"service": …}``), sorted by name."""
    raw = await client.hgetall(registry_key())
    found: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        try:
            record = json.loads(text(value))
        except json.JSONDecodeError:
            record = {}
        found[text(key)] = record if isinstance(record, dict) else {}
    return dict(sorted(found.items()))


async def instances(client: AsyncClient, namespace: str) -> list[Instance]:
    """The live instances of `namespace`, oldest first (hashes that expired are left out).

    Reads ``<ns>:ids``, so it sees at most ``serviceCapacity`` recent instances: give services
    that run many replicas a capacity above their replica count.
    """
    ids = [text(raw) for raw in await client.lrange(ids_key(namespace), 0, -1)]
    if not ids:
        return []
    pipe = client.pipeline(transaction=False)
    for ident in ids:
        pipe.hgetall(instance_key(namespace, ident))
    hashes = await pipe.execute()
    found = [
        Instance.from_hash(namespace, ident, raw)
        for ident, raw in zip(ids, hashes, strict=True)
        if any(text(name) == "pid" for name in raw)  # a stray half-written hash is no instance
    ]
    return sorted(found, key=lambda inst: (_int(inst.id), inst.id))


async def retire(client: AsyncClient, instance: Instance) -> None:
    """Stop `instance` the lifecycle way: delete its hash (it notices and shuts down cleanly)
    and drop its id from ``<ns>:ids``. Also right for an instance that died: no waiting for its
    hash to expire."""
    pipe = client.pipeline(transaction=False)
    pipe.delete(instance.key)
    pipe.lrem(ids_key(instance.namespace), 0, instance.id)
    await pipe.execute()


async def all_instances(client: AsyncClient) -> dict[str, list[Instance]]:
    """Every registered namespace → its live instances."""
    return {ns: await instances(client, ns) for ns in await services(client)}


async def peers(client: AsyncClient, service: str) -> list[Instance]:
    """The live instances of `service` (its registry name) in every namespace, e.g. to find the
    hrouter replicas a himporter can hand requests to."""
    found: list[Instance] = []
    for ns, record in (await services(client)).items():
        if record.get("service") == service:
            found.extend(await instances(client, ns))
    return found
