"""A FastAPI app that enqueues jobs: ``POST /signup?email=…`` answers at once, a worker sends
the mail, ``GET /jobs/{id}`` says how it went.

    $ redline dev &                                   # a server, if you have none
    $ redline worker examples.fastapi_signup.tasks &
    $ REDIS_URL=redis://127.0.0.1:6379/0 uvicorn examples.fastapi_signup.app:app --port 8000
    $ curl -X POST 'localhost:8000/signup?email=ann@example.com'
    {"job":"5f0c…"}
    $ curl localhost:8000/jobs/5f0c…
    {"state":"complete","result":"welcome, ann@example.com","error":""}
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException

from examples.fastapi_signup.tasks import welcome
from redline.integrations.starlette import Enqueue, Redline, enqueuer
from redline.jobs import Job

router = APIRouter()
Enqueuer = Annotated[Enqueue, Depends(enqueuer)]


@router.post("/signup", status_code=202)
async def signup(email: str, enqueue: Enqueuer) -> Any:
    job = await enqueue(welcome, email)
    return {"job": job.id if job else None}


@router.get("/jobs/{job_id}")
async def job_state(job_id: str, enqueue: Enqueuer) -> Any:
    job = Job(job_id, welcome.queue, welcome.name, enqueue.client, welcome.result_ttl)
    record = await job.record()
    if record is None:
        raise HTTPException(404, "no such job, or not finished yet")
    return {"state": record.state, "result": record.value, "error": record.error}


def create_app(redis_url: str) -> FastAPI:
    app = FastAPI(lifespan=Redline(redis_url).lifespan)
    app.include_router(router)
    return app


app = create_app(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
