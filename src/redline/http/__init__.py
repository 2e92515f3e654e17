"""The distributed web server: HTTP requests as messages on Redis queues.

himporter (the HTTP/1.1 front) → hrouter (regex routes) → hassets / hrender / your ``@handler``
services → back to the himporter that holds the connection. See docs/web.md.
"""

from __future__ import annotations

from redline.http.envelope import Request, Response
from redline.http.handler import handler

__all__ = ["Request", "Response", "handler"]
