"""How redline derives a key from a user's name, and where each family of keys is named.

Redis Cluster hashes a key on the part inside its first ``{...}`` when there is one, else on the
whole name. So a queue ``orders`` and its derived key ``{orders}:inflight`` share a slot, and a
name that already carries a tag (``{demo:mpush}:in``) keeps it in every derived key. `derived`
is that rule, and the only place that applies it.

Each family of keys is named in the one module that owns it: its functions or constants build
every name of the family, and no other module does.

- a queue's keys (``{q}:inflight``, ``{q}:dead``, …): `redline.queue.model.QueueKeys`
- lifecycle (``<ns>:id``, ``<ns>:<id>``, ``<ns>:ids``, ``redline:registry``):
  `redline.runtime.lifecycle`
- message tracking (``<ns>:message:…``): `redline.runtime.tracking`
- metrics and recent errors (``<ns>:metrics:<name>``, ``<ns>:errors``): `redline.runtime.metrics`
- desired counts and active slots (``redline:scale``, ``{ns}:cscale:active``):
  `redline.runtime.desired`
- the cscale control plane (``redline:cscale:…``, ``{ns}:cscale:lock`` …):
  `redline.scaling.cscale`; rollouts (``{ns}:cscale:spec``, ``…:revision``, ``…:revisions``,
  ``…:good``, ``…:rollout``): `redline.scaling.rollout`
- pending lists (``{<pending>}:<id>``, ``…:instances``, ``…:dead``, default ``{in}:pending``):
  `redline.services.pending`
- vpush transfers (``{in}:vpush:…``, ``{out}:vpush:<transfer>``): `redline.services.vpush`
- rquery's error list (``{in}:errors``): `redline.rquery.service`
- jobs (``{q}:job:<id>``, ``{q}:job-stats`` …): `redline.jobs.document`; priorities
  (``{q}:priority:<n>``, ``{q}:job-priorities``, the scheduled set per priority):
  `redline.jobs.priority`; limits (``{q}:job-concurrency:…``, ``{q}:job-rate:…``):
  `redline.jobs.limits`; replace and debounce (``{q}:job-pending:<key>``):
  `redline.jobs.placement`; the served queues (``redline:jobs:queues``): `redline.jobs.worker`;
  cron (``redline:cron:…``): `redline.jobs.cron`; workflows (``{wf:<id>}:…``,
  ``{q}:job-wf:<id>``, ``redline:workflows``): `redline.jobs.workflow.state`
- Sidekiq's own layout (``queue:<name>``, ``queues``, ``schedule``, ``retry``, ``dead``,
  ``processes``): `redline.jobs.sidekiq.job`; a process's heartbeat and the daily stats
  (``<identity>:workers``, ``stat:…``): `redline.jobs.sidekiq.process`; the in-flight lists
  and recoveries (``redline:sidekiq:…``): `redline.jobs.sidekiq.fetch`
- HTTP reply lists (``<replies>:<instance>``): `redline.http.himporter`
"""

from __future__ import annotations

import binascii

from redline.errors import CrossSlotError

__all__ = ["derived", "hash_slot", "hash_tag", "require_same_slot", "tagged"]


def hash_tag(name: str) -> str:
    """The part of `name` that Redis Cluster hashes (the tag if it has one, else the name)."""
    start = name.find("{")
    if start != -1:
        end = name.find("}", start + 1)
        if end > start + 1:
            return name[start + 1 : end]
    return name


def tagged(name: str) -> str:
    """`name` in a form whose suffixes keep its slot: ``orders`` → ``{orders}``."""
    if hash_tag(name) != name:
        return name
    return "{" + name + "}"


def derived(name: str, *suffix: str) -> str:
    """A key in the slot of `name`: ``derived("orders", "dead")`` → ``{orders}:dead``."""
    return ":".join([tagged(name), *suffix])


def hash_slot(key: str) -> int:
    """The Redis Cluster slot of `key` (CRC16/XMODEM of its hash tag, mod 16384)."""
    return binascii.crc_hqx(hash_tag(key).encode(), 0) % 16384


def require_same_slot(what: str, keys: dict[str, str]) -> None:
    """Refuse keys (role → name) that one atomic operation cannot use together on a cluster."""
    slots = {role: hash_slot(key) for role, key in keys.items()}
    if len(set(slots.values())) <= 1:
        return
    listing = ", ".join(f"{role}={keys[role]!r} (slot {slot})" for role, slot in slots.items())
    raise CrossSlotError(
        f"{what}: keys must share one cluster slot but do not: {listing}. "
        "Give them a common hash tag, e.g. '{app}:in' and '{app}:out'."
    )
