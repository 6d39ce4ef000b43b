// Drives the coordinator's dashboard in Debian's headless Chromium
// (puppeteer-core), as tests/dashboard_test.sh set it up:
//
//   node dashboard_test.js HTTP_URL VIEWER_TOKEN_FILE CA_FILE SPKI_HASH SCREENSHOT DONE_JOB LIVE_JOB
//
// The browser trusts exactly the coordinator's key (SPKI_HASH, as
// --ignore-certificate-errors-spki-list takes it). Checks: the page asks
// for a token and signs in through its form; the live job's curves get
// points; the jobs and workers tables match /v1/jobs and /v1/workers
// (read by this script with the CA and the token, not by the page);
// the page refreshes in place (the live job's step rises with no reload);
// a click on the finished job shows its curves and its end; no script
// error or CSP report. Saves a screenshot. Exits non-zero on a failure.
"use strict";
const fs = require("fs");
const https = require("https");
const puppeteer = require("puppeteer-core");

const [base, tokenFile, caFile, spki, screenshot, doneJob, liveJob] = process.argv.slice(2);
const token = fs.readFileSync(tokenFile, "utf8").trim();
const ca = fs.readFileSync(caFile);

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}
function api(path) {
  return new Promise((resolve, reject) => {
    https.get(`${base}${path}`, { ca, headers: { Authorization: `Bearer ${token}` } }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(`${path}: ${res.statusCode}`))));
    }).on("error", reject);
  });
}
const short = (s, prefix) => s.replace(prefix, "");

// The tables as the page shows them.
function readTables(page) {
  return page.evaluate(() => ({
    jobs: [...document.querySelectorAll("#jobs tbody tr")].map((r) => ({
      id: r.dataset.jobId, state: r.cells[1].textContent, workers: r.cells[3].textContent,
      step: Number(r.cells[2].textContent.split(" / ")[0]) })),
    workers: [...document.querySelectorAll("table.workers")].flatMap((t) =>
      [...t.tBodies[0].rows].map((r) => ({
        name: r.dataset.workerName, pool: t.dataset.pool, state: r.cells[1].textContent,
        job: r.cells[2].textContent, eligibility: r.cells[5] ? r.cells[5].textContent : null }))),
  }));
}

// What the tables should show, from the API.
async function expectedTables() {
  const jobs = (await api("/v1/jobs")).jobs.map((j) => ({
    id: j.id, state: short(j.state, "JOB_STATE_"), workers: String((j.workers || []).length) }));
  const workers = (await api("/v1/workers")).workers.map((w) => {
    const e = w.eligibility || {};
    return { name: w.name, pool: short(w.pool, "WORKER_POOL_").toLowerCase(),
             state: short(w.state, "WORKER_STATE_"), job: w.jobId || "",
             eligibility: w.pool === "WORKER_POOL_EDGE"
               ? (e.eligible ? `eligible: ${e.reason || ""}` : `ineligible: ${e.reason || "not reported"}`) : null };
  });
  return { jobs, workers };
}

function sameTables(shown, want) {
  const key = (x) => JSON.stringify(x);
  const jobs = shown.jobs.map(({ id, state, workers }) => ({ id, state, workers }));
  const sort = (a) => a.map(key).sort();
  return key(sort(jobs)) === key(sort(want.jobs)) && key(sort(shown.workers)) === key(sort(want.workers));
}

(async () => {
  const browser = await puppeteer.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", `--ignore-certificate-errors-spki-list=${spki}`, "--window-size=1400,1200"],
  });
  const problems = [];
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 1200 });
    page.on("pageerror", (e) => problems.push(`script error: ${e.message}`));
    page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });

    console.log("== the page asks for a token, and signs in through its form");
    const first = await page.goto(`${base}/`);
    if (first.status() !== 401) fail(`/ without a token: HTTP ${first.status()}, want 401`);
    if (!(await page.content()).includes("nightshift token create --role=viewer")) fail("no sign-in text");
    problems.length = 0;  // the 401 itself is reported on the console
    await page.type("#token", token);
    await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
    if (page.url() !== `${base}/`) fail(`after sign-in at ${page.url()}, want ${base}/ (the token out of the address bar)`);
    const cookies = await page.cookies();
    const cookie = cookies.find((c) => c.name === "nightshift_token");
    if (!cookie || !cookie.httpOnly || !cookie.secure) fail(`token cookie: ${JSON.stringify(cookie)}`);
    await page.evaluate(() => { window.notReloaded = true; });

    console.log(`== the live job ${liveJob} is selected and its curves get points`);
    await page.waitForFunction((job) => document.getElementById("selected-job").textContent === job &&
      Number(document.getElementById("chart-loss").dataset.points) >= 3 &&
      document.querySelectorAll("#chart-loss canvas").length > 0, { timeout: 60000 }, liveJob);

    console.log("== the jobs and workers tables match /v1/jobs and /v1/workers");
    let shown, want, matched = false;
    for (let attempt = 0; attempt < 5 && !matched; attempt++) {
      // Each attempt compares the page after a fresh refresh with the API
      // read at the same time (a worker's eligibility reason counts seconds).
      const before = await page.evaluate(() => Number(document.body.dataset.refreshes));
      await page.waitForFunction((n) => Number(document.body.dataset.refreshes) > n, { timeout: 10000 }, before);
      [shown, want] = await Promise.all([readTables(page), expectedTables()]);
      matched = sameTables(shown, want);
    }
    if (!matched) fail(`tables differ:\n shown ${JSON.stringify(shown)}\n  want ${JSON.stringify(want)}`);
    if (shown.jobs.length !== 2 || shown.workers.length !== 3) fail(`want 2 jobs and 3 workers: ${JSON.stringify(shown)}`);
    const edge = shown.workers.find((w) => w.pool === "edge");
    if (!edge || !edge.eligibility.startsWith("eligible: ")) fail(`edge worker: ${JSON.stringify(edge)}`);

    console.log("== the page refreshes in place");
    const stepOf = async () => (await readTables(page)).jobs.find((j) => j.id === liveJob).step;
    const step = await stepOf();
    const points = await page.$eval("#chart-loss", (e) => Number(e.dataset.points));
    await page.waitForFunction((job, s, p) => {
      const row = document.querySelector(`#jobs tr[data-job-id="${job}"]`);
      return row && Number(row.cells[2].textContent.split(" / ")[0]) > s &&
        Number(document.getElementById("chart-loss").dataset.points) > p;
    }, { timeout: 30000 }, liveJob, step, points);
    if (!(await page.evaluate(() => window.notReloaded === true))) fail("the page reloaded");
    console.log(`step ${step} -> ${await stepOf()}, loss curve ${points} points and growing`);
    await page.screenshot({ path: screenshot, fullPage: true });

    console.log(`== a click on ${doneJob} shows its curves and its end`);
    await page.click(`#jobs tr[data-job-id="${doneJob}"]`);
    await page.waitForFunction((job) => document.getElementById("selected-job").textContent === job &&
      [...document.querySelectorAll("#events li")].some((li) => li.textContent.includes("SUCCEEDED")) &&
      Number(document.getElementById("chart-accuracy").dataset.points) >= 1, { timeout: 20000 }, doneJob);
    if (!page.url().endsWith(`#job=${doneJob}`)) fail(`the selection is not in the URL: ${page.url()}`);

    if (problems.length) fail(problems.join("\n"));
    console.log("PASS");
  } finally {
    await browser.close();
  }
})().catch((e) => fail(e.stack || String(e)));
