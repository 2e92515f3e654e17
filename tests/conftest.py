"""Fixtures: real servers started once per session, and a clean database or key prefix per test."""

from __future__ import annotations

import itertools
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from redline.connection import AsyncClient, connect
from tests import scheduling
from tests.servers import Cluster, ServerProcess

_db_numbers = itertools.count(1)

# `redline worker` runs one process per core by default; the tests that start one (and kill
# its pid, or count its instances) mean one process, so they get one unless they pass
# --processes. tests/jobs/test_supervisor.py runs the default itself.
os.environ.setdefault("REDLINE_PROCESSES", "1")


def needs_tool(tool: str, package: str) -> pytest.MarkDecorator:
    """Skip (naming the tool and the Debian package) when `tool` is not on PATH."""
    return pytest.mark.skipif(
        shutil.which(tool) is None,
        reason=f"needs `{tool}` on PATH (apt-get install {package})",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first (tests/scheduling.py)."""
    scheduling.order(items)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """`-n N` (xdist's `load`): one test at a time, the longest first (tests/scheduling.py)."""
    if config.getvalue("dist") != "load":
        return None
    return scheduling.LongestFirst(config, log)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def server() -> Iterator[ServerProcess]:
    """The session's standalone server; each test gets its own database on it."""
    srv = ServerProcess().start()
    yield srv
    srv.close()


@pytest.fixture(scope="session")
def second_server() -> Iterator[ServerProcess]:
    """A second, independent server (for transfers between servers)."""
    srv = ServerProcess().start()
    yield srv
    srv.close()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A real 3-master cluster made from the same binary."""
    made = Cluster().start()
    yield made
    made.close()


def _fresh_db_url(srv: ServerProcess) -> str:
    db = next(_db_numbers)
    redis.Redis(port=srv.port, db=db).flushdb()
    return f"redis://127.0.0.1:{srv.port}/{db}"


@pytest.fixture
def redis_url(server: ServerProcess) -> str:
    """URL of an empty database of its own on the session server."""
    return _fresh_db_url(server)


@pytest.fixture
def remote_url(second_server: ServerProcess) -> str:
    """URL of an empty database of its own on the second server."""
    return _fresh_db_url(second_server)


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses (for the cluster, which has only database 0)."""
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[AsyncClient]:
    client = connect(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def sredis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
async def acluster(cluster: Cluster) -> AsyncIterator[AsyncClient]:
    client = connect(cluster.url)
    yield client
    await client.aclose()


# redline's own pytest plugin (`redline.testing`: run_jobs, redline_jobs, …), on the session's
# server rather than an embedded server of its own.
pytest_plugins = ["redline.testing"]


@pytest.fixture(scope="session")
def redline_server(server: ServerProcess) -> str:
    """The plugin's server: the suite's session server (its databases are numbered apart)."""
    return f"redis://127.0.0.1:{server.port}/0"
