"""The comparison apps of bench/http.py, run by uvicorn in their own processes."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

ROOT = os.environ.get("BENCH_ROOT", ".")
BODY = open(os.path.join(ROOT, "1k.bin"), "rb").read()  # noqa: SIM115 - read once at import


async def _memory(request: Request) -> Response:
    return Response(BODY, media_type="application/octet-stream")


plain = Starlette(routes=[Route("/1k.bin", _memory)])
static = Starlette(routes=[Mount("/", app=StaticFiles(directory=ROOT))])
