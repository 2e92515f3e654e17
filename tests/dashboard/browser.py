"""Headless Chromium driven over the DevTools protocol (a websocket; no driver, no npm)."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.helpers import wait_for

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Navigating(RuntimeError):
    """Chromium's answer to a call made while the page was being replaced by another."""


class Browser:
    """One headless Chromium with one page; `evaluate` runs JavaScript in it."""

    def __init__(self) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="redline-chromium-"))
        binary = chromium()
        assert binary is not None
        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = self.profile / "DevToolsActivePort"
        wait_for(port_file.exists, timeout=60)
        port = wait_for(lambda: port_file.read_text().split("\n")[0], timeout=10)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as reply:
            page = next(t for t in json.load(reply) if t["type"] == "page")
        self._stack = contextlib.ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(
            connect(page["webSocketDebuggerUrl"], max_size=None)
        )
        self._ids = itertools.count(1)
        self.problems: list[str] = []  # console errors and uncaught exceptions, as they come
        self.held: list[str] = []  # the ids of requests held by `hold`, as they come
        self.call("Runtime.enable")
        self.call("Log.enable")
        self.call("Page.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            self._note(message)
            if message.get("id") == call_id:
                if "error" in message:
                    error = f"{method}: {message['error']}"
                    moving = "navigated or closed" in error
                    raise Navigating(error) if moving else RuntimeError(error)
                return dict(message["result"])

    def _note(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            self.problems.append(str(params["exceptionDetails"]))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.problems.append(str(params.get("args")))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            self.problems.append(f"{params['entry'].get('url', '')}: {params['entry']['text']}")
        elif method == "Fetch.requestPaused":
            self.held.append(params["requestId"])
        elif method == "Page.javascriptDialogOpening":  # a confirm() the test did not expect
            self.problems.append(f"dialog: {params.get('message')}")

    def screenshot(self, path: Path, width: int, height: int) -> None:
        """A PNG of the page as a `width` by `height` window shows it (phone-like when narrow)."""
        mobile = width < 600
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=2 if mobile else 1,
            mobile=mobile,
        )
        self.evaluate("window.dispatchEvent(new Event('resize'))")
        shot = self.call("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        self.call("Emulation.clearDeviceMetricsOverride")

    def press(self, key: str, code: int) -> None:
        """A real key press (down and up), as the keyboard sends it: "Tab" 9, "Enter" 13."""
        for kind in ("keyDown", "keyUp"):
            self.call(
                "Input.dispatchKeyEvent",
                type=kind,
                key=key,
                code=key,
                windowsVirtualKeyCode=code,
                **({"text": "\r"} if key == "Enter" and kind == "keyDown" else {}),
            )

    def hold(self, url_pattern: str) -> None:
        """Hold every request of the page's whose URL matches `url_pattern` (DevTools'
        wildcards) before it is sent, until `release`: a request in flight for as long as the
        test needs."""
        self.call("Fetch.enable", patterns=[{"urlPattern": url_pattern}])

    def holding(self) -> bool:
        """Whether a request is held (the messages that came meanwhile are read first)."""
        self.evaluate("0")
        return bool(self.held)

    def release(self) -> None:
        """Send the held requests on, and hold no more."""
        for request_id in self.held:
            self.call("Fetch.continueRequest", requestId=request_id)
        self.held.clear()
        self.call("Fetch.disable")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_loaded(url)

    def wait_loaded(self, url: str | None = None) -> None:
        def loaded() -> bool:
            try:
                state = self.evaluate("[document.readyState, location.href]")
            except Navigating:  # asked while the page was being replaced: not loaded yet
                return False
            return bool(state) and state[0] == "complete" and (url is None or state[1] == url)

        wait_for(loaded, timeout=30)

    def close(self) -> None:
        self._stack.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
