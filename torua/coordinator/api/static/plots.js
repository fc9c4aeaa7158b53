// Torua dashboard plots: per node request rate, probe latency and health over the last
// 15 minutes, per shard request rate and size. Plain SVG drawn here, no library: the page
// is served from the package with a strict Content-Security-Policy and no network access.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const REFRESH_MS = 5000;
  const WIDTH = 560, HEIGHT = 150, PAD = { left: 52, right: 10, top: 10, bottom: 22 };
  const HEALTH_ROW = 16;
  const COLORS = ["#0969da", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bf3989",
                  "#0a7480", "#6e7781", "#d1242f", "#2da44e"];
  const root = document.getElementById("plots");
  if (!root) return;

  const style = document.createElement("style");
  style.textContent = `
    #plots { margin: 0 24px 16px; background: var(--card); border: 1px solid var(--line);
             border-radius: 8px; padding: 12px 16px; }
    #plots h2 { font-size: 15px; margin: 0 0 8px; }
    #plots .plots-grid { display: grid; gap: 12px 20px;
                         grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); }
    #plots figure { margin: 0; min-width: 0; }
    #plots figcaption { font-size: 12px; color: var(--muted); font-weight: 600; margin-bottom: 2px; }
    #plots svg { width: 100%; height: auto; display: block; overflow: visible; }
    #plots svg text { font-size: 10px; fill: var(--muted); }
    #plots .axis { stroke: var(--line); stroke-width: 1; }
    #plots .line { fill: none; stroke-width: 1.6; }
    #plots .legend { font-size: 12px; color: var(--muted); }
    #plots .legend span { margin-right: 12px; white-space: nowrap; }
    #plots .legend i { display: inline-block; width: 10px; height: 3px; margin-right: 4px;
                       vertical-align: middle; }
    #plots .note { font-size: 12px; color: var(--muted); }
    #plots rect.ok { fill: var(--green); } #plots rect.fail { fill: var(--red); }
    #plots rect.inconclusive { fill: var(--yellow); }
    #plots rect.bar { fill: var(--primary); } #plots rect.bar.size { fill: var(--replica); }
  `;
  document.head.append(style);

  function svgEl(tag, attrs, children) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    for (const child of children || []) node.append(child);
    return node;
  }

  function htmlEl(tag, props, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  function text(x, y, content, anchor) {
    const node = svgEl("text", { x, y, "text-anchor": anchor || "start" });
    node.textContent = content;
    return node;
  }

  function human(value, unit) {
    if (value === null || value === undefined) return "–";
    const steps = unit === "B" ? [[2 ** 30, "GiB"], [2 ** 20, "MiB"], [2 ** 10, "KiB"]]
      : [[1e6, "M"], [1e3, "k"]];
    for (const [size, suffix] of steps) {
      if (Math.abs(value) >= size) return `${(value / size).toFixed(1)} ${suffix}`;
    }
    const digits = Math.abs(value) < 10 && value !== Math.round(value) ? 1 : 0;
    return `${value.toFixed(digits)}${unit === "B" ? " B" : unit ? " " + unit : ""}`;
  }

  let withSeconds = false;  // short spans label their ends to the second
  function clock(seconds) {
    const parts = { hour12: false, hour: "2-digit", minute: "2-digit" };
    if (withSeconds) parts.second = "2-digit";
    return new Date(seconds * 1000).toLocaleTimeString([], parts);
  }

  // A time-series chart: one line per series, x = the last `span` seconds up to `now`.
  function lineChart(name, series, now, span, unit) {
    const x0 = PAD.left, x1 = WIDTH - PAD.right, y0 = HEIGHT - PAD.bottom, y1 = PAD.top;
    let top = 0;
    for (const s of series) for (const [, v] of s.points) if (v !== null && v > top) top = v;
    top = top > 0 ? top * 1.1 : 1;
    const sx = (t) => x0 + (x1 - x0) * (1 - (now - t) / span);
    const sy = (v) => y0 - (y0 - y1) * (v / top);
    const parts = [
      svgEl("line", { class: "axis", x1: x0, y1: y0, x2: x1, y2: y0 }),
      svgEl("line", { class: "axis", x1: x0, y1: y1, x2: x0, y2: y0 }),
      text(x0 - 4, y1 + 8, human(top, unit), "end"),
      text(x0 - 4, y0, "0", "end"),
      text(x0, HEIGHT - 6, clock(now - span)),
      text(x1, HEIGHT - 6, clock(now), "end"),
    ];
    series.forEach((s) => {
      const points = s.points.filter(([t, v]) => v !== null && now - t <= span);
      let d = "";
      let gap = true;
      for (const [t, v] of s.points) {
        if (v === null || now - t > span) { gap = true; continue; }
        d += `${gap ? "M" : "L"}${sx(t).toFixed(1)},${sy(v).toFixed(1)}`;
        gap = false;
      }
      const path = svgEl("path", { class: "line", d: d || "M0,0", stroke: s.color,
                                   "data-series": s.id, "data-points": points.length });
      const last = points[points.length - 1];
      path.append(svgEl("title", {}, [document.createTextNode(
        `${s.id}: ${last ? human(last[1], unit) : "no data"}`)]));
      parts.push(path);
    });
    return svgEl("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img",
                          "data-plot": name, "aria-label": name }, parts);
  }

  // One row per node: a mark per probe, coloured by its outcome.
  function healthTimeline(nodes, histories, now, span) {
    const x0 = PAD.left, x1 = WIDTH - PAD.right;
    const height = PAD.top + nodes.length * HEALTH_ROW + PAD.bottom;
    const sx = (t) => x0 + (x1 - x0) * (1 - (now - t) / span);
    const parts = [
      text(x0, height - 6, clock(now - span)),
      text(x1, height - 6, clock(now), "end"),
    ];
    nodes.forEach((node, row) => {
      const y = PAD.top + row * HEALTH_ROW;
      parts.push(text(x0 - 4, y + 11, node.id, "end"));
      parts.push(svgEl("line", { class: "axis", x1: x0, y1: y + 13, x2: x1, y2: y + 13 }));
      const probes = (histories[node.id] || []).map((p) => ({ ...p, t: Date.parse(p.at) / 1000 }))
        .filter((p) => now - p.t <= span).sort((a, b) => a.t - b.t);
      const group = svgEl("g", { "data-node": node.id, "data-probes": probes.length });
      probes.forEach((p, i) => {
        const next = i + 1 < probes.length ? sx(probes[i + 1].t) : sx(now);
        const x = sx(p.t);
        const kind = p.ok ? "ok" : (p.error || "").startsWith("inconclusive") ? "inconclusive" : "fail";
        const rect = svgEl("rect", { class: kind, x: x.toFixed(1), y: y + 2,
          width: Math.max(1, next - x - 0.5).toFixed(1), height: 10 });
        rect.append(svgEl("title", {}, [document.createTextNode(
          `${node.id} ${new Date(p.t * 1000).toLocaleTimeString()}: ` +
          (p.ok ? `ok, ${p.latency_ms.toFixed(1)} ms` : p.error))]));
        group.append(rect);
      });
      parts.push(group);
    });
    return svgEl("svg", { viewBox: `0 0 ${WIDTH} ${height}`, role: "img",
                          "data-plot": "health", "aria-label": "health timeline" }, parts);
  }

  // Bars over shards: the current value of `field` per shard.
  function barChart(name, shards, field, unit, extraClass) {
    const x0 = PAD.left, x1 = WIDTH - PAD.right, y0 = HEIGHT - PAD.bottom, y1 = PAD.top;
    const top = Math.max(1, ...shards.map((s) => s[field] || 0)) * 1.1;
    const slot = (x1 - x0) / Math.max(1, shards.length);
    const parts = [
      svgEl("line", { class: "axis", x1: x0, y1: y0, x2: x1, y2: y0 }),
      text(x0 - 4, y1 + 8, human(top, unit), "end"),
      text(x0 - 4, y0, "0", "end"),
    ];
    shards.forEach((s, i) => {
      const value = s[field] || 0;
      const h = (y0 - y1) * (value / top);
      const x = x0 + i * slot + slot * 0.15;
      const bar = svgEl("rect", { class: `bar ${extraClass}`, x: x.toFixed(1),
        y: (y0 - h).toFixed(1), width: (slot * 0.7).toFixed(1), height: h.toFixed(1),
        "data-shard": s.shard_id, "data-value": value });
      bar.append(svgEl("title", {}, [document.createTextNode(
        `shard ${s.shard_id}: ${human(s[field], unit)}`)]));
      parts.push(bar);
      if (shards.length <= 32 || i % 4 === 0) {
        parts.push(text(x + slot * 0.35, HEIGHT - 8, String(s.shard_id), "middle"));
      }
    });
    return svgEl("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img",
                          "data-plot": name, "aria-label": name }, parts);
  }

  function legend(series) {
    return htmlEl("div", { class: "legend" }, series.map((s) => htmlEl("span", {}, [
      htmlEl("i", { style: `background:${s.color}` }), document.createTextNode(s.id)])));
  }

  function figure(caption, chart, extra) {
    return htmlEl("figure", {}, [htmlEl("figcaption", { text: caption }), chart, ...(extra || [])]);
  }

  function render(load, histories) {
    const now = Date.now() / 1000;
    // The whole window once it has filled; until then, what there is (at least a minute),
    // so a young cluster's points are not squeezed against the right edge.
    const first = Math.min(now, ...load.nodes.filter((n) => n.points.length)
      .map((n) => n.points[0][0]));
    const span = Math.min(load.window_seconds, Math.max(60, now - first));
    const colors = {};
    load.nodes.forEach((n, i) => { colors[n.id] = COLORS[i % COLORS.length]; });
    const rate = load.nodes.map((n) => ({ id: n.id, color: colors[n.id],
      points: n.points.map((p) => [p[0], p[1]]) }));
    const latency = load.nodes.map((n) => ({ id: n.id, color: colors[n.id],
      points: n.points.map((p) => [p[0], p[2]]) }));
    withSeconds = span < 600;
    const minutes = span >= 90 ? `${Math.round(span / 60)} min` : `${Math.round(span)} s`;
    const grid = htmlEl("div", { class: "plots-grid" }, [
      figure(`Requests/s per node, last ${minutes}`, lineChart("node-rate", rate, now, span, "/s"),
             [legend(rate)]),
      figure(`Probe latency per node (ms), last ${minutes}`,
             lineChart("node-latency", latency, now, span, "ms"), [legend(latency)]),
      figure("Health per node (each probe: green ok, red failed, yellow inconclusive)",
             healthTimeline(load.nodes, histories, now, span)),
      figure("Requests/s per shard (all copies)", barChart("shard-rate", load.shards, "rate", "/s", "")),
      figure("Size per shard (value bytes on its primary)",
             barChart("shard-size", load.shards, "bytes", "B", "size")),
    ]);
    root.replaceChildren(htmlEl("h2", { text: "Load and health over time" }), grid);
    root.dataset.updated = String(now);
  }

  async function getJSON(path) {
    const response = await fetch(path, { cache: "no-store", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  async function refresh() {
    try {
      const load = await getJSON("/load");
      const histories = {};
      await Promise.all(load.nodes.slice(0, 50).map(async (n) => {
        histories[n.id] = await getJSON(`/nodes/${encodeURIComponent(n.id)}/health`);
      }));
      render(load, histories);
    } catch (err) {
      // A follower coordinator or a restart in progress: say so, try again later.
      root.replaceChildren(htmlEl("h2", { text: "Load and health over time" }),
        htmlEl("p", { class: "note", text: "plots unavailable: " + err.message }));
    }
  }

  refresh();
  setInterval(refresh, REFRESH_MS);
})();
