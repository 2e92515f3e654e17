"""The jobs' server-side functions: library `redline_jobs`, the admission (`job_admit.lua`).

Called as the queue's are (`redline.scripting.functions.Library`): FCALL where the server has
Functions, EVALSHA of the same file where it does not and on a cluster. As a function, the
Lua parts it includes (`_batch.lua`, `_job_slots.lua`, `_rate_log.lua`) are defined once, at
the library's top level, not made anew by every call.
"""

from __future__ import annotations

from redline.scripting.functions import Library

__all__ = ["LIBRARY"]

# Allowed at maxmemory, as the queue's consumers' functions are: an admission only decides
# what was already taken, and a full server must still be drained (under limits too).
# `job_admit`'s arguments are at version 2 (ARGV[2] names the slots' prefix and the starts
# asked ahead, where version 1 had a number): it is called as ``redline_job_admit_v2``, and
# ``redline_job_admit`` takes the calls of workers before it (docs/jobs.md, "Rolling upgrade").
LIBRARY = Library("redline_jobs", ["job_admit"], allow_oom=["job_admit"], versions={"job_admit": 2})
