"""How `pytest -n N` hands tests to its workers: the longest first, one test at a time (a module
whose tests share a module-scoped fixture as one unit), so a long test never starts last and
keeps the other workers waiting for it; and the heaviest (HEAVY) one at a time while lighter
ones remain, so that they do not all start together and slow each other down.

xdist's own `--dist loadgroup` would do the grouping, but it marks a group in the test's node
id, which pytest 9.2 no longer lets it change (pytest-xdist issue 1386): this is its
scheduler with the groups named here.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling
from xdist.workermanage import WorkerController

# The longest tests (over ~10 s in a pass of `make test`, which prints each pass's slowest;
# measured 2026-12-07 16:34 on the loaded VM), longest first; a module's path stands for all
# its tests (a ONE_WORKER module: their sum). The order of the rest is pytest's.
LONGEST_FIRST = (
    "tests/services/test_vpush_crash.py::test_remote_stopped_and_restarted",  # the slow pass
    "tests/queue/test_crash.py::test_sigkilled_consumers_lose_nothing",  # slow, Redis 7 passes
    "tests/jobs/test_workflow_processes.py::test_a_chord_of_2000",
    "tests/jobs/test_limits_processes.py::test_a_cap_holds_across_killed_workers",
    "tests/hardening/test_cluster.py",
    "tests/jobs/sidekiq/test_ruby.py::test_ruby_push_bulk_jobs_survive",
    "tests/hardening/test_tls_services.py",
    "tests/http/test_limits.py",
    "tests/hardening/test_fuzz.py",
    "tests/jobs/test_worker_processes.py::test_sigkilled_workers_lose_no_job",
    "tests/hardening/test_failover.py",
    "tests/services/test_vpush_crash.py",  # the slow pass
    "tests/http/test_website.py",
    "tests/jobs/test_workflow_processes.py::test_a_chain_of_50",
    "tests/jobs/test_retention.py::test_a_flood_of_poison_jobs_keeps_the_cap",
    "tests/jobs/test_supervisor.py::test_max_jobs_recycles_children",
    "tests/services/test_mpush.py::test_sigkill_chaos",  # the slow pass
    "tests/dashboard/test_browser.py::test_the_page_says_it_is_reconnecting",
    "tests/dashboard/test_browser.py::test_a_page_opened_while_redis_is_down",
    "tests/queue/test_model.py",
    "tests/jobs/test_worker_processes.py::test_one_cron_scheduler_across_two_workers",
    "tests/hardening/test_atheris.py",
    "tests/dashboard/test_busy_browser.py",
    "tests/hardening/test_fuzz_http.py",
    "tests/jobs/sidekiq/test_ruby.py",
    "tests/dashboard/test_workflow_page.py",
    "tests/jobs/test_limits_processes.py::test_a_rate_limit_holds_across_two_workers",
    "tests/test_rollout_agents.py",  # the slow pass
    "tests/test_cscale_standby.py::test_lpush_standbys_idle",
    "tests/http/test_gone_consumer.py::test_what_a_killed_handler_held",
    "tests/test_cscale_agents.py",
)

# The tests that load the whole machine (several worker processes, kills, a CPU-bound loop): a
# worker is not handed one while another is in hand (assigned, not finished) as long as lighter
# tests remain, so they run beside tests that mostly wait rather than beside each other (the
# poison flood took 57 s beside the others against 8-9 s alone; two chords 38-41 s together).
HEAVY = (
    "tests/jobs/test_workflow_processes.py::test_a_chord_of_2000",
    "tests/jobs/test_limits_processes.py::test_a_cap_holds_across_killed_workers",
    "tests/jobs/sidekiq/test_ruby.py::test_ruby_push_bulk_jobs_survive",
    "tests/jobs/test_worker_processes.py::test_sigkilled_workers_lose_no_job",
    "tests/jobs/test_workflow_processes.py::test_a_chain_of_50",
    "tests/jobs/test_retention.py::test_a_flood_of_poison_jobs_keeps_the_cap",
    "tests/jobs/test_supervisor.py::test_max_jobs_recycles_children",
    "tests/hardening/test_atheris.py",
    "tests/queue/test_crash.py::test_sigkilled_consumers_lose_nothing",  # the Redis 7 pass
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


def _is_heavy(scope: str) -> bool:
    return scope.startswith(HEAVY)


def next_unit(queued: Iterable[str], heavy_in_hand: bool) -> str:
    """The unit to hand out next: the first queued, except a heavy one while another is in
    hand: then the first light one (the first heavy one when no light one is left)."""
    heavy = None
    for scope in queued:
        if not (heavy_in_hand and _is_heavy(scope)):
            return scope
        heavy = heavy or scope
    if heavy is None:
        raise ValueError("no unit queued")
    return heavy


def order(items: list[pytest.Item]) -> None:
    """The longest first (a stable sort: pytest's order otherwise); refuse a module with a
    module-scoped fixture that is not in ONE_WORKER, and a test marked `alone` but not `slow`
    (the parallel pass would take it)."""
    for item in items:
        if _has_a_module_fixture(item) and _module(item.nodeid) not in ONE_WORKER:
            raise pytest.UsageError(
                f"{_module(item.nodeid)} has a module-scoped fixture: add it to ONE_WORKER "
                "in tests/scheduling.py (its tests then share one worker)"
            )
        if item.get_closest_marker("alone") and not item.get_closest_marker("slow"):
            raise pytest.UsageError(f"{item.nodeid} is marked alone: mark it slow too")
    items.sort(key=_rank)


class LongestFirst(LoadScopeScheduling):
    """xdist's scope scheduler with a unit of one test, or of a ONE_WORKER module's tests, in
    the workers' (sorted) order but for HEAVY ones (`next_unit`): each worker holds at most two
    more while it runs one."""

    def __init__(self, config: pytest.Config, log: Producer | None = None) -> None:
        super().__init__(config, log)
        config.option.loadscopereorder = False  # keep `order`'s order

    def _split_scope(self, nodeid: str) -> str:
        return _module(nodeid) if _module(nodeid) in ONE_WORKER else nodeid

    def _assign_work_unit(self, node: WorkerController) -> None:
        """xdist's, which hands out the first queued unit, with `next_unit` put first."""
        in_hand = (
            scope
            for work in self.assigned_work.values()
            for scope, tests in work.items()
            if not all(tests.values())
        )
        heavy_in_hand = any(_is_heavy(scope) for scope in in_hand)
        self.workqueue.move_to_end(next_unit(self.workqueue, heavy_in_hand), last=False)
        super()._assign_work_unit(node)
