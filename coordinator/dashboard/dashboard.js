// The dashboard's logic (index.html): every REFRESH_MS it reads /v1/jobs
// and /v1/workers, redraws both tables in place, and for the selected job
// (a click on its row, kept in the URL's #job=ID; by default the first
// running job) reads /v1/jobs/{id}/history and feeds its progress samples
// to three uPlot charts (loss, accuracy, throughput) with the job's events
// and DiLoCo rounds as markers. The browser sends the token cookie the
// coordinator set at /?token=...; a 401 reloads the page, which then
// shows the sign-in form. Text from the API only ever goes into
// textContent, never into HTML.
"use strict";

const REFRESH_MS = 2000;
const COLORS = { train: "#1f5fbf", test: "#c62828", rate: "#1a7f37", workers: "#8a5cc2",
                 event: "#7a8499", round: "#b26a00" };

const dashboard = { selected: null, charts: null, chartsJob: null, marks: { events: [], rounds: [] },
                    refreshes: 0 };
window.nightshiftDashboard = dashboard;  // for the browser test and the curious

async function getJson(path) {
  const response = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (response.status === 401) { location.reload(); throw new Error("signed out"); }
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

const num = (v) => (v === undefined || v === null || v === "" ? 0 : Number(v));
const seconds = (timestamp) => (timestamp ? Date.parse(timestamp) / 1000 : null);
const shortState = (s, prefix) => (s || "").replace(prefix, "");
function percent(v) { return `${(100 * v).toFixed(1)}%`; }
function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function renderJobs(jobs) {
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren();
  document.getElementById("no-jobs").hidden = jobs.length > 0;
  for (const job of jobs) {
    const p = job.progress || {};
    const state = shortState(job.state, "JOB_STATE_");
    const row = body.insertRow();
    row.dataset.jobId = job.id;
    if (job.id === dashboard.selected) row.className = "selected";
    cell(row, job.spec && job.spec.name ? `${job.id} (${job.spec.name})` : job.id);
    cell(row, state, `state-${state}`);
    const total = num(p.totalSteps), step = num(p.step);
    const progress = cell(row, "");
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = `${total > 0 ? Math.min(100, (100 * step) / total) : 0}%`;
    bar.append(fill);
    progress.append(bar, document.createTextNode(total > 0 ? `${step} / ${total}` : `${step}`));
    cell(row, String((job.workers || []).length));
    cell(row, String(num(job.generation)));
    cell(row, num(job.totalRounds) > 0 ? `${num(job.round)} / ${num(job.totalRounds)}` : "");
    cell(row, step > 0 ? num(p.loss).toFixed(4) : "");
    cell(row, num(p.testLoss) > 0 ? percent(num(p.testAccuracy)) : "");
    cell(row, num(p.samplesPerSecond) > 0 ? Math.round(num(p.samplesPerSecond)).toLocaleString("en-US") : "");
    row.addEventListener("click", () => select(job.id));
  }
}

function renderWorkers(workers) {
  const pools = document.getElementById("pools");
  pools.replaceChildren();
  document.getElementById("no-workers").hidden = workers.length > 0;
  const now = Date.now() / 1000;
  for (const [pool, title] of [["WORKER_POOL_DATACENTER", "Data center"], ["WORKER_POOL_EDGE", "Edge (vehicles)"]]) {
    const members = workers.filter((w) => w.pool === pool);
    if (members.length === 0) continue;
    const section = document.createElement("div");
    section.className = "pool";
    const heading = document.createElement("h3");
    heading.textContent = `${title}: ${members.length}`;
    const table = document.createElement("table");
    table.className = "workers";
    table.dataset.pool = shortState(pool, "WORKER_POOL_").toLowerCase();
    const head = table.createTHead().insertRow();
    const columns = ["Name", "State", "Job", "Samples/s", "Last heartbeat"];
    if (pool === "WORKER_POOL_EDGE") columns.push("Eligibility");
    for (const c of columns) {
      const th = document.createElement("th");
      th.textContent = c;
      head.append(th);
    }
    const body = table.createTBody();
    for (const w of members) {
      const row = body.insertRow();
      const state = shortState(w.state, "WORKER_STATE_");
      row.dataset.workerName = w.name;
      cell(row, w.name);
      cell(row, state, `state-${state}`);
      cell(row, w.jobId || "");
      cell(row, Math.round(num(w.samplesPerSecond)).toLocaleString("en-US"));
      const beat = seconds(w.lastHeartbeat);
      cell(row, beat ? `${Math.max(0, now - beat).toFixed(0)} s ago` : "");
      if (pool === "WORKER_POOL_EDGE") {
        const e = w.eligibility || {};
        const text = e.eligible ? `eligible: ${e.reason || ""}` : `ineligible: ${e.reason || "not reported"}`;
        cell(row, text, e.eligible ? "eligible" : "ineligible");
      }
    }
    section.append(heading, table);
    pools.append(section);
  }
}

// Draws the job's events (dashed lines, labelled) and closed rounds (ticks).
function markersPlugin() {
  return {
    hooks: {
      draw: [(u) => {
        const { ctx } = u;
        const { left, top, width, height } = u.bbox;
        const dpr = window.devicePixelRatio || 1;
        ctx.save();
        ctx.font = `${10 * dpr}px system-ui, sans-serif`;
        // Labels of nearby events go on lines below one another.
        let lastX = -Infinity, row = 0;
        for (const e of dashboard.marks.events) {
          const x = u.valToPos(e.t, "x", true);
          if (x < left - 1 || x > left + width + 1) continue;
          row = x - lastX < ctx.measureText(e.label).width + 8 * dpr ? (row + 1) % 4 : 0;
          lastX = x;
          ctx.strokeStyle = COLORS.event;
          ctx.setLineDash([4 * dpr, 4 * dpr]);
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
          ctx.setLineDash([]);
          ctx.fillStyle = COLORS.event;
          ctx.fillText(e.label, x + 3 * dpr, top + (12 + 12 * row) * dpr);
        }
        ctx.fillStyle = COLORS.round;
        for (const t of dashboard.marks.rounds) {
          const x = u.valToPos(t, "x", true);
          if (x >= left && x <= left + width) ctx.fillRect(x - dpr, top, 2 * dpr, 7 * dpr);
        }
        ctx.restore();
      }],
    },
  };
}

// `axes`: the y axes (the x axis is time).
function makeChart(id, title, series, axes) {
  const el = document.getElementById(id);
  el.replaceChildren();
  const opts = {
    title, width: Math.max(360, el.clientWidth), height: 230,
    scales: { x: { time: true, range: (u, min, max) => xRange(min, max) } },
    series: [{}, ...series.map((s) => ({ spanGaps: true, width: 1.5, ...s }))],
    axes: [{}, ...axes],
    plugins: [markersPlugin()],
  };
  return new uPlot(opts, [[], ...series.map(() => [])], el);
}

// The x range covers the samples and the job's events.
function xRange(min, max) {
  const ts = dashboard.marks.events.map((e) => e.t);
  if (min !== null && min !== undefined) ts.push(min, max);
  if (ts.length === 0) return [Date.now() / 1000 - 60, Date.now() / 1000];
  const lo = Math.min(...ts), hi = Math.max(...ts);
  return hi > lo ? [lo, hi + (hi - lo) * 0.02] : [lo - 30, hi + 30];
}

function ensureCharts(jobId) {
  if (dashboard.chartsJob === jobId && dashboard.charts) return dashboard.charts;
  if (dashboard.charts) for (const c of Object.values(dashboard.charts)) c.destroy();
  dashboard.charts = {
    loss: makeChart("chart-loss", "Loss", [
      { label: "training loss", stroke: COLORS.train },
      { label: "test loss", stroke: COLORS.test }], [{ label: "loss", size: 60 }]),
    accuracy: makeChart("chart-accuracy", "Accuracy", [
      { label: "training accuracy", stroke: COLORS.train, value: (u, v) => (v == null ? "-" : percent(v)) },
      { label: "test accuracy", stroke: COLORS.test, value: (u, v) => (v == null ? "-" : percent(v)) }],
      [{ label: "accuracy", size: 60, values: (u, vals) => vals.map((v) => percent(v)) }]),
    throughput: makeChart("chart-throughput", "Throughput", [
      { label: "samples/s", stroke: COLORS.rate, scale: "rate" },
      { label: "workers", stroke: COLORS.workers, scale: "workers", paths: uPlot.paths.stepped({ align: 1 }) }],
      [{ scale: "rate", label: "samples/s", size: 70 },
       { scale: "workers", label: "workers", side: 1, size: 50, grid: { show: false } }]),
  };
  dashboard.chartsJob = jobId;
  return dashboard.charts;
}

async function renderCurves(job) {
  const section = document.getElementById("curves");
  if (!job) { section.hidden = true; return; }
  section.hidden = false;
  document.getElementById("selected-job").textContent = job.id;
  document.getElementById("selected-reason").textContent = job.reason ? `: ${job.reason}` : "";
  const history = await getJson(`/v1/jobs/${encodeURIComponent(job.id)}/history`);
  const samples = (history.progress || []).filter((p) => p.time);
  const xs = samples.map((p) => seconds(p.time));
  const evaluated = (p) => num(p.testLoss) > 0;
  const trained = (p) => num(p.step) > 0 && num(p.loss) > 0;  // a window with steps in it
  dashboard.marks.events = (history.events || []).map((e) => {
    const generation = /generation (\d+)/.exec(e.reason || "");
    const state = shortState(e.state, "JOB_STATE_");
    return { t: seconds(e.time), label: generation ? `${state} g${generation[1]}` : state, reason: e.reason || "" };
  });
  dashboard.marks.rounds = (history.rounds || []).map((r) => seconds(r.closeTime)).filter((t) => t);
  const charts = ensureCharts(job.id);
  section.hidden = false;
  charts.loss.setData([xs, samples.map((p) => (trained(p) ? num(p.loss) : null)),
                       samples.map((p) => (evaluated(p) ? num(p.testLoss) : null))]);
  charts.accuracy.setData([xs, samples.map((p) => (trained(p) ? num(p.trainAccuracy) : null)),
                           samples.map((p) => (evaluated(p) ? num(p.testAccuracy) : null))]);
  charts.throughput.setData([xs, samples.map((p) => num(p.samplesPerSecond)),
                             samples.map((p) => num(p.workers))]);
  for (const id of ["chart-loss", "chart-accuracy", "chart-throughput"]) {
    document.getElementById(id).dataset.points = String(xs.length);
  }
  const list = document.getElementById("events");
  list.replaceChildren();
  for (const e of dashboard.marks.events.slice().reverse()) {
    const item = document.createElement("li");
    item.textContent = `${new Date(e.t * 1000).toLocaleTimeString()} ${e.label}: ${e.reason}`;
    list.append(item);
  }
}

function select(jobId) {
  dashboard.selected = jobId;
  history.replaceState(null, "", `#job=${encodeURIComponent(jobId)}`);
  refresh();
}

function defaultJob(jobs) {
  const running = jobs.find((j) => j.state === "JOB_STATE_RUNNING" || j.state === "JOB_STATE_WAITING");
  if (running) return running.id;
  const newest = jobs.slice().sort((a, b) => (seconds(b.createTime) || 0) - (seconds(a.createTime) || 0))[0];
  return newest ? newest.id : null;
}

let inFlight = false;
async function refresh() {
  if (inFlight) return;
  inFlight = true;
  const status = document.getElementById("status");
  try {
    const [jobsReply, workersReply] = await Promise.all([getJson("/v1/jobs"), getJson("/v1/workers")]);
    const jobs = jobsReply.jobs || [];
    const workers = workersReply.workers || [];
    if (!dashboard.selected || !jobs.some((j) => j.id === dashboard.selected)) {
      const fromUrl = decodeURIComponent((/#job=(.*)$/.exec(location.hash) || [])[1] || "");
      dashboard.selected = jobs.some((j) => j.id === fromUrl) ? fromUrl : defaultJob(jobs);
    }
    renderJobs(jobs);
    renderWorkers(workers);
    await renderCurves(jobs.find((j) => j.id === dashboard.selected));
    dashboard.refreshes += 1;
    document.body.dataset.refreshes = String(dashboard.refreshes);
    status.textContent = `${jobs.length} jobs, ${workers.length} workers; updated ${new Date().toLocaleTimeString()}`;
    status.className = "muted";
  } catch (e) {
    status.textContent = `could not refresh: ${e.message}`;
    status.className = "ineligible";
  } finally {
    inFlight = false;
  }
}

window.addEventListener("resize", () => {
  if (!dashboard.charts) return;
  for (const [key, chart] of Object.entries(dashboard.charts)) {
    const el = document.getElementById(`chart-${key}`);
    chart.setSize({ width: Math.max(360, el.clientWidth), height: 230 });
  }
});
refresh();
setInterval(refresh, REFRESH_MS);
