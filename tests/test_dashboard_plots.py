"""The dashboard's plots in a real headless Chromium: drawn with data, no console error.

A coordinator and two nodes run as processes and a client writes and reads
for a few seconds, so the coordinator's load history has points. The page
must draw a request-rate line and a probe-latency line per node, a health
timeline with the probes of each node, and a bar per shard for request rate
and size, all without a console error. Set ``TORUA_SCREENSHOTS=DIR`` to keep
a PNG of the page (``dashboard-plots.png``).
"""

from __future__ import annotations

import json

import httpx
import pytest
import trio

from .procs import ProcessGroup, wait_until
from .test_dashboard_browser import BROWSERS, CLUSTER_ENV, find_browser, open_chromium

pytestmark = pytest.mark.e2e

PLOTS = """(() => {
  const q = (sel) => [...document.querySelectorAll(sel)];
  const lines = (plot) => Object.fromEntries(q(`#plots svg[data-plot="${plot}"] path[data-series]`)
    .map((p) => [p.dataset.series, Number(p.dataset.points)]));
  const bars = (plot) => q(`#plots svg[data-plot="${plot}"] rect.bar`)
    .map((r) => Number(r.dataset.value));
  return {
    rate: lines("node-rate"),
    latency: lines("node-latency"),
    probes: Object.fromEntries(q('#plots svg[data-plot="health"] g[data-node]')
      .map((g) => [g.dataset.node, g.querySelectorAll("rect.ok").length])),
    shardRates: bars("shard-rate"),
    shardSizes: bars("shard-size"),
  };
})()"""


async def test_plots_render_with_data_and_no_console_error() -> None:
    binary = find_browser()
    if binary is None:
        pytest.skip(f"no Chromium found (looked for {', '.join(BROWSERS)}); .ci/run installs it")
    async with ProcessGroup() as group:
        coordinator = await group.coordinator(CLUSTER_ENV)
        await group.node("n1", coordinator.url)
        await group.node("n2", coordinator.url)
        async with httpx.AsyncClient(base_url=coordinator.url, timeout=30) as http:

            async def green() -> bool:
                return (await http.get("/cluster/info")).json()["cluster_state"] == "green"

            await wait_until(green, within=20, what="green cluster")
            stop = trio.Event()

            async def traffic() -> None:
                i = 0
                while not stop.is_set():
                    key = f"plot-{i % 64}"
                    assert (await http.put(f"/data/{key}", content=b"x" * 100)).status_code == 204
                    assert (await http.get(f"/data/{key}")).status_code == 200
                    i += 1

            async def history_has_rates() -> bool:
                nodes = (await http.get("/load")).json()["nodes"]
                return all(sum(1 for p in n["points"] if p[1]) >= 3 for n in nodes)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(traffic)
                await wait_until(history_has_rates, within=30, what="load history with rates")
                async with open_chromium(binary) as page:
                    await page.open(coordinator.url + "/", "!!document.querySelector('#plots svg')")

                    async def drawn() -> dict | None:
                        plots = await page.evaluate(PLOTS)
                        complete = (
                            set(plots["rate"]) == {"n1", "n2"}
                            and all(v >= 3 for v in plots["rate"].values())
                            and all(v >= 1 for v in plots["latency"].values())
                            and all(plots["probes"].get(n, 0) >= 3 for n in ("n1", "n2"))
                            and len(plots["shardRates"]) == 8
                            and sum(plots["shardRates"]) > 0
                            and sum(v > 0 for v in plots["shardSizes"]) >= 4
                        )
                        return plots if complete else None

                    plots = await wait_until(drawn, within=30, what="plots drawn with data")
                    stop.set()
                    await page.evaluate("document.getElementById('plots').scrollIntoView()")
                    await page.screenshot("dashboard-plots.png")
                    errors = page.console_errors()
                    assert not errors, f"console errors: {errors}"
                    # The script is served from the package; nothing reached for elsewhere.
                    loaded = await page.evaluate(
                        "performance.getEntriesByType('resource').map((r) => r.name)"
                    )
                    assert all(url.startswith(coordinator.url) for url in loaded), loaded
    print("plots drawn:", json.dumps(plots))
