// The Psyche run dashboard: renders the server's view (GET /api/run/<id>, then server-sent events) into the
// page. No libraries: tables are DOM, charts are hand-drawn SVG. window.psycheDashboard exposes timings
// (page load, each view received) for the browser test and the bench.
"use strict";
const $ = (id) => document.getElementById(id);
const stats = { start: performance.now(), firstView: null, views: 0, lastViewAt: null, version: null };
window.psycheDashboard = stats;
let view = null, clockSkew = 0;

function esc(s) { return String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`); }
function short(key) { return key ? `${key.slice(0, 6)}…${key.slice(-4)}` : "-"; }
function num(x, d = 0) { return x == null ? "-" : Number(x).toLocaleString(undefined, { maximumFractionDigits: d,
  minimumFractionDigits: d }); }

function setConnection(state, detail) {
  const b = $("connection");
  b.textContent = state; b.className = `badge ${state.replace(/\s+/g, "-")}`; b.title = detail || "";
}

function rows(tbody, html) { $(tbody).querySelector("tbody").innerHTML = html.join(""); }

function chart(svg, points, key, digits) {
  const W = 420, H = svg.viewBox.baseVal.height, L = 44, R = 8, T = 8, B = 18;
  const pts = points.filter((p) => p[key] != null);
  if (!pts.length) { svg.innerHTML = `<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no reports yet</text>`; return; }
  const xs = pts.map((p) => p.step), ys = pts.map((p) => p[key]);
  let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= Math.abs(y0) * 0.05 + 1e-6; y1 += Math.abs(y1) * 0.05 + 1e-6; }
  const pad = (y1 - y0) * 0.08; y0 -= pad; y1 += pad;
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R), sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const path = pts.map((p, i) => `${i ? "L" : "M"}${sx(p.step).toFixed(1)},${sy(p[key]).toFixed(1)}`).join("");
  const ticks = [y0 + pad, (y0 + y1) / 2, y1 - pad].map((y) =>
    `<line class="axis" x1="${L}" x2="${W - R}" y1="${sy(y)}" y2="${sy(y)}" opacity=".35"/>` +
    `<text x="${L - 4}" y="${sy(y) + 3}" text-anchor="end">${num(y, digits)}</text>`).join("");
  svg.innerHTML = `<line class="axis" x1="${L}" x2="${L}" y1="${T}" y2="${H - B}"/>` +
    `<line class="axis" x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}"/>${ticks}` +
    `<text x="${L}" y="${H - 4}">step ${x0}</text><text x="${W - R}" y="${H - 4}" text-anchor="end">step ${x1}</text>` +
    `<path class="line" d="${path}"/>` + pts.map((p) => `<circle class="point" data-step="${p.step}" data-value="${p[key]}"` +
      ` cx="${sx(p.step).toFixed(1)}" cy="${sy(p[key]).toFixed(1)}" r="2.5"><title>step ${p.step}: ${num(p[key], digits)}` +
      ` (${p.witnesses} witness reports)</title></circle>`).join("");
}

function tickPhase() {
  const run = view && view.run;
  if (!run) return;
  const now = Date.now() / 1000 + clockSkew;
  if (run.phase_due_at == null) { $("phase-bar").style.width = "0"; $("phase-left").textContent = "waiting"; return; }
  const span = Math.max(1, run.phase_due_at - run.phase_started_at), left = Math.max(0, run.phase_due_at - now);
  $("phase-bar").style.width = `${Math.min(100, (100 * (span - left)) / span)}%`;
  $("phase-left").textContent = left > 0 ? `${left.toFixed(1)} s left in this phase` : "due: the next tick moves it";
}

function eventText(e) {
  if (e.kind === "witness") return `${short(e.wallet)} step ${e.step} loss ${num(e.loss, 4)} tok/s ${num(e.tokens_per_sec)}`;
  if (e.kind === "join") return `${short(e.wallet)} p2p ${short(e.p2p)}`;
  if (e.kind === "drop") return `${short(e.wallet)} dropped by ${short(e.reporter)}`;
  if (e.kind === "state") return `${e.phase} (epoch ${e.epoch}, step ${e.step})`;
  if (e.kind === "epoch_end") return `epoch ${e.epoch} ended at step ${e.step} with ${e.clients} clients`;
  if (e.kind === "checkpoint_vote") return `${short(e.wallet)} voted checkpoint ${e.vote.slice(0, 8)} (${e.votes} of ${e.healthy} healthy)`;
  if (e.kind === "checkpoint_adopted") return `checkpoint ${e.reference} adopted (${e.votes} of ${e.healthy} healthy)`;
  return JSON.stringify(e);
}

function tokens(amount, decimals) { return num(amount / 10 ** decimals, decimals); }

function renderTreasury(t) {
  document.body.classList.toggle("treasury", !!t);
  $("treasury-card").hidden = !t;
  if (!t) return;
  $("vault-balance").textContent = `${tokens(t.vault_balance, t.decimals)} tokens`;
  $("vault-rate").textContent = `${tokens(t.collateral_per_point, t.decimals)} tokens per point`;
  $("vault-claimed").textContent = `${num(t.total_claimed_points)} points = ${tokens(t.total_claimed_amount, t.decimals)} tokens`;
  $("vault-mint").textContent = short(t.mint); $("vault-mint").title = t.mint;
}

function render(v) {
  view = v; clockSkew = v.server_time - Date.now() / 1000;
  stats.views += 1; stats.lastViewAt = performance.now(); stats.version = v.version;
  if (stats.firstView == null) stats.firstView = stats.lastViewAt;
  setConnection(v.connection, v.error);
  const run = v.run;
  document.body.dataset.phase = run ? run.phase : "";
  if (!run) { $("phase").textContent = v.error || "waiting for the chain"; return; }
  $("title").textContent = `${run.run_id}${run.name ? " · " + run.name : ""}`;
  $("phase").textContent = run.phase + (run.pending_pause ? " (pause pending)" : "");
  $("epoch").textContent = run.epoch;
  $("step").textContent = `${run.step} / ${run.total_steps}`;
  $("round").textContent = run.round ?? "-";
  $("data-index").textContent = run.data_index;
  $("rates").textContent = `earn ${run.earning_rate} / penalty ${run.slashing_rate} per epoch`;
  const d = run.distro;  // what every client trains with: an operator compares runs by it (issue 26)
  $("training").textContent = `DisTrO ${d.selection} ${d.topk} per ${d.chunk}x${d.chunk} block, ` +
    `decay ${d.decay}${d.quantize_1bit ? ", 1-bit" : ""}, ${d.pipeline} pipeline`;
  tickPhase();
  $("clients-count").textContent = `(${run.clients.length} registered, ${run.epoch_clients} in this epoch)`;
  rows("clients", run.clients.map((c) => `<tr data-wallet="${esc(c.wallet)}"><td class="mono" title="${esc(c.wallet)}">` +
    `${esc(short(c.wallet))}</td><td class="mono" title="${esc(c.p2p)}">${esc(c.p2p.slice(0, 12))}…</td>` +
    `<td class="state-${esc(c.state)}">${esc(c.state)}</td><td>${num(c.earned)}</td><td>${num(c.penalised)}</td>` +
    `<td class="treasury-only">${num(c.claimed)}</td><td>${c.last_round ?? "-"}</td></tr>`));
  renderTreasury(v.treasury);
  $("witnesses").innerHTML = run.witnesses.length ? run.witnesses.map((w) =>
    `<li><span class="mono" title="${esc(w.wallet)}">${esc(short(w.wallet))}</span> ` +
    `<span class="${w.posted ? "posted" : "pending"}">${w.posted ? "posted" : "pending"}</span></li>`).join("")
    : `<li class="muted">no round in progress</li>`;
  $("checkpoints").innerHTML = v.checkpoints.length ? v.checkpoints.slice().reverse().map((c) =>
    `<li class="mono" title="${esc(c.reference)}">epoch ${c.epoch} step ${c.step}: ${esc(c.reference.slice(0, 48))}</li>`).join("")
    : `<li class="muted">${esc(run.checkpoint || "none yet")}</li>`;
  rows("rounds", v.round_history.slice().reverse().map((r) => `<tr><td>${r.epoch}</td><td>${r.height}</td>` +
    `<td>${r.data_index}</td><td>${r.clients}</td><td>${r.witnesses}</td></tr>`));
  rows("events", v.events.slice().reverse().slice(0, 25).map((e) => `<tr class="ev-${e.kind}"><td>${e.slot ?? ""}</td>` +
    `<td>${e.kind}</td><td>${esc(eventText(e))}</td></tr>`));
  chart($("loss-chart"), v.metrics, "loss", 3);
  chart($("tps-chart"), v.metrics, "tokens_per_sec", 0);
  document.body.dataset.version = v.version;
}

async function runPage(runId) {
  $("run-page").hidden = false; $("title").textContent = runId; document.title = `${runId} · psyche`;
  const base = `/api/run/${encodeURIComponent(runId)}`;
  try {
    const reply = await fetch(base), v = await reply.json();
    if (!reply.ok) { setConnection("error", v.error); $("phase").textContent = v.error; return; }
    render(v);
  } catch (e) { setConnection("reconnecting", String(e)); }
  const source = new EventSource(`${base}/stream`);
  source.addEventListener("view", (msg) => render(JSON.parse(msg.data)));
  source.onerror = () => setConnection("reconnecting", "the dashboard server does not answer");
  setInterval(tickPhase, 250);
}

async function listPage() {
  $("list-page").hidden = false;
  const refresh = async () => {
    try {
      const r = await (await fetch("/api/runs")).json();
      setConnection(r.connection, r.error);
      if (r.runs == null) return;
      $("runs-empty").hidden = r.runs.length > 0;
      rows("runs", r.runs.map((x) => `<tr><td><a href="/run/${encodeURIComponent(x.run_id)}">${esc(x.run_id)}</a></td>` +
        `<td>${esc(x.name)}</td><td>${esc(x.phase)}</td><td>${x.epoch}</td><td>${x.step} / ${x.total_steps}</td>` +
        `<td>${x.epoch_clients} / ${x.clients}</td></tr>`));
      stats.views += 1; stats.lastViewAt = performance.now();
      if (stats.firstView == null) stats.firstView = stats.lastViewAt;
    } catch (e) { setConnection("reconnecting", String(e)); }
  };
  await refresh();
  setInterval(refresh, 2000);
}

const m = location.pathname.match(/^\/run\/(.+)$/);
if (m) runPage(decodeURIComponent(m[1])); else listPage();
