"""The dashboard in a real headless Chromium, driven over the Chrome DevTools Protocol.

A real coordinator and two nodes run as processes; Chromium loads the
dashboard, and the test reads the DOM through ``Runtime.evaluate``. It checks
that the page loads with no console error, shows every node healthy, and shows
a node going unhealthy (SIGSTOP) without a reload, from /events alone.

Set ``TORUA_SCREENSHOTS=DIR`` to keep PNG screenshots of the page.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio

from .procs import ProcessGroup, wait_until

trio_websocket = pytest.importorskip("trio_websocket", reason="needs the test extras")

pytestmark = pytest.mark.e2e

BROWSERS = ["/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"]
CLUSTER_ENV = {
    "HEALTH_CHECK_INTERVAL": "1s",
    "HEALTH_CHECK_TIMEOUT": "500ms",
    "HEALTH_CHECK_FAILURES": "3",
    "TORUA_SHARDS": "8",
}
NODE_STATUSES = """(() => {
  const rows = document.querySelectorAll('tr[data-node]');
  return Object.fromEntries([...rows].map(
    (tr) => [tr.dataset.node, tr.querySelector('.status').textContent]));
})()"""


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class CdpError(Exception):
    pass


class Cdp:
    """A small CDP client: one browser WebSocket, commands routed by flattened session."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, trio.MemorySendChannel[dict]] = {}
        self.events: list[dict] = []
        self._changed = trio.Event()

    async def read_forever(self) -> None:
        while True:
            message = json.loads(await self.ws.get_message())
            if "id" in message:
                channel = self._waiting.pop(message["id"], None)
                if channel is not None:
                    channel.send_nowait(message)
            else:
                self.events.append(message)
                self._changed.set()
                self._changed = trio.Event()

    async def call(self, method: str, session: str | None = None, **params: Any) -> dict:
        call_id = next(self._ids)
        send, receive = trio.open_memory_channel[dict](1)
        self._waiting[call_id] = send
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self.ws.send_message(json.dumps(message))
        with trio.fail_after(15):
            reply = await receive.receive()
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        return reply["result"]


class Page:
    def __init__(self, cdp: Cdp, session: str) -> None:
        self.cdp, self.session = cdp, session

    async def call(self, method: str, **params: Any) -> dict:
        return await self.cdp.call(method, self.session, **params)

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw {result['exceptionDetails']}")
        return result["result"].get("value")

    async def holds(self, expression: str) -> bool:
        """Whether ``expression`` is true now; false while the page is between documents
        (a navigation destroys the context an evaluation ran in)."""
        try:
            return bool(await self.evaluate(expression))
        except CdpError:
            return False

    async def open(self, url: str, ready: str = "true") -> None:
        """Navigate to ``url`` and wait until that document has loaded and ``ready`` holds.

        Waits on the document itself, not on a load event: the initial about:blank can
        fire its load event late on a busy machine, after the navigation was sent.
        """
        await self.call("Page.navigate", url=url)
        loaded = f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
        await wait_until(
            partial(self.holds, f"{loaded} && ({ready})"), within=30, what=f"{url} loaded"
        )

    def console_errors(self) -> list[str]:
        errors = []
        for event in self.cdp.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a)) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                errors.append(details.get("exception", {}).get("description", details["text"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(f"{params['entry']['text']} ({params['entry'].get('url', '')})")
        return errors

    def navigations(self) -> int:
        return sum(
            1
            for e in self.cdp.events
            if e["method"] == "Page.frameNavigated" and "parentId" not in e["params"]["frame"]
        )

    async def screenshot(self, name: str) -> None:
        folder = os.environ.get("TORUA_SCREENSHOTS")
        if folder:
            shot = await self.call("Page.captureScreenshot", format="png")
            await trio.Path(folder, name).write_bytes(base64.b64decode(shot["data"]))


def _chromium_of(profile: Path) -> list[int]:
    """Live (not zombie) processes started with this profile directory."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if any(str(profile) in arg for arg in proc.info["cmdline"] or []):
            found.append(proc.pid)
    return found


@asynccontextmanager
async def open_chromium(binary: str) -> AsyncIterator[Page]:
    """Headless Chromium on a throwaway profile; killed by pid and reaped on the way out."""
    profile = Path(tempfile.mkdtemp(prefix="torua-chromium-"))
    argv = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,1000",
        f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank",
    ]  # fmt: skip
    log = (profile.parent / f"{profile.name}.log").open("wb")
    process = await trio.lowlevel.open_process(
        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
    )
    try:
        port_file = profile / "DevToolsActivePort"

        async def port_written() -> list[str] | None:
            if process.returncode is not None:
                raise AssertionError(f"chromium exited with {process.returncode}")
            lines = port_file.read_text().split() if port_file.exists() else []
            return lines if len(lines) == 2 else None

        port, path = await wait_until(port_written, within=30, what="DevToolsActivePort")
        url = f"ws://127.0.0.1:{port}{path}"
        async with (
            trio_websocket.open_websocket_url(url, max_message_size=64 * 2**20) as ws,
            trio.open_nursery() as nursery,
        ):
            cdp = Cdp(ws)
            nursery.start_soon(cdp.read_forever)
            target = await cdp.call("Target.createTarget", url="about:blank")
            attached = await cdp.call(
                "Target.attachToTarget", targetId=target["targetId"], flatten=True
            )
            page = Page(cdp, attached["sessionId"])
            for domain in ("Runtime", "Log", "Page"):
                await page.call(f"{domain}.enable")
            yield page
            nursery.cancel_scope.cancel()
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the browser and its helpers
        with trio.move_on_after(10), trio.CancelScope(shield=True):
            await process.wait()
        log.close()
        assert process.returncode is not None, "chromium was not reaped"
        # Its helpers die with the group but may still be listed for a moment (being
        # torn down, or one that left the group): kill each by pid (its command line
        # names our own profile) and wait until none is left, within a bound.
        with trio.move_on_after(10), trio.CancelScope(shield=True):
            while leftovers := _chromium_of(profile):
                for pid in leftovers:
                    with suppress(psutil.Error):
                        psutil.Process(pid).kill()
                await trio.sleep(0.05)
        leftovers = _chromium_of(profile)
        shutil.rmtree(profile, ignore_errors=True)
        (profile.parent / f"{profile.name}.log").unlink(missing_ok=True)
        assert not leftovers, f"chromium processes left behind: {leftovers}"


async def test_dashboard_shows_nodes_and_a_node_going_unhealthy_live() -> None:
    binary = find_browser()
    if binary is None:
        pytest.skip(f"no Chromium found (looked for {', '.join(BROWSERS)}); .ci/run installs it")
    started = time.monotonic()
    async with ProcessGroup() as group:
        coordinator = await group.coordinator(CLUSTER_ENV)
        n1 = await group.node("n1", coordinator.url)
        await group.node("n2", coordinator.url)
        async with open_chromium(binary) as page:
            await page.open(coordinator.url + "/")

            async def statuses_are(wanted: dict[str, str]):
                statuses = await page.evaluate(NODE_STATUSES)
                return statuses if statuses == wanted else None

            healthy = {"n1": "healthy", "n2": "healthy"}
            await wait_until(lambda: statuses_are(healthy), within=15, what="both nodes healthy")
            assert await page.evaluate("document.querySelector('#conn').textContent") == "live"
            shard_rows = await page.evaluate("document.querySelectorAll('tr[data-shard]').length")
            assert shard_rows == 8
            await page.evaluate("window.__marker = 1")
            navigations = page.navigations()
            await page.screenshot("dashboard-healthy.png")

            n1.suspend()
            suspended = time.monotonic()
            down = {"n1": "unhealthy", "n2": "healthy"}
            await wait_until(lambda: statuses_are(down), within=15, what="n1 unhealthy on the page")
            shown_after = time.monotonic() - suspended
            assert await page.evaluate("window.__marker") == 1, "the page was reloaded"
            assert page.navigations() == navigations, "the page navigated"
            row = "document.querySelector('tr[data-node=\"n1\"]').dataset.status"
            assert await page.evaluate(row) == "unhealthy"
            events = await page.evaluate("document.querySelector('#events').textContent")
            assert "n1: healthy → unhealthy" in events
            await trio.sleep(1.5)  # let the shard moves that follow reach the page
            await page.screenshot("dashboard-unhealthy.png")

            n1.resume()
            await wait_until(lambda: statuses_are(healthy), within=15, what="n1 healthy again")
            assert await page.evaluate("window.__marker") == 1, "the page was reloaded"
            errors = page.console_errors()
            assert not errors, f"console errors: {errors}"
    print(
        f"page showed n1 unhealthy {shown_after:.2f}s after SIGSTOP; "
        f"whole test {time.monotonic() - started:.1f}s"
    )


async def test_sign_in_form_sets_the_cookie_the_dashboard_and_events_use() -> None:
    binary = find_browser()
    if binary is None:
        pytest.skip(f"no Chromium found (looked for {', '.join(BROWSERS)}); .ci/run installs it")
    async with ProcessGroup() as group:
        coordinator = await group.coordinator(
            {**CLUSTER_ENV, "TORUA_TOKEN": "t0ken/with;odd=chars"}
        )
        async with open_chromium(binary) as page:
            await page.open(coordinator.url + "/", "!!document.getElementById('sign-in')")
            await page.evaluate(
                "document.getElementById('token').value = 't0ken/with;odd=chars';"
                "document.getElementById('sign-in').requestSubmit()"
            )
            # The form reloads the page: the dashboard replaces it and goes live.
            live = (
                "document.readyState === 'complete' && !document.getElementById('sign-in')"
                " && document.querySelector('#conn')?.textContent === 'live'"
            )
            await wait_until(
                partial(page.holds, live), within=30, what="the dashboard live after signing in"
            )
            cookie = await page.evaluate("document.cookie")
            assert cookie.startswith("torua_token=")
            # The only error allowed is the browser's note of the first 401.
            errors = [e for e in page.console_errors() if "status of 401" not in e]
            assert not errors, f"console errors: {errors}"


async def test_dashboard_shows_a_node_whose_disk_check_warns(tmp_path: Path) -> None:
    binary = find_browser()
    if binary is None:
        pytest.skip(f"no Chromium found (looked for {', '.join(BROWSERS)}); .ci/run installs it")
    disk_warns = {"TORUA_DISK_WARN": "0.001%", "TORUA_DISK_CRITICAL": "100%"}
    async with ProcessGroup() as group:
        coordinator = await group.coordinator(CLUSTER_ENV)
        await group.node("n1", coordinator.url, data_dir=tmp_path)
        await group.node("n2", coordinator.url, disk_warns, data_dir=tmp_path)
        async with open_chromium(binary) as page:
            await page.open(coordinator.url + "/")
            badges = """(() => [...document.querySelectorAll('[data-testid="check"]')].map(
              (b) => [b.closest('tr').dataset.node, b.textContent, b.dataset.check, b.title]))()"""

            async def badges_shown():
                return await page.evaluate(badges) or None

            await wait_until(badges_shown, within=15, what="a check badge on the page")
            [(node, text, state, title)] = await page.evaluate(badges)
            assert (node, text, state) == ("n2", "disk warning", "warning")
            assert "warning at 0.001% used" in title
            await page.screenshot("dashboard-disk-warning.png")
            errors = page.console_errors()
            assert not errors, f"console errors: {errors}"
