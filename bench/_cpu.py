"""CPU seconds a benchmark counts rather than times: a process tree's (from /proc) and the
server's (INFO cpu). Shared by bench/drain.py and the jobs benchmark's feature rows."""

from __future__ import annotations

import os

import redis


def tree_cpu(pid: int) -> float:
    """CPU seconds of process `pid` and its children (the --processes supervisor's workers)."""
    tick, total, todo = os.sysconf("SC_CLK_TCK"), 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            with open(f"/proc/{current}/task/{current}/children") as children:
                todo += [int(child) for child in children.read().split()]
        except FileNotFoundError:  # ended meanwhile
            pass
    return total


def server_cpu(client: redis.Redis) -> float:
    """CPU seconds the server has used (user + system), from INFO cpu."""
    cpu: dict[str, float] = client.info("cpu")
    return cpu["used_cpu_user"] + cpu["used_cpu_sys"]
