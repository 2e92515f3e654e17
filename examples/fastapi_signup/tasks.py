"""The worker's side of the FastAPI example: ``redline worker examples.fastapi_signup.tasks``."""

from __future__ import annotations

from redline.jobs import task


@task(queue="signups", retries=2, result_ttl=600)
def welcome(email: str) -> str:
    """Send the welcome mail (here: return its first line, kept for ``GET /jobs/{id}``)."""
    if "@" not in email:
        raise ValueError(f"not an e-mail address: {email!r}")
    return f"welcome, {email}"
