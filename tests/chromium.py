"""Headless Chromium for the viewer tests, driven over the Chrome DevTools Protocol.

Debian's ``chromium`` runs headless with a fresh profile and remote debugging on a port it
picks itself (read from ``DevToolsActivePort``); ``websocket-client`` carries the protocol.
With ``offline=True`` the browser gets a dead proxy (``--proxy-server=127.0.0.1:9``) *and*
DevTools' offline network emulation, and every request is recorded so a test can check that
none reached the network.

    with Chromium() as browser:
        browser.open(page.as_uri())
        n = browser.evaluate("document.querySelectorAll('.eot-det').length")
        png = browser.screenshot()
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
)


def find_chromium() -> str | None:
    env = os.environ.get("EOTRIAGE_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(RuntimeError):
    pass


class Chromium:
    """One headless browser with one page; a context manager (the browser is always closed)."""

    def __init__(
        self,
        binary: str | None = None,
        width: int = 1400,
        height: int = 860,
        offline: bool = True,
        timeout: float = 30.0,
    ) -> None:
        self.binary = binary or find_chromium()
        if self.binary is None:
            raise BrowserError("chromium not found")
        self.width, self.height, self.offline, self.timeout = width, height, offline, timeout
        self.events: list[dict[str, Any]] = []
        self._id = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._profile: str | None = None
        self._ws: Any = None

    # -------------------------------------------------------------- life cycle

    def __enter__(self) -> Chromium:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        import websocket  # websocket-client

        self._profile = tempfile.mkdtemp(prefix="eotriage-chromium-")
        args = [
            str(self.binary),
            *FLAGS,
            f"--user-data-dir={self._profile}",
            "--remote-debugging-port=0",
            f"--window-size={self.width},{self.height}",
        ]
        if self.offline:
            args.append("--proxy-server=127.0.0.1:9")
        self._proc = subprocess.Popen(
            [*args, "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not port_file.is_file() or len(port_file.read_text().splitlines()) < 2:
            if self._proc.poll() is not None:
                raise BrowserError(f"chromium exited with code {self._proc.returncode}")
            if time.monotonic() > deadline:
                raise BrowserError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=self.timeout) as r:
            targets = json.loads(r.read())
        page = next(t for t in targets if t.get("type") == "page")
        self._ws = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=self.timeout, suppress_origin=True
        )
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Network.enable")
        if self.offline:
            self.send(
                "Network.emulateNetworkConditions",
                offline=True,
                latency=0,
                downloadThroughput=-1,
                uploadThroughput=-1,
            )
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def close(self) -> None:
        if self._ws is not None:
            try:
                self._ws.close()
            except OSError:
                pass
            self._ws = None
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
            self._proc = None
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    # -------------------------------------------------------------- protocol

    def _recv(self, deadline: float) -> dict[str, Any]:
        self._ws.settimeout(max(0.05, deadline - time.monotonic()))
        msg: dict[str, Any] = json.loads(self._ws.recv())
        if "method" in msg:
            self.events.append(msg)
        return msg

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        mid = self._id
        self._ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._recv(deadline)
            if msg.get("id") == mid:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result

    def wait_event(self, method: str, timeout: float | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = len(self.events)
        for ev in self.events[:seen]:
            if ev["method"] == method:
                self.events.remove(ev)
                return ev
        while time.monotonic() < deadline:
            msg = self._recv(deadline)
            if msg.get("method") == method:
                self.events.remove(msg)
                return msg
        raise BrowserError(f"no {method} within {timeout or self.timeout} s")

    # -------------------------------------------------------------- page

    def open(self, url: str, ready: str | None = None) -> float:
        """Load ``url`` and wait for its load event (and for JS ``ready`` to be truthy);
        returns the seconds from navigation to ready."""
        self.events = [e for e in self.events if not e["method"].startswith("Page.")]
        t0 = time.perf_counter()
        nav = self.send("Page.navigate", url=url)
        if nav.get("errorText"):
            raise BrowserError(f"navigation failed: {nav['errorText']}")
        self.wait_event("Page.loadEventFired")
        if ready:
            self.wait_for(ready)
        return time.perf_counter() - t0

    def evaluate(self, expression: str) -> Any:
        res = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in res:
            raise BrowserError(f"JS error in {expression!r}: {res['exceptionDetails']}")
        return res.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float | None = None) -> Any:
        """Poll until ``expression`` is truthy (a DOM node counts as true); returns its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        probe = f"(() => {{ const v = ({expression}); return v instanceof Node ? true : v; }})()"
        while True:
            value = self.evaluate(probe)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {expression!r}")
            time.sleep(0.05)

    def centre_of(self, selector: str, nth: int = 0) -> tuple[float, float]:
        rect = self.evaluate(
            f"(() => {{ const el = document.querySelectorAll({json.dumps(selector)})[{nth}];"
            " if (!el) return null; const r = el.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        if not rect:
            raise BrowserError(f"no element {selector!r}[{nth}]")
        return float(rect[0]), float(rect[1])

    def click(self, x: float, y: float) -> None:
        """A real mouse click at page coordinates (move, press, release)."""
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def click_element(self, selector: str, nth: int = 0) -> None:
        self.click(*self.centre_of(selector, nth))

    def screenshot(self) -> bytes:
        return base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])

    def network_requests(self) -> list[str]:
        """URLs of every request the page made (data: and file: included)."""
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e["method"] == "Network.requestWillBeSent"
        ]

    def network_responses(self) -> list[tuple[str, int]]:
        """(url, HTTP status) of every response from the network (not data: or file:)."""
        out = []
        for e in self.events:
            if e["method"] == "Network.responseReceived":
                r = e["params"]["response"]
                if r["url"].startswith(("http:", "https:", "ws:", "wss:")):
                    out.append((r["url"], int(r.get("status", 0))))
        return out
