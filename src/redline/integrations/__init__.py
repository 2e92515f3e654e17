"""Optional integrations, each behind its own extra (docs/integrations.md).

- `redline.integrations.otel` (``redline[otel]``): OpenTelemetry spans and trace context.
- `redline.integrations.starlette` (Starlette, or ``redline[fastapi]``): a lifespan and an
  ``enqueue`` dependency.
- `redline.integrations.django` (``redline[django]``): settings, ``enqueue_on_commit`` and
  ``manage.py redline_worker``.

The core never imports them (`redline.runtime.tracing` loads the OpenTelemetry one when it is
installed); nothing here is imported by ``import redline``.
"""
