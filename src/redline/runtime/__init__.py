"""What every service process shares: its context, the runner, lifecycle, metrics, message
tracking, standby, and `assemble`, the one way a process is put together.

>>> assembly = assemble("mpush", config, queue=config.in_, serves="in -> out")
>>> await run_service(service, config, assembly.hooks(service_hook), stopping)
"""

from __future__ import annotations

from redline.runtime.assembly import Assembly, assemble, namespace_of
from redline.runtime.context import Context, Hook, Service
from redline.runtime.runner import run_service

__all__ = ["Assembly", "Context", "Hook", "Service", "assemble", "namespace_of", "run_service"]
