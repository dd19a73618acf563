// The Impetus dashboard: polls /api/snapshot every 2 s and redraws. Plain DOM and SVG,
// no library; every value goes in as text (textContent), never as HTML.
"use strict";

const POLL_MS = 2000;
const SVG_NS = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : String(c ?? ""));
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function setText(id, value) { document.getElementById(id).textContent = String(value); }

function clock(epoch) { return new Date(epoch * 1000).toLocaleTimeString(); }

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function jobHref(stream, job) {
  return `/job/${encodeURIComponent(stream)}/${encodeURIComponent(job)}`;
}

function num(value, cls) { return el("td", { class: `n ${cls || ""}` }, value ?? "-"); }

function bar(row) {
  const total = row.done + row.errors + row.running + row.waiting;
  const box = el("div", { class: "bar", title: `${row.done} done, ${row.errors} errors, ` +
    `${row.running} running, ${row.waiting} waiting` });
  for (const part of ["done", "errors", "running", "waiting"]) {
    const share = total ? (100 * row[part]) / total : 0;
    const span = el("span", { class: part });
    span.style.width = `${share}%`; // CSSOM, not a style attribute: the CSP allows no inline CSS
    box.append(span);
  }
  return box;
}

function renderStreams(streams) {
  const body = document.querySelector("#streams tbody");
  body.replaceChildren();
  if (!streams.length) body.append(el("tr", {}, el("td", { colspan: 9, class: "none" }, "no streams")));
  for (const s of streams) {
    const name = el("td", { class: "name", title: s.id }, s.name);
    if (!s.keyed) name.append(el("span", { class: "none" }, " (key not held: totals only)"));
    body.append(el("tr", { "data-stream": s.id }, name, el("td", {}, bar(s)),
      num(s.done, "done-n"), num(s.errors, "errors-n"), num(s.running, "running-n"),
      num(s.waiting, "waiting-n"), num(s.retried, "retried-n"),
      num(s.rate === null ? "-" : s.rate.toFixed(1), "rate"), num(duration(s.eta), "eta")));
    for (const st of s.stages || []) {
      body.append(el("tr", { class: "stage", "data-stage": st.stage }, el("td", {}, st.stage),
        el("td", {}, bar(st)), num(st.done), num(st.errors), num(st.running), num(st.waiting),
        el("td"), el("td"), el("td")));
    }
  }
}

function renderErrors(streams) {
  const box = document.getElementById("errors");
  box.replaceChildren();
  const errors = streams.flatMap((s) => s.errored.map((e) => ({ ...e, streamName: s.name })));
  if (!errors.length) { box.append(el("p", { class: "none" }, "no errors")); return; }
  for (const e of errors) {
    const link = el("a", { class: "job-link", href: jobHref(e.stream, e.job) }, e.job);
    const summary = el("summary", {}, `${e.streamName} · `, link,
      ` · ${e.name} · ${e.type}: ${e.error} · attempt ${e.attempt}` + (e.node ? ` · ${e.node}` : ""));
    const details = el("details", { class: "error", open: "", "data-job": e.job }, summary,
      el("pre", { class: "traceback" }, e.traceback || "(no traceback)"));
    for (const [kind, text] of Object.entries(e.output)) {
      details.append(el("div", {}, kind), el("pre", { class: `output ${kind}` }, text));
    }
    box.append(details);
  }
}

function renderNodes(nodes, at) {
  const body = document.querySelector("#nodes tbody");
  body.replaceChildren();
  if (!nodes.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "none" }, "no live nodes")));
  for (const n of nodes) {
    const beat = n.heartbeat ? `${Math.max(0, Math.round(at - n.heartbeat))} s ago` : "-";
    body.append(el("tr", { "data-node": n.node }, el("td", {}, n.node), el("td", {}, n.state),
      num(n.busy, "busy"), num(n.idle, "idle"), num(n.jobs_done), el("td", {}, beat)));
  }
}

// Desired and in-service capacity over time: the dashboard's own samples of the node
// groups (summed), and each recorded decision as a dot whose tooltip is its reason.
function renderChart(dfs, now) {
  const box = document.getElementById("dfs-chart");
  const byTime = new Map();
  for (const f of dfs.fleet) {
    const p = byTime.get(f.at) || { at: f.at, desired: 0, in_service: 0 };
    p.desired += f.desired; p.in_service += f.in_service; byTime.set(f.at, p);
  }
  // Before the dashboard's first sample, the decisions (with what the policy saw) are
  // the history; from then on, the samples.
  const sampled = [...byTime.values()];
  const since = sampled.length ? sampled[0].at : Infinity;
  const line = dfs.decisions.filter((d) => d.at < since)
    .map((d) => ({ at: d.at, desired: d.desired, in_service: d.in_service ?? 0 }))
    .concat(sampled);
  const times = [...line.map((p) => p.at), ...dfs.decisions.map((d) => d.at), now];
  const t0 = Math.min(...times), t1 = Math.max(...times, t0 + 60);
  const top = Math.max(1, ...line.map((p) => Math.max(p.desired, p.in_service)),
    ...dfs.decisions.map((d) => d.desired || 0));
  const W = 720, H = 180, L = 36, B = 22;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - 10);
  const y = (v) => H - B - (v / top) * (H - B - 10);
  const chart = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img" });
  chart.append(svg("line", { x1: L, y1: H - B, x2: W - 10, y2: H - B, stroke: "#aab" }));
  for (const v of [0, top]) {
    const label = svg("text", { x: 4, y: y(v) + 4 }); label.textContent = v; chart.append(label);
  }
  for (const [t, anchor] of [[t0, "start"], [t1, "end"]]) {
    const label = svg("text", { x: x(t), y: H - 6, "text-anchor": anchor });
    label.textContent = clock(t); chart.append(label);
  }
  for (const key of ["desired", "in_service"]) {
    if (!line.length) break;
    let d = `M${x(line[0].at)},${y(line[0][key])}`;
    for (const p of line.slice(1)) d += ` H${x(p.at)} V${y(p[key])}`;
    d += ` H${x(now)}`;
    chart.append(svg("path", { d, class: key === "desired" ? "desired" : "in-service" }));
  }
  for (const dcs of dfs.decisions) {
    const dot = svg("circle", { cx: x(dcs.at), cy: y(dcs.desired || 0), r: 4, class: "decision" });
    const tip = svg("title"); tip.textContent = `${clock(dcs.at)} ${dcs.action}: ${dcs.reason}`;
    dot.append(tip); chart.append(dot);
  }
  const legend = el("p", { class: "legend" }, "— desired (blue) · - - in service (green) · ● a decision (hover: its reason)");
  box.replaceChildren(chart, legend);
}

function renderDecisions(dfs) {
  setText("dfs-error", dfs.error ? `DFS: ${dfs.error}` : "");
  const body = document.querySelector("#decisions tbody");
  body.replaceChildren();
  for (const d of [...dfs.decisions].reverse().slice(0, 20)) {
    body.append(el("tr", { class: "decision-row" }, el("td", {}, clock(d.at)), el("td", {}, d.group),
      el("td", {}, d.action), num(`${d.previous}→${d.desired}`), num(d.in_service),
      el("td", {}, d.reason)));
  }
}

function render(snap) {
  setText("api", snap.api);
  setText("total-done", snap.totals.done);
  setText("total-errors", snap.totals.errors);
  setText("total-running", snap.totals.running);
  setText("total-waiting", snap.totals.waiting);
  setText("node-count", snap.nodes.length);
  setText("workers-busy", snap.workers.busy);
  setText("workers-idle", snap.workers.idle);
  renderStreams(snap.streams);
  renderErrors(snap.streams);
  renderNodes(snap.nodes, snap.at);
  renderChart(snap.dfs, snap.at);
  renderDecisions(snap.dfs);
  const status = document.getElementById("status");
  status.textContent = `updated ${clock(snap.at)}`;
  status.className = "";
  document.body.dataset.ready = "1";
}

async function poll() {
  try {
    const answer = await fetch("/api/snapshot", { cache: "no-store" });
    const body = await answer.json();
    if (!answer.ok) throw new Error(body.message || answer.statusText);
    render(body);
  } catch (err) {
    const status = document.getElementById("status");
    status.textContent = `not updated: ${err.message}`;
    status.className = "stale";
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
