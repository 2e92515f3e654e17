"""Autoscaling under `redline up`: a service with ``autoscale`` is resized from its queue's
backlog, by the policy the cscale agent runs (`redline.scaling.autoscale`).

Every ``interval`` seconds the scaler reads the queue's counts (one ``queue_info`` call),
asks the policy, and resizes the group: up at once, down one replica at a time after
``downAfter`` seconds of less need (no flapping). Each decision is logged and written where
`redline status` shows it, as the cscale agent's are: the desired count in ``redline:scale``,
the policy in ``redline:cscale:specs`` (so the queue is shown) and the decision in
``redline:cscale:events``. `redline up` owns these counts while it runs and removes its
entries when it stops.
"""

from __future__ import annotations

import json
import logging
import socket

from redis.exceptions import RedisError

from redline.connection import SyncClient, text
from redline.queue import SyncReliableQueue
from redline.runtime.lifecycle import ids_key, instance_key
from redline.scaling.autoscale import Autoscaler, backlog
from redline.scaling.cscale import DESIRED_KEY, EVENTS_KEPT, EVENTS_KEY, SPECS_KEY, event_json
from redline.scaling.up import Group

__all__ = ["UpScaler", "bury"]

log = logging.getLogger(__name__)


class UpScaler:
    """Resizes `group` (whose plan has an autoscale policy) from its queue's backlog."""

    def __init__(self, client: SyncClient, group: Group, grace: float) -> None:
        assert group.plan.autoscale is not None, "only a plan with `autoscale` is scaled"
        self.client, self.group, self.grace = client, group, grace
        self.policy = group.plan.autoscale
        self.autoscaler = Autoscaler(self.policy)
        self.queue = SyncReliableQueue(client)
        self.next_eval = 0.0

    @property
    def namespace(self) -> str:
        return self.group.plan.namespace

    def publish(self) -> None:
        """Show the service's policy and count to `redline status` (at start)."""
        spec = {"autoscale": self.policy.model_dump(by_alias=True), "up": True}
        self.client.hset(SPECS_KEY, self.namespace, json.dumps(spec))
        self.client.hset(DESIRED_KEY, self.namespace, self.group.plan.replicas)

    def withdraw(self) -> None:
        """Remove what `publish` wrote (at stop)."""
        self.client.hdel(SPECS_KEY, self.namespace)
        self.client.hdel(DESIRED_KEY, self.namespace)

    def tick(self, now: float) -> None:
        """Decide, when an interval has passed; a Redis error skips this evaluation."""
        if now < self.next_eval:
            return
        self.next_eval = now + self.policy.interval
        try:
            length = backlog(self.queue.info(self.policy.queue))
        except RedisError as exc:
            log.warning("up autoscale service=%s: cannot read the queue: %r", self.namespace, exc)
            return
        current = len(self.group.replicas)
        decision = self.autoscaler.decide(now, length, current)
        if decision is None:
            return
        self.group.resize(decision.replicas, self.grace)
        message = f"autoscale {current} -> {decision.replicas}: {decision.reason}"
        log.info("up ns=%s %s", self.namespace, message)
        try:
            self._record(decision.replicas, message)
        except RedisError as exc:
            log.warning("up autoscale service=%s: cannot record: %r", self.namespace, exc)

    def _record(self, replicas: int, message: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(DESIRED_KEY, self.namespace, replicas)
        pipe.lpush(EVENTS_KEY, event_json(self.namespace, message, agent="up"))
        pipe.ltrim(EVENTS_KEY, 0, EVENTS_KEPT - 1)
        pipe.execute()


def bury(client: SyncClient, namespace: str, pid: int) -> list[str]:
    """Drop the registration of `namespace`'s instance that ran as `pid` on this machine and
    died (its hash and its id), so that `redline status` and the replicas' peers see it gone
    at once rather than when its hash expires; returns the keys deleted."""
    host, gone = socket.gethostname().encode(), []
    for raw in client.lrange(ids_key(namespace), 0, -1):
        ident = text(raw)
        key = instance_key(namespace, ident)
        if client.hmget(key, "host", "pid") == [host, str(pid).encode()]:
            client.delete(key)
            client.lrem(ids_key(namespace), 0, ident)
            gone.append(key)
    return gone
