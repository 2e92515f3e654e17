"""How `pytest -n N` hands tests to its workers: the longest first, one test at a time (a module
whose tests share a module-scoped fixture as one unit), so a long test never starts last and
keeps the other workers waiting for it.

xdist's own `--dist loadgroup` would do the grouping, but it marks a group in the test's node
id, which pytest 9.2 no longer lets it change (pytest-xdist issue 1386): this is its
scheduler with the groups named here.
"""

from __future__ import annotations

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling

# The longest tests (over ~10 s on CI; `make test` prints each step's slowest), longest first;
# a module's path stands for all its tests. The order of the rest is pytest's.
LONGEST_FIRST = (
    "tests/queue/test_crash.py::test_sigkilled_consumers_lose_nothing",  # the Redis 7 pass
    "tests/jobs/test_workflow_processes.py::test_a_chord_of_2000",
    "tests/jobs/test_limits_processes.py::test_a_cap_holds_across_killed_workers",
    "tests/jobs/sidekiq/test_ruby.py::test_ruby_push_bulk_jobs_survive",
    "tests/jobs/test_worker_processes.py::test_sigkilled_workers_lose_no_job",
    "tests/hardening/test_atheris.py",
    "tests/queue/test_model.py",
    "tests/jobs/test_retention.py::test_a_flood_of_poison_jobs_keeps_the_cap",
    "tests/jobs/test_supervisor.py::test_max_jobs_recycles_children",
    "tests/hardening/test_fuzz.py",
    "tests/http/test_website.py",
    "tests/dashboard/test_busy_browser.py",
    "tests/jobs/test_workflow_processes.py::test_a_chain_of_50",
    "tests/integrations/test_django.py",
    "tests/jobs/test_limit_use.py::test_slots_held_and_starts_in_the_window",
    "tests/integrations/test_otel_chain.py",
    "tests/dashboard/test_audit.py::test_actions_are_shared_and_survive_a_restart",
    "tests/hardening/test_secrets.py",
    "tests/hardening/test_secrets_dashboard.py",
    "tests/jobs/test_limits_processes.py::test_a_rate_limit_holds_across_two_workers",
    "tests/hardening/test_failover.py",
    "tests/jobs/test_workflow_processes.py::test_a_worker_killed_between",
    "tests/jobs/test_supervisor.py::test_by_default_one_child_per_core",
    "tests/jobs/sidekiq/test_worker.py::test_sigterm_returns_the_job_in_hand",
    "tests/integrations/test_starlette.py",
    "tests/hardening/test_fuzz_http.py",
    "tests/hardening/test_tls_services.py",
    "tests/test_cscale_agents.py::test_autoscaling_follows_a_burst",
    "tests/jobs/test_worker_processes.py::test_one_cron_scheduler_across_two_workers",
    "tests/jobs/sidekiq/test_ruby.py",
    "tests/queue/test_retention.py::test_a_flood_of_poison_keeps_at_most_the_cap",
)

# The modules with a module-scoped fixture (a chain of processes, a server): their tests go to
# one worker, so the fixture starts once. Collection fails naming a module missing here.
ONE_WORKER = frozenset(
    {
        "tests/test_tls.py",
        "tests/test_scheduling.py",
        "tests/http/test_website.py",
        "tests/http/test_limits.py",
        "tests/queue/test_functions.py",
        "tests/queue/test_model.py",
        "tests/hardening/test_cluster.py",
        "tests/hardening/test_secrets.py",
        "tests/hardening/test_secrets_dashboard.py",
        "tests/hardening/test_fuzz.py",
        "tests/hardening/test_fuzz_http.py",
        "tests/hardening/test_tls_services.py",
    }
)


def _module(nodeid: str) -> str:
    return nodeid.split("::")[0]


def _rank(item: pytest.Item) -> int:
    """`item`'s place in LONGEST_FIRST (its first prefix), after them all when not in it."""
    found = (i for i, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix))
    return next(found, len(LONGEST_FIRST))


def _has_a_module_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)  # pytest's own record of the item's fixtures
    defs = info.name2fixturedefs.values() if info is not None else ()
    return any(chain[-1].scope == "module" for chain in defs if chain)


def order(items: list[pytest.Item]) -> None:
    """The longest first (a stable sort: pytest's order otherwise); refuse a module with a
    module-scoped fixture that is not in ONE_WORKER."""
    for item in items:
        if _has_a_module_fixture(item) and _module(item.nodeid) not in ONE_WORKER:
            raise pytest.UsageError(
                f"{_module(item.nodeid)} has a module-scoped fixture: add it to ONE_WORKER "
                "in tests/scheduling.py (its tests then share one worker)"
            )
    items.sort(key=_rank)


class LongestFirst(LoadScopeScheduling):
    """xdist's scope scheduler with a unit of one test, or of a ONE_WORKER module's tests, in
    the workers' (sorted) order: each worker holds at most two more while it runs one."""

    def __init__(self, config: pytest.Config, log: Producer | None = None) -> None:
        super().__init__(config, log)
        config.option.loadscopereorder = False  # keep `order`'s order

    def _split_scope(self, nodeid: str) -> str:
        return _module(nodeid) if _module(nodeid) in ONE_WORKER else nodeid
