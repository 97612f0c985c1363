// Throughline control-room dashboard: draws the snapshot from
// /api/v1/events, then applies the pushed changes. No framework, no build.
"use strict";

const TOKEN_KEY = "throughline.token";
// No event (pings come every 5 s) for this long: say the data is stale.
const STALE_AFTER_MS = 12000;
// An asset whose last sample is older than this shows as stale.
const ASSET_STALE_MS = 120000;

const model = {
  assets: new Map(), // "site/asset" -> asset view
  agents: new Map(), // agent id -> agent view
  alerts: new Map(), // id -> alert
  overview: null,
  lastHeard: 0,
  connected: false,
};
const rows = new Map(); // "site/asset" -> <tr>

// ---------- small helpers ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const $ = (sel) => document.querySelector(sel);
const key = (a) => `${a.site}/${a.asset}`;
const nf = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const nf0 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

function num(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const s = Math.abs(v) >= 100 ? nf0.format(v) : nf.format(v);
  return unit ? `${s} ${unit}` : s;
}

function time(t) {
  if (!t) return "–";
  const d = new Date(t);
  const same = d.toDateString() === new Date().toDateString();
  const hm = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  return same ? hm : `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${hm}`;
}

function ago(t) {
  if (!t) return "never";
  const s = Math.max(0, Math.round((Date.now() - new Date(t).getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

function since(t) {
  if (!t) return "–";
  const s = Math.max(0, Math.round((Date.now() - new Date(t).getTime()) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

const hms = (t) => new Date(t).toLocaleTimeString([], { hourCycle: "h23" });
const STATUS_ICON = { ok: "✓", at_risk: "!", short: "✕" };
const STATUS_TEXT = { ok: "✓ OK", at_risk: "! AT RISK", short: "✕ SHORT" };
const badge = (status) => h("span", { class: `badge st-${status}` }, STATUS_TEXT[status] || status);

// ---------- auth ----------

function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

function authHeaders(extra) {
  const t = token();
  return Object.assign(t ? { Authorization: `Bearer ${t}` } : {}, extra || {});
}

function updateTokenButton() {
  $("#token-btn").textContent = token() ? "Planner: signed in (sign out)" : "Planner sign-in";
}

/** Ask for a token; resolves true when one was entered. */
function askToken(message) {
  const dlg = $("#token-dialog");
  const err = $("#token-error");
  err.hidden = !message;
  err.textContent = message || "";
  $("#token-input").value = "";
  return new Promise((resolve) => {
    dlg.addEventListener(
      "close",
      () => {
        const v = $("#token-input").value.trim();
        if (dlg.returnValue === "ok" && v) {
          localStorage.setItem(TOKEN_KEY, v);
          updateTokenButton();
          resolve(true);
        } else resolve(false);
      },
      { once: true },
    );
    dlg.showModal();
  });
}

async function api(method, path, body) {
  const init = { method, headers: authHeaders(body ? { "Content-Type": "application/json" } : {}) };
  if (body) init.body = JSON.stringify(body);
  const r = await fetch(path, init);
  let data = null;
  try {
    data = await r.json();
  } catch (_) {
    data = null;
  }
  return { status: r.status, ok: r.ok, data };
}

const errorText = (res) => (res.data && res.data.error) || `HTTP ${res.status}`;

// ---------- live connection ----------

let source = null;

function connect() {
  if (source) source.close();
  const q = token() ? `?token=${encodeURIComponent(token())}` : "";
  source = new EventSource(`/api/v1/events${q}`);
  source.addEventListener("open", () => {
    model.connected = true;
    renderLink();
  });
  source.addEventListener("error", () => {
    // EventSource reconnects by itself (the server asks for 2 s).
    model.connected = false;
    renderLink();
    if (source.readyState === EventSource.CLOSED) retryOrAskToken();
  });
  const on = (name, fn) =>
    source.addEventListener(name, (e) => {
      model.lastHeard = Date.now();
      fn(JSON.parse(e.data));
      renderLink();
    });
  on("snapshot", applySnapshot);
  on("assets", (d) => {
    for (const a of d.assets) model.assets.set(key(a), a);
    for (const a of d.assets) renderAssetRow(a);
    renderAssetCounts();
    renderFeeders();
  });
  on("agents", (d) => {
    for (const g of d.agents) model.agents.set(g.agent, g);
  });
  on("overview", (d) => {
    model.overview = d;
    renderOverview();
  });
  on("alert", (e) => {
    upsertAlert(e.alert);
    renderAlerts();
  });
  on("ping", () => {});
}

// The stream was refused or the server is away: ask for a token if reads
// need one, else try again shortly.
async function retryOrAskToken() {
  const r = await fetch("/api/v1/overview", { headers: authHeaders() }).catch(() => null);
  if (r && r.status === 401) {
    localStorage.removeItem(TOKEN_KEY);
    updateTokenButton();
    if (await askToken("Viewing this dashboard needs a token.")) connect();
    return;
  }
  setTimeout(connect, 2000);
}

function applySnapshot(s) {
  model.assets = new Map(s.assets.map((a) => [key(a), a]));
  model.agents = new Map(s.agents.map((g) => [g.agent, g]));
  model.alerts = new Map(s.alerts.map((a) => [a.id, a]));
  model.overview = s.overview;
  $("#assets tbody").replaceChildren();
  rows.clear();
  const sorted = [...model.assets.values()].sort((a, b) => key(a).localeCompare(key(b)));
  for (const a of sorted) renderAssetRow(a);
  renderAssetCounts();
  renderOverview();
  renderFeeders();
  renderAlerts();
}

function renderLink() {
  const link = $("#link");
  const banner = $("#stale-banner");
  const silent = model.lastHeard ? Date.now() - model.lastHeard : Infinity;
  let cls, text;
  if (model.connected && silent < STALE_AFTER_MS) {
    cls = "live";
    text = "LIVE";
  } else if (model.lastHeard) {
    cls = "stale";
    text = model.connected ? "STALE" : "RECONNECTING";
  } else {
    cls = "connecting";
    text = "connecting…";
  }
  link.className = `link ${cls}`;
  link.textContent = text;
  if (cls === "stale") {
    banner.hidden = false;
    banner.textContent =
      `Data is stale: nothing from the aggregator for ${Math.round(silent / 1000)} s ` +
      `(last update ${hms(model.lastHeard)}). ` +
      (model.connected ? "Waiting for data…" : "Reconnecting…");
  } else banner.hidden = true;
  const et = model.overview && model.overview.event_time;
  $("#event-time").textContent = et ? `plant time ${hms(et)}` : "no data yet";
}

// ---------- assets ----------

function assetStale(a) {
  return !a.last_sample_ts || Date.now() - new Date(a.last_sample_ts).getTime() > ASSET_STALE_MS;
}

function rateText(a) {
  if (a.rate_per_hour === null || a.rate_per_hour === undefined) return "–";
  const unit = a.kind === "feeder" ? "kWh/h" : "/h";
  return `${num(a.rate_per_hour)} ${unit}`;
}

function renderAssetRow(a) {
  const k = key(a);
  const state = a.state || "unknown";
  const agentCell =
    a.agent_online === false
      ? h("span", { class: "agent-off" }, `${a.agent} offline`)
      : h("span", {}, a.agent || "–");
  const tr = h(
    "tr",
    {
      "data-asset": k,
      "data-state": state,
      class: assetStale(a) ? "stale" : "",
      tabindex: "0",
      title: a.registered ? "" : "not registered in the aggregator's config",
      onclick: () => openAssetDetail(a.site, a.asset),
      onkeydown: (e) => e.key === "Enter" && openAssetDetail(a.site, a.asset),
    },
    h("td", { title: `${a.site}/${a.asset}` }, h("strong", {}, a.name || a.asset), manySites() ? h("span", { class: "muted site" }, ` ${a.site}`) : null),
    h("td", { "data-field": "state" }, h("span", { class: `state s-${state}` }, state), " ",
      h("span", { class: "muted since", "data-since": a.state_since || "" }, since(a.state_since))),
    h("td", { "data-field": "reason" }, a.reason || ""),
    h("td", { class: "num" }, rateText(a)),
    h("td", { class: "num" }, a.load_kw === null || a.load_kw === undefined ? "–" : num(a.load_kw, "kW")),
    h("td", {}, agentCell),
    h("td", { "data-field": "seen", "data-seen": a.last_sample_ts || "" }, ago(a.last_sample_ts)),
  );
  const old = rows.get(k);
  if (old) old.replaceWith(tr);
  else $("#assets tbody").append(tr);
  rows.set(k, tr);
}

function manySites() {
  const sites = new Set();
  for (const a of model.assets.values()) sites.add(a.site);
  return sites.size > 1;
}

function renderAssetCounts() {
  const all = [...model.assets.values()];
  const down = all.filter((a) => a.state === "down").length;
  const running = all.filter((a) => a.state === "running").length;
  $("#asset-counts").textContent = `${running} running · ${down} down · ${all.length} in all`;
}

// Ages tick without new data.
function refreshAges() {
  for (const tr of rows.values()) {
    const seen = tr.querySelector("[data-seen]");
    const st = tr.querySelector("[data-since]");
    if (seen) seen.textContent = ago(seen.dataset.seen || null);
    if (st) st.textContent = since(st.dataset.since || null);
    const a = model.assets.get(tr.dataset.asset);
    if (a) tr.classList.toggle("stale", assetStale(a));
  }
}

// ---------- overview ----------

function gapText(b) {
  if (b.gap_pct === null || b.gap_pct === undefined || !b.effective_demand) return "no demand";
  return b.gap > 0 ? `${num(b.gap_pct)} % short` : `${num(-b.gap_pct)} % ahead`;
}

function bucketRow(g, b, label) {
  const unit = b.unit === "kWh" ? "kWh" : "pcs";
  // Lines are judged on projected output, feeders on capacity (supply).
  const supply = g.kind === "feeder" ? b.supply : b.projected;
  const title =
    `${time(b.start)}–${time(b.end)}: made ${num(b.made, unit)}` +
    (g.kind === "feeder" ? `, expected draw ${num(b.projected, unit)}` : "") +
    (b.extra_hours ? `, ${num(b.extra_hours * 60)} min extra at the current rate closes the gap` : "");
  return h(
    "tr",
    { class: "bucket", "data-phase": b.phase, title },
    h("th", { scope: "row" }, label, " ", h("span", { class: "muted when" }, `${time(b.start)}–${time(b.end)}`)),
    h("td", { class: "num", "data-field": "demand" }, num(b.effective_demand, unit)),
    h("td", { class: "num", "data-field": "supply" }, num(supply, unit)),
    h("td", { class: `num gap st-${b.status}` }, `${STATUS_ICON[b.status] || ""} ${gapText(b)}`),
  );
}

const RANK = ["ok", "at_risk", "short"];

function renderOverview() {
  const box = $("#groups");
  const groups = (model.overview && model.overview.groups) || [];
  if (!groups.length) {
    box.replaceChildren(h("p", { class: "muted" }, "No capacity groups configured."));
    return;
  }
  box.replaceChildren(
    ...groups.map((g) => {
      const worst = g.buckets.reduce((w, b) => (RANK.indexOf(b.status) > RANK.indexOf(w) ? b.status : w), "ok");
      const body = g.buckets.length
        ? h(
            "table",
            { class: "balance" },
            h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", { class: "num" }, "Demand"),
              h("th", { class: "num" }, g.kind === "feeder" ? "Capacity" : "Projected"), h("th", { class: "num" }, "Gap"))),
            h("tbody", {}, g.buckets.map((b) => bucketRow(g, b, b.phase === "open" ? "Now" : "Next"))),
          )
        : h("p", { class: "muted" }, "No forecast in force.");
      return h(
        "article",
        {
          class: `group st-${g.buckets.length ? worst : "none"}`,
          "data-group": g.id,
          tabindex: "0",
          onclick: () => openGroupDetail(g),
          onkeydown: (e) => e.key === "Enter" && openGroupDetail(g),
        },
        h("header", {}, h("h3", {}, g.name || g.id), h("span", { class: "muted" }, `${g.kind} · ${g.assets.length} assets`),
          h("span", { class: "spacer" }), g.buckets.length ? badge(worst) : null),
        body,
      );
    }),
  );
  const sel = $("#ctp-group");
  const chosen = sel.value;
  sel.replaceChildren(...groups.map((g) => h("option", { value: g.id }, g.name || g.id)));
  if (chosen && groups.some((g) => g.id === chosen)) sel.value = chosen;
  renderLink();
}

function renderFeeders() {
  const feeders = [...model.assets.values()].filter((a) => a.kind === "feeder");
  $("#feeders-h").hidden = !feeders.length;
  $("#feeders").replaceChildren(
    ...feeders.map((a) => {
      const load = a.load_kw;
      const rated = a.rated_capacity || 0;
      const pct = rated > 0 && load !== null && load !== undefined ? (load / rated) * 100 : null;
      const cls = pct === null ? "" : pct > 100 ? "over" : pct > 90 ? "high" : "";
      return h(
        "div",
        { class: `feeder ${cls}`, "data-feeder": key(a) },
        h(
          "div",
          { class: "label" },
          h("span", {}, a.name || a.asset),
          h("span", {}, `${num(load, "kW")} / ${num(rated, "kW")} · ${pct === null ? "–" : nf0.format(pct)} %${pct > 100 ? " OVERLOAD" : ""}`),
        ),
        h("div", { class: "bar" }, h("div", { class: "fill", style: `width:${Math.min(100, pct || 0)}%` })),
      );
    }),
  );
}

// ---------- alerts ----------

function upsertAlert(a) {
  if (a.status === "resolved") model.alerts.delete(a.id);
  else model.alerts.set(a.id, a);
}

function renderAlerts() {
  const list = [...model.alerts.values()].sort((a, b) => new Date(b.opened_at) - new Date(a.opened_at));
  const count = $("#alert-count");
  const open = list.filter((a) => a.status === "open").length;
  count.textContent = String(open);
  count.classList.toggle("zero", open === 0);
  $("#no-alerts").hidden = list.length > 0;
  $("#alerts").replaceChildren(
    ...list.map((a) => {
      const where = [a.group, a.asset && `${a.site}/${a.asset}`, a.agent].filter(Boolean).join(" · ");
      const acked = a.acknowledged
        ? h("div", { class: "meta" }, `Acknowledged by ${a.acknowledged.by} ${ago(a.acknowledged.at)}${a.acknowledged.note ? `: “${a.acknowledged.note}”` : ""}`)
        : null;
      return h(
        "li",
        { class: `alert kind-${a.kind} status-${a.status}`, "data-alert-id": String(a.id), "data-status": a.status },
        h("div", { class: "head" }, h("span", { class: "kind" }, a.kind.replace("_", " ")), h("span", { class: "muted" }, where),
          h("span", { class: "spacer" }), h("span", { class: "meta" }, `opened ${time(a.opened_at)}`)),
        h("div", { class: "summary" }, a.summary),
        h("div", { class: "action" }, a.action),
        h("div", { class: "meta" }, `value ${num(a.value)} · threshold ${num(a.threshold)} · ${a.status}`),
        acked,
        h(
          "div",
          { class: "buttons" },
          a.status === "open" ? h("button", { type: "button", class: "ack", onclick: () => alertAction(a, "ack") }, "Acknowledge") : null,
          h("button", { type: "button", class: "ghost resolve", onclick: () => alertAction(a, "resolve") }, "Resolve"),
        ),
      );
    }),
  );
}

function askNote(a, action) {
  const dlg = $("#note-dialog");
  $("#note-title").textContent = action === "ack" ? "Acknowledge alert" : "Resolve alert";
  $("#note-summary").textContent = a.summary;
  $("#note-ok").textContent = action === "ack" ? "Acknowledge" : "Resolve";
  $("#note-input").value = "";
  $("#note-error").hidden = true;
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok" ? { note: $("#note-input").value.trim() } : null), {
      once: true,
    });
    dlg.showModal();
  });
}

async function alertAction(a, action) {
  if (!token() && !(await askToken())) return;
  const answer = await askNote(a, action);
  if (!answer) return;
  const body = answer.note ? { note: answer.note } : undefined;
  let res = await api("POST", `/api/v1/alerts/${a.id}/${action}`, body);
  if (res.status === 401 || res.status === 403) {
    localStorage.removeItem(TOKEN_KEY);
    updateTokenButton();
    if (!(await askToken(errorText(res)))) return;
    res = await api("POST", `/api/v1/alerts/${a.id}/${action}`, body);
  }
  if (res.ok) {
    upsertAlert(res.data);
    renderAlerts();
  } else {
    flash(`Alert ${a.id}: ${errorText(res)}`);
  }
}

function flash(text) {
  const banner = $("#stale-banner");
  banner.hidden = false;
  banner.textContent = text;
  setTimeout(renderLink, 6000);
}

// ---------- detail charts ----------

const W = 900;
const H = 220;
const PAD = { l: 60, r: 12, t: 12, b: 28 };

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children.flat()) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function axes(x0, x1, ymax, unit) {
  const g = svg("g", {});
  g.append(svg("line", { class: "axis", x1: PAD.l, y1: H - PAD.b, x2: W - PAD.r, y2: H - PAD.b }));
  for (const f of [0, 0.5, 1]) {
    const y = H - PAD.b - f * (H - PAD.t - PAD.b);
    g.append(svg("line", { class: "axis", x1: PAD.l, y1: y, x2: W - PAD.r, y2: y, "stroke-dasharray": "2 4" }));
    g.append(svg("text", { x: PAD.l - 6, y: y + 4, "text-anchor": "end" }, num(ymax * f)));
  }
  g.append(svg("text", { x: 4, y: PAD.t + 10 }, unit));
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    const t = x0 + f * (x1 - x0);
    g.append(svg("text", { x: PAD.l + f * (W - PAD.l - PAD.r), y: H - 8, "text-anchor": "middle" }, time(t)));
  }
  return g;
}

function chart(title, legend, build) {
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  s.append(svg("defs", {}, svg("pattern", { id: "hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" },
    svg("rect", { width: 6, height: 6, fill: "#0b1015" }), svg("line", { x1: 0, y1: 0, x2: 0, y2: 6, stroke: "#58a6ff", "stroke-width": 3 }))));
  build(s);
  return h("div", { class: "chart" }, h("h3", {}, title), s, legend ? h("div", { class: "legend" }, legend) : null);
}

function lineChart(title, buckets, series, unit) {
  const t0 = new Date(buckets[0].start).getTime();
  const t1 = new Date(buckets[buckets.length - 1].end).getTime();
  const ymax = Math.max(1e-9, ...buckets.flatMap((b) => series.map((s) => s.get(b) || 0))) * 1.1;
  const x = (t) => PAD.l + ((t - t0) / (t1 - t0)) * (W - PAD.l - PAD.r);
  const y = (v) => H - PAD.b - (v / ymax) * (H - PAD.t - PAD.b);
  return chart(title, series.map((s, i) => h("span", {}, `${i === 0 ? "━" : "╍"} ${s.name}`)), (el) => {
    el.append(axes(t0, t1, ymax, unit));
    series.forEach((s, i) => {
      let d = "";
      // A value with no neighbour on either side draws no line: it gets a dot.
      let run = [];
      const endRun = () => {
        if (run.length === 1) el.append(svg("circle", { class: `s${i} dot`, cx: run[0][0], cy: run[0][1], r: 3 }));
        run = [];
      };
      for (const b of buckets) {
        const v = s.get(b);
        if (v === null || v === undefined) {
          endRun();
          continue;
        }
        const mid = (new Date(b.start).getTime() + new Date(b.end).getTime()) / 2;
        const [px, py] = [x(mid).toFixed(1), y(v).toFixed(1)];
        d += `${run.length ? "L" : "M"}${px},${py} `;
        run.push([px, py]);
      }
      endRun();
      if (d) el.append(svg("path", { class: `s${i}`, d }));
    });
  });
}

function stateChart(buckets) {
  const t0 = new Date(buckets[0].start).getTime();
  const t1 = new Date(buckets[buckets.length - 1].end).getTime();
  const states = ["running", "idle", "setup", "maintenance", "down"];
  return chart("Time in each state", states.map((s) => h("span", {}, h("span", { class: `state s-${s}` }, s))), (el) => {
    el.append(axes(t0, t1, 100, "%"));
    const bw = (W - PAD.l - PAD.r) / buckets.length;
    buckets.forEach((b, i) => {
      const total = b.covered_seconds || 0;
      if (!total) return;
      let acc = 0;
      for (const s of states) {
        const share = (b.seconds[s] || 0) / total;
        if (!share) continue;
        const hgt = share * (H - PAD.t - PAD.b);
        el.append(svg("rect", { class: `st-${s}`, x: PAD.l + i * bw, y: H - PAD.b - acc - hgt, width: Math.max(1, bw - 1), height: hgt }));
        acc += hgt;
      }
    });
  });
}

async function openAssetDetail(site, asset) {
  const hours = Number($("#detail-range").value);
  const dlg = $("#detail");
  dlg.dataset.kind = "asset";
  dlg.dataset.site = site;
  dlg.dataset.asset = asset;
  $("#detail-title").textContent = `${asset} · ${site}`;
  const body = $("#detail-body");
  body.replaceChildren(h("p", { class: "muted" }, "Loading history…"));
  if (!dlg.open) dlg.showModal();
  const from = new Date(Date.now() - hours * 3600e3).toISOString();
  const res = await api("GET", `/api/v1/assets/${encodeURIComponent(site)}/${encodeURIComponent(asset)}/history?from=${encodeURIComponent(from)}&points=120`);
  if (!res.ok) {
    body.replaceChildren(h("p", { class: "error" }, errorText(res)));
    return;
  }
  const b = res.data.buckets;
  if (!b.length || !b.some((x) => x.samples > 0)) {
    body.replaceChildren(h("p", { class: "muted" }, `No history in the last ${hours} h.`));
    return;
  }
  const a = model.assets.get(`${site}/${asset}`);
  const unit = res.data.output_unit || "";
  const parts = [lineChart(`Output rate (${unit}/h)`, b, [{ name: "rate", get: (x) => x.rate_per_hour }], `${unit}/h`), stateChart(b)];
  if (b.some((x) => x.load_mean_kw !== null)) {
    parts.push(lineChart("Load (kW)", b, [
      { name: "mean", get: (x) => x.load_mean_kw },
      { name: "max", get: (x) => x.load_max_kw },
    ], "kW"));
  }
  if (a) parts.unshift(h("p", {}, `Now: ${a.state || "unknown"}${a.reason ? ` (${a.reason})` : ""} since ${time(a.state_since)}, rate ${rateText(a)}, total ${num(a.output_total, unit)}.`));
  body.replaceChildren(...parts);
}

async function openGroupDetail(g) {
  const hours = Number($("#detail-range").value);
  const dlg = $("#detail");
  dlg.dataset.kind = "group";
  dlg.dataset.group = g.id;
  $("#detail-title").textContent = `${g.name || g.id} · demand against actual`;
  const body = $("#detail-body");
  body.replaceChildren(h("p", { class: "muted" }, "Loading history…"));
  if (!dlg.open) dlg.showModal();
  const from = new Date(Date.now() - hours * 3600e3).toISOString();
  const to = new Date(Date.now() + 24 * 3600e3).toISOString();
  const res = await api("GET", `/api/v1/groups/${encodeURIComponent(g.id)}/history?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
  if (!res.ok) {
    body.replaceChildren(h("p", { class: "error" }, errorText(res)));
    return;
  }
  const b = res.data.buckets;
  if (!b.length) {
    body.replaceChildren(h("p", { class: "muted" }, "No forecast buckets in this range."));
    return;
  }
  const unit = b[0].unit;
  const t0 = new Date(b[0].start).getTime();
  const t1 = new Date(b[b.length - 1].end).getTime();
  const ymax = Math.max(1e-9, ...b.map((x) => Math.max(x.effective_demand || 0, x.actual || 0, x.projected || 0))) * 1.1;
  const xs = (t) => PAD.l + ((t - t0) / (t1 - t0)) * (W - PAD.l - PAD.r);
  const ys = (v) => H - PAD.b - (v / ymax) * (H - PAD.t - PAD.b);
  const bars = chart(`Demand against actual per bucket (${unit})`, [
    h("span", {}, "┅ demand"), h("span", {}, "█ actual"), h("span", {}, "▨ projected"),
  ], (el) => {
    el.append(axes(t0, t1, ymax, unit));
    for (const x of b) {
      const l = xs(new Date(x.start).getTime()) + 1;
      const w = Math.max(2, xs(new Date(x.end).getTime()) - l - 2);
      if (x.projected !== null && x.projected > x.actual) {
        el.append(svg("rect", { class: "bar-projected", x: l, y: ys(x.projected), width: w, height: ys(0) - ys(x.projected) }));
      }
      el.append(svg("rect", { class: "bar-actual", x: l, y: ys(x.actual), width: w, height: ys(0) - ys(x.actual) }));
      el.append(svg("rect", { class: "bar-demand", x: l, y: ys(x.effective_demand), width: w, height: ys(0) - ys(x.effective_demand) }));
    }
  });
  const table = h("table", { class: "buckets-table" },
    h("thead", {}, h("tr", {}, ["Bucket", "Phase", "Demand", "Actual", "Projected", "Gap %", "Status"].map((t) => h("th", {}, t)))),
    h("tbody", {}, b.map((x) => h("tr", {},
      h("td", {}, `${time(x.start)}–${time(x.end)}`), h("td", {}, x.phase || "–"),
      h("td", { class: "num" }, num(x.effective_demand)), h("td", { class: "num" }, num(x.actual)),
      h("td", { class: "num" }, num(x.projected)), h("td", { class: "num" }, x.gap_pct === null ? "–" : num(x.gap_pct)),
      h("td", {}, x.status ? badge(x.status) : "–")))));
  body.replaceChildren(bars, table);
}

// ---------- capable to promise ----------

function defaultDue() {
  const d = new Date(Date.now() + 8 * 3600e3);
  d.setMinutes(0, 0, 0);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

async function askPromise(ev) {
  ev.preventDefault();
  const out = $("#ctp-answer");
  const group = $("#ctp-group").value;
  const quantity = Number($("#ctp-quantity").value);
  const due = new Date($("#ctp-due").value);
  if (!group || !(quantity > 0) || Number.isNaN(due.getTime())) {
    out.replaceChildren(h("p", { class: "error" }, "Choose a group, a quantity above 0 and a due time."));
    return;
  }
  out.replaceChildren(h("p", { class: "muted" }, "Asking…"));
  const res = await api("POST", "/api/v1/promise", { group, quantity, due: due.toISOString() });
  if (!res.ok) {
    out.replaceChildren(h("p", { class: "error" }, errorText(res)));
    return;
  }
  const d = res.data;
  const a = d.answer;
  const unit = d.unit === "kWh" ? "kWh" : "pieces";
  const verdict = a.feasible
    ? `Yes: ${num(d.quantity)} ${unit} by ${time(d.due)}`
    : `No: not ${num(d.quantity)} ${unit} by ${time(d.due)}`;
  out.replaceChildren(
    h(
      "div",
      { class: `answer ${a.feasible ? "yes" : "no"}`, "data-feasible": String(a.feasible) },
      h("div", { class: "verdict" }, verdict),
      h("p", {}, a.earliest ? `Earliest completion: ${time(a.earliest)}.` : "Not within a year at the current rate."),
      h("p", { class: "muted" }, `Free capacity by the due time: ${num(a.available_by_due)} ${unit} · group rate ${num(d.rate_per_hour)} ${unit}/h · ${d.reservations_counted} reservation(s) counted.`),
    ),
  );
}

// ---------- forecast accuracy ----------

const ACCURACY_PATH = "/api/v1/reports/forecast-accuracy";
// Buckets shown per group: the ones furthest off their forecast.
const ACCURACY_ROWS = 5;
const ACCURACY_EVERY_MS = 60000;

const signed = (v) => (v === null || v === undefined ? "–" : `${v > 0 ? "+" : ""}${num(v)} %`);
const offBy = (b) => (b.deviation_pct === null ? -1 : Math.abs(b.deviation_pct));

function accuracyCard(g) {
  const unit = g.unit === "kWh" ? "kWh" : "pcs";
  const t = g.totals;
  const worst = [...g.buckets].sort((a, b) => offBy(b) - offBy(a)).slice(0, ACCURACY_ROWS);
  return h(
    "article",
    { class: "accuracy-group", "data-group": g.group },
    h("header", {}, h("h3", {}, g.group),
      h("span", { class: "muted" }, `MAPE ${t.mape_pct === null ? "–" : `${num(t.mape_pct)} %`} · bias ${signed(t.bias_pct)} · ${t.complete_buckets}/${t.buckets} complete`)),
    h("table", { class: "accuracy" },
      h("thead", {}, h("tr", {}, h("th", {}, "Bucket"), h("th", { class: "num" }, "Forecast"),
        h("th", { class: "num" }, "Actual"), h("th", { class: "num" }, "Deviation"), h("th", {}, ""))),
      h("tbody", {}, worst.map((b) => h(
        "tr",
        { class: `${b.over_threshold ? "over" : ""} ${b.complete ? "" : "incomplete"}`.trim() || null,
          title: b.complete ? null : `data missing: ${b.missing.join(", ")}` },
        h("td", {}, `${time(b.start)}–${time(b.end)}`),
        h("td", { class: "num" }, num(b.effective_demand, unit)),
        h("td", { class: "num" }, num(b.actual, unit)),
        h("td", { class: "num dev" }, b.deviation_pct === null ? "no demand" : signed(b.deviation_pct)),
        h("td", {}, b.complete ? (b.over_threshold ? `✕ over ${num(g.deviation_threshold_pct)} %` : "✓")
          : `… incomplete (${b.missing.length})`),
      )))),
  );
}

async function loadAccuracy() {
  const box = $("#accuracy");
  const res = await api("GET", ACCURACY_PATH);
  if (!res.ok) {
    box.replaceChildren(h("p", { class: "error" }, errorText(res)));
    return;
  }
  const groups = res.data.groups.filter((g) => g.buckets.length);
  box.replaceChildren(...(groups.length ? groups.map(accuracyCard)
    : [h("p", { class: "muted" }, "No closed forecast bucket in the last 31 days.")]));
}

async function downloadAccuracyCsv() {
  const r = await fetch(`${ACCURACY_PATH}?format=csv`, { headers: authHeaders() }).catch(() => null);
  if (!r || !r.ok) {
    flash(`CSV download failed: ${r ? `HTTP ${r.status}` : "no connection"}`);
    return;
  }
  const url = URL.createObjectURL(await r.blob());
  const a = h("a", { href: url, download: "forecast-accuracy.csv" });
  document.body.append(a);
  a.click();
  a.remove();
  URL.revokeObjectURL(url);
}

// ---------- start ----------

function start() {
  updateTokenButton();
  $("#ctp-due").value = defaultDue();
  $("#ctp-form").addEventListener("submit", askPromise);
  $("#accuracy-refresh").addEventListener("click", loadAccuracy);
  $("#accuracy-csv").addEventListener("click", downloadAccuracyCsv);
  $("#token-btn").addEventListener("click", async () => {
    if (token()) {
      localStorage.removeItem(TOKEN_KEY);
      updateTokenButton();
    } else if (await askToken()) connect();
  });
  $("#detail-range").addEventListener("change", () => {
    const d = $("#detail");
    if (d.dataset.kind === "asset") openAssetDetail(d.dataset.site, d.dataset.asset);
    else if (d.dataset.kind === "group" && model.overview) {
      const g = model.overview.groups.find((x) => x.id === d.dataset.group);
      if (g) openGroupDetail(g);
    }
  });
  setInterval(() => {
    renderLink();
    refreshAges();
  }, 1000);
  setInterval(loadAccuracy, ACCURACY_EVERY_MS);
  connect();
  loadAccuracy();
}

document.addEventListener("DOMContentLoaded", start);
