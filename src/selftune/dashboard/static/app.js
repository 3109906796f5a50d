// selftune dashboard: one page, three views (studies, a study, a trial), live by polling the JSON API.
// Everything from the storage (names, parameters, attributes, tracebacks) is inserted as text, never HTML.
"use strict";

const app = document.getElementById("app");
const state = { config: null, timer: null, etags: new Map(), cache: new Map() };

// -- helpers ----------------------------------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

async function getJSON(url) {
  // GET with If-None-Match: a 304 gives back the last body seen for this URL
  const headers = {};
  if (state.etags.has(url)) headers["If-None-Match"] = state.etags.get(url);
  const res = await fetch(url, { headers, cache: "no-store" });
  if (res.status === 304) return { data: state.cache.get(url), changed: false };
  if (!res.ok) {
    const text = await res.text();
    let detail = text;
    try { detail = JSON.parse(text).detail || text; } catch (e) { /* not JSON: an error page */ }
    throw new Error(`${res.status} ${detail}`);
  }
  const data = await res.json();
  const etag = res.headers.get("ETag");
  if (etag) { state.etags.set(url, etag); state.cache.set(url, data); }
  return { data, changed: true };
}

let plotly = null;
function loadPlotly() {
  // Plotly's bundle is big: it downloads from the start (preload) but runs only once the first data is on
  // the page, so the counts and the trial table do not wait for it
  if (!plotly) {
    plotly = new Promise((resolve, reject) => {
      const s = el("script", { src: "/static/plotly.min.js" });
      s.onload = () => resolve(window.Plotly);
      s.onerror = () => reject(new Error("could not load /static/plotly.min.js"));
      document.head.append(s);
    });
  }
  return plotly;
}

function nextPaint() {
  // resolves once the page has painted what it holds: the second animation frame from now (a hidden tab
  // has no frames: there, at once)
  if (document.hidden) return Promise.resolve();
  return new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve())));
}

// -- a preview of a figure without Plotly ------------------------------------------------------------------
// Plotly's bundle takes a second or more to compile and run in a cold browser; until it has, the history
// panel shows its points and lines drawn here, as SVG, from the same downsampled figure the server sent.
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
const DTYPES = { f8: Float64Array, f4: Float32Array, i1: Int8Array, u1: Uint8Array, i2: Int16Array, u2: Uint16Array,
  i4: Int32Array, u4: Uint32Array };
function values(v) {
  // a trace's x or y: a plain array, or Plotly's typed array ({dtype, bdata: base64, little-endian})
  if (!v) return [];
  if (Array.isArray(v)) return v.map((x) => (x === null || x === undefined ? NaN : Number(x)));
  const type = DTYPES[v.dtype];
  if (!type || typeof v.bdata !== "string") return [];
  const bytes = Uint8Array.from(atob(v.bdata), (c) => c.charCodeAt(0));
  return Array.from(new type(bytes.buffer));
}
function ticks(lo, hi) {
  // about 5 round tick values (1, 2 or 5 times a power of ten apart) between lo and hi
  const raw = (hi - lo) / 5, mag = 10 ** Math.floor(Math.log10(raw)), err = raw / mag;
  const step = mag * (err < 1.5 ? 1 : err < 3 ? 2 : err < 7 ? 5 : 10);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}
function drawPreview(div, figure) {
  const width = Math.max(300, div.clientWidth || 560), height = 420;
  const m = { l: 60, r: 190, t: 100, b: 60 };
  const layout = figure.layout || {};
  const logY = layout.yaxis && layout.yaxis.type === "log";
  const traces = (figure.data || []).filter((t) => (t.type || "scatter") === "scatter")
    .map((t) => ({ t, x: values(t.x), y: values(t.y).map((v) => (logY ? Math.log10(v) : v)) }));
  const xs = traces.flatMap((d) => d.x).filter(Number.isFinite), ys = traces.flatMap((d) => d.y).filter(Number.isFinite);
  const root = svg("svg", { class: "preview", width, height, viewBox: `0 0 ${width} ${height}` });
  const title = layout.title && (typeof layout.title === "string" ? layout.title : layout.title.text);
  const [head, sub] = String(title || "").split("<br>");
  root.append(svg("text", { x: 35, y: 50, class: "preview-title" }, head));
  if (sub) root.append(svg("text", { x: 35, y: 68, class: "preview-tick" }, sub.replace(/<[^>]*>/g, "")));
  if (!xs.length || !ys.length) { div.replaceChildren(root); return; }
  const range = (a) => {
    let lo = Infinity, hi = -Infinity;
    for (const v of a) { if (v < lo) lo = v; if (v > hi) hi = v; }
    if (lo === hi) { lo -= 0.5; hi += 0.5; }
    const pad = (hi - lo) * 0.05;
    return [lo - pad, hi + pad];
  };
  const [x0, x1] = range(xs), [y0, y1] = range(ys);
  const px = (x) => m.l + ((x - x0) / (x1 - x0)) * (width - m.l - m.r);
  const py = (y) => height - m.b - ((y - y0) / (y1 - y0)) * (height - m.t - m.b);
  root.append(svg("rect", { x: m.l, y: m.t, width: width - m.l - m.r, height: height - m.t - m.b, class: "preview-plot" }));
  for (const xv of ticks(x0, x1)) root.append(svg("text", { x: px(xv), y: height - m.b + 18, "text-anchor": "middle", class: "preview-tick" }, fmt(xv)));
  for (const yv of ticks(y0, y1)) root.append(svg("text", { x: m.l - 6, y: py(yv) + 4, "text-anchor": "end", class: "preview-tick" }, fmt(logY ? 10 ** yv : yv)));
  const axis = (a) => (layout[a] && layout[a].title && layout[a].title.text) || "";
  root.append(svg("text", { x: (m.l + width - m.r) / 2, y: height - 15, "text-anchor": "middle", class: "preview-axis" }, axis("xaxis")));
  root.append(svg("text", { x: 18, y: (m.t + height - m.b) / 2, "text-anchor": "middle", class: "preview-axis",
    transform: `rotate(-90 18 ${(m.t + height - m.b) / 2})` }, axis("yaxis")));
  traces.forEach(({ t }, i) => {  // the legend
    const color = (t.marker && t.marker.color) || (t.line && t.line.color) || "#1f77b4";
    root.append(svg("circle", { cx: width - m.r + 25, cy: m.t + 8 + 20 * i, r: 4, fill: typeof color === "string" ? color : "#1f77b4" }));
    root.append(svg("text", { x: width - m.r + 36, y: m.t + 12 + 20 * i, class: "preview-tick" }, t.name || ""));
  });
  for (const { t, x, y } of traces) {
    const mode = t.mode || "markers";
    const color = (t.marker && t.marker.color) || (t.line && t.line.color) || "#1f77b4";
    if (mode.includes("lines")) {
      let d = "";
      const hv = t.line && t.line.shape === "hv";
      for (let i = 0; i < x.length; i++) {
        if (!Number.isFinite(x[i]) || !Number.isFinite(y[i])) continue;
        if (!d) d = `M${px(x[i])},${py(y[i])}`;
        else d += hv ? `H${px(x[i])}V${py(y[i])}` : `L${px(x[i])},${py(y[i])}`;
      }
      if (d) root.append(svg("path", { d, fill: "none", stroke: (t.line && t.line.color) || color, "stroke-width": (t.line && t.line.width) || 2 }));
    }
    if (mode.includes("markers")) {
      const g = svg("g", { fill: typeof color === "string" ? color : "#1f77b4", opacity: (t.marker && t.marker.opacity) || 1 });
      for (let i = 0; i < x.length; i++) {
        if (Number.isFinite(x[i]) && Number.isFinite(y[i])) g.append(svg("circle", { class: "point", cx: px(x[i]), cy: py(y[i]), r: 3 }));
      }
      root.append(g);
    }
  }
  div.replaceChildren(root);
  div.classList.add("previewed");
}

function fmt(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    return Math.abs(v) >= 1e-3 && Math.abs(v) < 1e6 ? String(Number(v.toPrecision(6))) : v.toExponential(4);
  }
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}
const fmtTime = (t) => (t ? new Date(t * 1000).toLocaleString() : "–");
const fmtDuration = (s) => (s === null || s === undefined ? "–" : s < 60 ? `${s.toFixed(2)} s` : `${(s / 60).toFixed(1)} min`);
const stateTag = (s) => el("span", { class: `state state-${s}`, text: s });

async function every(fn) {
  // run fn now (its errors go to the caller), then every refresh interval while the page is visible
  clearInterval(state.timer);
  await fn();
  setLive(true);
  let busy = false;
  state.timer = setInterval(async () => {
    if (busy || document.hidden) return;
    busy = true;
    try { await fn(); setLive(true); } catch (e) { setLive(false, e); } finally { busy = false; }
  }, state.config.refresh * 1000);
}
function setLive(ok, err) {
  const live = document.getElementById("live");
  live.textContent = ok ? `live · refreshes every ${state.config.refresh} s` : `not updating: ${err && err.message}`;
}
function fail(err) {
  app.replaceChildren(el("p", { class: "error", text: String(err.message || err) }), el("a", { href: "/", text: "all studies" }));
}

function token() {
  let t = sessionStorage.getItem("selftune-token");
  if (!t) {
    t = window.prompt(`Token (${state.config.token_header}) for this change:`);
    if (t) sessionStorage.setItem("selftune-token", t);
  }
  return t;
}
async function write(method, url, body) {
  const t = token();
  if (!t) return null;
  const res = await fetch(url, {
    method, headers: { "Content-Type": "application/json", [state.config.token_header]: t },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json();
  if (res.status === 403) sessionStorage.removeItem("selftune-token");
  if (!res.ok) { window.alert(data.detail || res.statusText); return null; }
  return data;
}

// -- the list of studies -----------------------------------------------------------------------------------
async function studiesView() {
  document.title = "studies · selftune";
  const body = el("tbody", { id: "studies" });
  app.replaceChildren(el("h1", { text: "Studies" }), el("table", {},
    el("thead", {}, el("tr", {}, ["name", "direction", "trials", "complete", "running", "failed", "best", "created", "note"]
      .map((h) => el("th", { class: ["trials", "complete", "running", "failed", "best"].includes(h) ? "num" : null, text: h })))),
    body));
  await every(async () => {
    const { data } = await getJSON("/api/studies");
    body.replaceChildren(...data.studies.map((s) => el("tr", { class: "clickable", "data-study": s.name,
      onclick: () => { location.href = `/studies/${s.id}`; } },
      el("td", {}, el("a", { href: `/studies/${s.id}`, text: s.name })), el("td", { text: s.direction }),
      el("td", { class: "num", text: s.n_trials }), el("td", { class: "num", text: s.counts.COMPLETE || 0 }),
      el("td", { class: "num", text: s.counts.RUNNING || 0 }), el("td", { class: "num", text: s.counts.FAILED || 0 }),
      el("td", { class: "num", text: fmt(s.best_value) }), el("td", { text: fmtTime(s.created_at) }),
      el("td", { class: "muted", text: s.note || "" }))));
    if (!data.studies.length) body.replaceChildren(el("tr", {}, el("td", { colspan: 9, class: "muted", text: "no studies yet" })));
  });
}

// -- one study ---------------------------------------------------------------------------------------------
async function studyView(id) {
  const base = `/api/studies/${id}`;
  const view = { cursor: -1, panels: {}, table: { cursor: -1, offset: 0, limit: 50, sort: "number", order: "desc", state: "", total: 0 }, first: null };
  const cards = el("div", { class: "cards" });
  const title = el("h1");
  const note = el("p", { class: "muted" });
  const panelsBox = el("div", { class: "panels" });
  const thead = el("thead");
  const tbody = el("tbody", { id: "trials" });
  const pager = el("span", { class: "muted", id: "pager" });
  const stateSel = el("select", { id: "state-filter" }, el("option", { value: "", text: "all states" }),
    ["COMPLETE", "RUNNING", "PAUSED", "STOPPED", "FAILED", "WAITING"].map((s) => el("option", { value: s, text: s })));
  const sortSel = el("select", { id: "sort" }, [["number", "desc", "newest first"], ["number", "asc", "oldest first"],
    ["value", "best", "best value first"], ["duration", "desc", "longest first"]].map(([k, o, t]) => el("option", { value: `${k}:${o}`, text: t })));
  const writes = el("span");
  app.replaceChildren(title, note, cards, writes, el("div", { class: "panels-wrap" }, panelsBox),
    el("h2", { text: "Trials" }),
    el("div", { class: "controls" }, stateSel, sortSel,
      el("button", { id: "prev", text: "◀ previous", onclick: () => page(-1) }),
      el("button", { id: "next", text: "next ▶", onclick: () => page(1) }), pager),
    el("table", {}, thead, tbody));

  let summary = null;
  const panelKeys = [];
  const wide = ["timeline", "intermediate", "lineage"];
  function ensurePanels(keys) {
    // the study's panels: the standard ones, and the PBT lineage and schedule once a trial has a lineage
    for (const key of keys) {
      if (view.panels[key]) continue;
      const div = el("div", { class: `panel${wide.includes(key) ? " wide" : ""}`, id: `panel-${key}` });
      panelsBox.append(div);
      view.panels[key] = { div, cursor: -1, busy: false };
      panelKeys.push(key);
    }
  }
  ensurePanels(Object.keys(state.config.panels));

  const orderOf = () => {
    const [sort, order] = sortSel.value.split(":");
    if (order === "best") return { sort, order: summary && summary.direction === "maximize" ? "desc" : "asc" };
    return { sort, order };
  };
  stateSel.onchange = () => { view.table.offset = 0; loadTable(); };
  sortSel.onchange = () => { view.table.offset = 0; loadTable(); };
  function page(dir) {
    const t = view.table;
    const next = t.offset + dir * t.limit;
    if (next < 0 || next >= t.total) return;
    t.offset = next;
    loadTable();
  }

  async function loadTable() {
    const t = view.table;
    const { sort, order } = orderOf();
    const q = new URLSearchParams({ offset: t.offset, limit: t.limit, sort, order });
    if (stateSel.value) q.set("state", stateSel.value);
    const res = await fetch(`${base}/trials?${q}`, { cache: "no-store" });
    const data = await res.json();
    if (!res.ok) throw new Error(data.detail);
    t.cursor = data.cursor; t.total = data.total;
    const names = summary.params;
    thead.replaceChildren(el("tr", {}, el("th", { class: "num", text: "#" }), el("th", { text: "state" }),
      el("th", { class: "num", text: "value" }), names.map((n) => el("th", { text: n })),
      el("th", { class: "num", text: "duration" }), el("th", { class: "num", text: "steps" }), el("th", { text: "reason" })));
    tbody.replaceChildren(...data.trials.map((r) => el("tr", { class: "clickable", "data-number": r.number,
      onclick: () => { location.href = `/studies/${id}/trials/${r.number}`; } },
      el("td", { class: "num" }, el("a", { href: `/studies/${id}/trials/${r.number}`, text: r.number })),
      el("td", {}, stateTag(r.state)), el("td", { class: "num", text: fmt(r.value) }),
      names.map((n) => el("td", { text: n in r.params ? fmt(r.params[n]) : "" })),
      el("td", { class: "num", text: fmtDuration(r.duration) }), el("td", { class: "num", text: fmt(r.last_step) }),
      el("td", { class: "muted", text: r.reason || "" }))));
    pager.textContent = data.total ? `${t.offset + 1}–${Math.min(t.offset + t.limit, data.total)} of ${data.total}` : "no trials";
    tbody.dataset.cursor = data.cursor;
  }

  async function drawPanel(key, { data, changed }) {
    const p = view.panels[key];
    if (changed || !p.div.classList.contains("rendered")) {
      const layout = Object.assign({}, data.figure.layout, { autosize: true,
        height: key === "slice" ? 460 : key === "schedule" ? Math.max(420, data.figure.layout.height || 0) : 420 });
      const t0 = performance.now();
      if (p.div.classList.contains("previewed")) { p.div.replaceChildren(); p.div.classList.remove("previewed"); }
      await Plotly.react(p.div, data.figure.data || [], layout, { responsive: true, displaylogo: false });
      (window.selftuneDrawTimes = window.selftuneDrawTimes || {})[key] = performance.now() - t0;
      if (key === "history" && !p.hooked) {
        p.hooked = true;
        p.div.on("plotly_click", (ev) => { const pt = ev.points && ev.points[0]; if (pt && Number.isInteger(pt.x)) location.href = `/studies/${id}/trials/${pt.x}`; });
      }
    }
    p.cursor = data.cursor;
    p.div.dataset.cursor = data.cursor;
    p.div.classList.add("rendered");
  }

  function renderSummary(s) {
    document.title = `${s.name} · selftune`;
    title.textContent = s.name;
    note.textContent = s.note ? `note: ${s.note}` : "";
    const c = (k) => s.counts[k] || 0;
    const card = (label, value, attrs) => el("div", { class: "card" }, el("div", { class: "label", text: label }), el("div", Object.assign({ class: "big" }, attrs || {}), value));
    const best = s.best ? el("a", { href: `/studies/${id}/trials/${s.best.number}`, text: `${fmt(s.best.value)} (trial ${s.best.number})` }) : "–";
    cards.replaceChildren(card("trials", String(s.n_trials), { id: "n-trials" }), card("complete", String(c("COMPLETE"))),
      card("running", String(c("RUNNING")), { id: "n-running" }), card("stopped", String(c("STOPPED"))), card("failed", String(c("FAILED"))),
      card("direction", s.direction), card("best value", best, { id: "best" }));
    if (state.config.writable && !writes.childElementCount) {
      writes.append(el("div", { class: "controls" },
        el("button", { text: "edit note", onclick: async () => {
          const text = window.prompt("Note for this study:", summary.note || "");
          if (text !== null && await write("PUT", `${base}/note`, { note: text })) note.textContent = `note: ${text}`;
        } }),
        el("button", { text: "delete study", onclick: async () => {
          if (window.confirm(`Delete study ${summary.name} and all its trials?`) && await write("DELETE", base)) location.href = "/";
        } })));
    }
  }

  await every(async () => {
    const { data, changed } = await getJSON(base);
    summary = data;
    if (changed) renderSummary(data);
    ensurePanels(Object.keys(data.panels));
    const stale = panelKeys.filter((key) => view.panels[key].cursor < data.cursor)
      .sort((a, b) => (a === "parallel") - (b === "parallel"));  // WebGL: slowest to start, drawn last
    const fetched = new Map();
    const figureOf = (key) => {
      if (!fetched.has(key)) fetched.set(key, getJSON(`${base}/figures/${key}`));
      return fetched.get(key);
    };
    if (stale.includes("history")) figureOf("history").catch(() => null);  // asked for with the table
    if (view.table.cursor < data.cursor) await loadTable();
    if (view.first === null) {
      view.first = performance.now();  // from navigation start: the counts and the trial table are shown
      window.selftuneFirstView = view.first;
      document.body.dataset.firstView = "1";
    }
    for (const key of stale) figureOf(key).catch(() => null);  // fetch every stale figure at once
    if (!window.Plotly && stale.includes("history")) {
      // Plotly is not loaded yet (a cold browser spends a second or more on it): preview the history first
      try { drawPreview(view.panels.history.div, (await figureOf("history")).data.figure); } catch (e) { /* Plotly will draw it */ }
      await nextPaint();
    }
    await loadPlotly();
    // draw them in the panels' order (the page runs one thing at a time)
    for (const key of stale) {
      try {
        await drawPanel(key, await figureOf(key));
      } catch (e) {  // one panel failing leaves the others alone; it is asked for again on the next poll
        const div = view.panels[key].div;
        if (!div.classList.contains("rendered")) div.replaceChildren(el("p", { class: "error", text: `${key}: ${e.message} (retrying)` }));
      }
    }
    // every panel drawn (PBT's panels, added when a trial first has a lineage, included)
    const ready = panelKeys.every((key) => view.panels[key].div.classList.contains("rendered"));
    if (ready && view.drawn === undefined) view.drawn = window.selftunePlotsDrawn = performance.now();  // from navigation start
    document.body.dataset.ready = ready ? "1" : "0";
  });
}

// -- one trial ---------------------------------------------------------------------------------------------
async function trialView(id, number) {
  const box = el("div");
  const curve = el("div", { class: "panel wide", id: "curve" });
  app.replaceChildren(box, el("h2", { text: "Learning curve" }), curve);
  let last = null;
  const kv = (rows) => el("table", { class: "kv" }, el("tbody", {}, rows.map(([k, v]) => el("tr", {}, el("td", { text: k }), el("td", {}, v)))));
  await every(async () => {
    if (last && ["COMPLETE", "STOPPED", "FAILED"].includes(last.state)) return;
    const res = await fetch(`/api/studies/${id}/trials/${number}`, { cache: "no-store" });
    const data = await res.json();
    if (!res.ok) throw new Error(data.detail);
    const t = data.trial;
    last = t;
    document.title = `trial ${t.number} · ${data.study.name} · selftune`;
    box.replaceChildren(...[
      el("p", {}, el("a", { href: `/studies/${id}`, text: `← ${data.study.name}` })),
      el("h1", { id: "trial-title", text: `Trial ${t.number}` }),
      kv([["state", stateTag(t.state)], ["value", fmt(t.value)], ["reason", t.reason || "–"], ["worker", t.worker || "–"],
        ["started", fmtTime(t.started_at)], ["finished", fmtTime(t.finished_at)], ["duration", fmtDuration(t.duration)],
        ["reports", String(t.curve.n_reports)]]),
      el("h2", { text: "Parameters" }),
      kv(Object.entries(t.params).map(([k, v]) => [k, fmt(v)])),
      Object.keys(t.fixed).length ? [el("h2", { text: "Fixed in advance" }), kv(Object.entries(t.fixed).map(([k, v]) => [k, fmt(v)]))] : null,
      el("h2", { text: "Attributes" }),
      Object.keys(t.user_attrs).length ? el("pre", { id: "attrs", text: JSON.stringify(t.user_attrs, null, 2) }) : el("p", { class: "muted", text: "none" }),
      t.traceback ? [el("h2", { text: "Traceback" }), el("pre", { text: t.traceback })] : null,
    ].flat().filter((c) => c !== null));
    if (t.curve.steps.length) {
      await loadPlotly();
      await Plotly.react(curve, [{ x: t.curve.steps, y: t.curve.values, mode: "lines+markers", name: `trial ${t.number}` }],
        { title: { text: t.curve.n_reports > t.curve.steps.length ? `${t.curve.steps.length} of ${t.curve.n_reports} reports shown` : "" },
          xaxis: { title: { text: "step" } }, yaxis: { title: { text: "value" } }, height: 380, autosize: true },
        { responsive: true, displaylogo: false });
    } else {
      curve.replaceChildren(el("p", { class: "muted", text: "this trial reported no intermediate values" }));
    }
    curve.classList.add("rendered");
    document.body.dataset.ready = "1";
  });
}

// -- routing -----------------------------------------------------------------------------------------------
async function main() {
  try {
    state.config = (await getJSON("/api/config")).data;
  } catch (e) { fail(e); return; }
  document.getElementById("storage").textContent = state.config.storage;
  const path = location.pathname;
  let m;
  let view;
  if ((m = path.match(/^\/studies\/(\d+)\/trials\/(\d+)\/?$/))) view = trialView(m[1], m[2]);
  else if ((m = path.match(/^\/studies\/(\d+)\/?$/))) view = studyView(m[1]);
  else view = studiesView();
  return view.catch(fail);
}
main();
