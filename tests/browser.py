"""Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
JSON messages ending in NUL on file descriptors 3 and 4), without any Python dependency."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)


def _high(fd: int) -> int:
    """``fd`` moved above 9, clear of the descriptors 3 and 4 the browser reads and writes."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


class Page:
    """One page of a headless Chromium: load a file, collect console errors, evaluate JS."""

    def __init__(self):
        browser_in, self._to_browser = map(_high, os.pipe())
        self._from_browser, browser_out = map(_high, os.pipe())
        self._profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        self._process = subprocess.Popen(  # bash puts the pipe ends where chromium expects them
            ["bash", "-c", 'exec "$@" 3<&"$CDP_IN" 4>&"$CDP_OUT"', "chromium", CHROMIUM,
             "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-pipe", f"--user-data-dir={self._profile.name}"],
            pass_fds=(browser_in, browser_out), stdin=subprocess.DEVNULL, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "CDP_IN": str(browser_in), "CDP_OUT": str(browser_out)})
        os.close(browser_in)
        os.close(browser_out)
        self._buffer, self._id, self.errors, self._session = b"", 0, [], None
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target,
                                  flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def _read(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _event(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            self.errors.append(params["exceptionDetails"].get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.errors.append(" ".join(str(a.get("value")) for a in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(params["entry"]["text"])

    def send(self, method: str, wait_for: str | None = None, **params) -> dict:
        """Call ``method`` and return its result; with ``wait_for``, after that event too."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self._session:
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        result, seen = None, wait_for is None
        while result is None or not seen:
            reply = self._read()
            self._event(reply)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result = reply["result"]
            seen = seen or reply.get("method") == wait_for
        return result

    def open(self, path: Path) -> None:
        self.send("Page.navigate", wait_for="Page.loadEventFired", url=Path(path).as_uri())

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, width: int = 1280, height: int = 1600) -> Path:
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        data = self.send("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def close(self) -> None:
        os.close(self._to_browser)
        os.close(self._from_browser)
        os.killpg(self._process.pid, signal.SIGKILL)  # chromium and its helper processes, which
        self._process.wait()                           # would otherwise go on writing the profile
        self._profile.cleanup()
