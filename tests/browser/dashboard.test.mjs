// The control-room dashboard in a real headless Chromium, against a running
// aggregator. Started by tests/e2e/dashboard.rs, which starts the aggregator
// (embedded broker) and passes:
//   DASH_URL  http://127.0.0.1:PORT   MQTT_URL  mqtt://127.0.0.1:PORT
//   SITE, TOKEN (a planner token), CHROMIUM (the browser binary),
//   SCREENSHOT (optional: a PNG to write at the end).
// Exits 0 when every check passed; prints one JSON line of measurements.
import { chromium } from "playwright-core";
import mqtt from "mqtt";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const DASH = env("DASH_URL");
const SITE = env("SITE");
const TOKEN = env("TOKEN");
const AGENT = "gw-dash";
let seq = 0;

const measured = {};
const problems = [];

function step(name) {
  console.log(`-- ${name}`);
}

const iso = (msAgo) => new Date(Date.now() - msAgo).toISOString();

async function publish(client, asset, samples) {
  const topic = `throughline/v1/${SITE}/${AGENT}/${asset}/telemetry`;
  const body = JSON.stringify({ v: 1, agent: AGENT, seq: ++seq, samples });
  await client.publishAsync(topic, body, { qos: 1 });
}

/** Time (ms) from `action` until `selector` is in the page, failing after `limit` ms. */
async function timeUntil(page, selector, limit, action) {
  const t0 = performance.now();
  await action();
  await page.waitForSelector(selector, { timeout: limit });
  return Math.round(performance.now() - t0);
}

const browser = await chromium.launch({
  executablePath: env("CHROMIUM"),
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const client = await mqtt.connectAsync(env("MQTT_URL"), { clientId: `dash-test-${process.pid}`, clean: true });
try {
  const context = await browser.newContext({ viewport: { width: 1920, height: 1080 } });
  const page = await context.newPage();
  let restarting = false;
  page.on("console", (m) => {
    // While the aggregator is stopped on purpose, the browser logs its
    // refused reconnects; nothing else may be logged as an error.
    if (m.type() === "error" && !(restarting && m.text().includes("ERR_CONNECTION_REFUSED"))) {
      problems.push(`console error: ${m.text()}`);
    }
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => {
    // The event stream is cut when the page closes; anything else is a fault.
    if (!r.url().includes("/api/v1/events") && !restarting) problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });

  step("the page loads and goes live");
  const response = await page.goto(DASH, { waitUntil: "load" });
  if (!response || response.status() !== 200) throw new Error(`GET / answered ${response?.status()}`);
  await page.waitForSelector("#link.live", { timeout: 10000 });
  await page.waitForSelector(`tr[data-asset="${SITE}/line-1"]`, { timeout: 5000 });
  await page.waitForSelector(`article[data-group="family-a"]`, { timeout: 5000 });

  step("telemetry changes the asset's state on the page within a second");
  measured.running_ms = await timeUntil(page, `tr[data-asset="${SITE}/line-1"][data-state="running"]`, 1000, () =>
    publish(client, "line-1", [{ ts: iso(30000), output: 100, state: "running" }]),
  );
  measured.down_ms = await timeUntil(page, `tr[data-asset="${SITE}/line-1"][data-state="down"]`, 1000, () =>
    publish(client, "line-1", [
      { ts: iso(10000), output: 110, state: "down", reason: "jam" },
      { ts: iso(0), output: 110, state: "down" },
    ]),
  );
  const reason = await page.textContent(`tr[data-asset="${SITE}/line-1"] [data-field="reason"]`);
  if (reason.trim() !== "jam") problems.push(`reason cell shows "${reason}", not "jam"`);

  step("the downtime alert appears live");
  const alertSel = `li.alert.kind-downtime[data-status="open"]`;
  const t0 = performance.now();
  await page.waitForSelector(alertSel, { timeout: 10000 });
  measured.alert_shown_ms = Math.round(performance.now() - t0);
  const summary = await page.textContent(`${alertSel} .summary`);
  if (!summary.includes("line-1")) problems.push(`alert summary does not name line-1: ${summary}`);
  const id = await page.getAttribute(alertSel, "data-alert-id");

  step("it is acknowledged through the page (token asked once)");
  await page.click(`li.alert[data-alert-id="${id}"] button.ack`);
  await page.waitForSelector("#token-dialog[open]", { timeout: 3000 });
  await page.fill("#token-input", TOKEN);
  await page.click("#token-ok");
  await page.waitForSelector("#note-dialog[open]", { timeout: 3000 });
  await page.fill("#note-input", "maintenance sent to line-1");
  await page.click("#note-ok");
  await page.waitForSelector(`li.alert[data-alert-id="${id}"][data-status="acknowledged"]`, { timeout: 5000 });
  const api = await (await fetch(`${DASH}/api/v1/alerts?status=acknowledged&kind=downtime`)).json();
  const acked = api.alerts.find((a) => String(a.id) === id);
  if (!acked) problems.push(`alert ${id} is not acknowledged in the API`);
  else if (acked.acknowledged?.note !== "maintenance sent to line-1" || acked.acknowledged?.by !== "test-planner") {
    problems.push(`alert ${id} acknowledged with ${JSON.stringify(acked.acknowledged)}`);
  }

  step("a resolve reuses the stored token (no second prompt)");
  await page.click(`li.alert[data-alert-id="${id}"] button.resolve`);
  await page.waitForSelector("#note-dialog[open]", { timeout: 3000 });
  if (await page.isVisible("#token-dialog[open]")) problems.push("the token was asked for a second time");
  await page.click("#note-ok");
  await page.waitForSelector(`li.alert[data-alert-id="${id}"]`, { state: "detached", timeout: 5000 });

  step("a forecast import shows in the group view");
  const start = new Date(Date.now() - 30 * 60e3).toISOString();
  const end = new Date(Date.now() + 30 * 60e3).toISOString();
  const csv = `group,start,end,demand,unit,uplift_pct\nfamily-a,${start},${end},5000,pieces,0\n`;
  const t1 = performance.now();
  const imported = await fetch(`${DASH}/api/v1/forecasts`, {
    method: "POST",
    headers: { "Content-Type": "text/csv", Authorization: `Bearer ${TOKEN}` },
    body: csv,
  });
  if (imported.status !== 200) throw new Error(`forecast import answered ${imported.status}: ${await imported.text()}`);
  await page.waitForFunction(
    () => {
      const dd = document.querySelector('article[data-group="family-a"] [data-field="demand"]');
      return dd && dd.textContent.replace(/[^0-9]/g, "") === "5000";
    },
    null,
    { timeout: 5000 },
  );
  measured.forecast_shown_ms = Math.round(performance.now() - t1);

  step("group detail draws demand against actual from the history API");
  await page.click('article[data-group="family-a"]');
  await page.waitForSelector("#detail[open] svg rect.bar-demand", { timeout: 5000 });
  await page.click("#detail button[value=close]");

  step("asset detail draws its history");
  // Two increments exactly 60 s apart always land in two different minutes
  // (at 61 s and 1 s ago: 59 s apart could share one minute, a one-point line).
  await publish(client, "line-2", [
    { ts: iso(121000), output: 0, state: "running" },
    { ts: iso(61000), output: 500, state: "running" },
    { ts: iso(1000), output: 1200, state: "running" },
  ]);
  await page.waitForSelector(`tr[data-asset="${SITE}/line-2"][data-state="running"]`, { timeout: 3000 });
  await page.click(`tr[data-asset="${SITE}/line-2"]`);
  // A line through at least two minutes (500, then 700 pieces).
  await page.waitForFunction(
    () => /M[^L]+L/.test(document.querySelector("#detail[open] svg path.s0")?.getAttribute("d") || ""),
    null,
    { timeout: 5000 },
  );
  await page.click("#detail button[value=close]");

  step("capable-to-promise form answers");
  await page.selectOption("#ctp-group", "family-a");
  await page.fill("#ctp-quantity", "100");
  await page.click("#ctp-form button[type=submit]");
  await page.waitForSelector("#ctp-answer .answer[data-feasible]", { timeout: 5000 });
  measured.promise_verdict = (await page.textContent("#ctp-answer .verdict")).trim();

  step("a tablet viewport still shows every panel");
  await page.setViewportSize({ width: 820, height: 1180 });
  for (const panel of ["#alerts-panel", "#overview-panel", "#assets-panel", "#ctp-panel"]) {
    const box = await page.locator(panel).boundingBox();
    if (!box || box.width < 700) problems.push(`${panel} is ${box?.width} px wide on a tablet`);
  }
  await page.setViewportSize({ width: 1920, height: 1080 });

  step("after an aggregator restart the page reconnects by itself");
  restarting = true;
  console.log("STOP-AGGREGATOR");
  await page.waitForSelector("#link.stale", { timeout: 15000 });
  const banner = await page.textContent("#stale-banner");
  if (!(await page.isVisible("#stale-banner")) || !banner.includes("Reconnecting")) {
    problems.push(`while the aggregator is away the banner says "${banner}"`);
  }
  console.log("START-AGGREGATOR");
  const t2 = performance.now();
  await page.waitForSelector("#link.live", { timeout: 20000 });
  measured.reconnected_ms = Math.round(performance.now() - t2);
  restarting = false;
  // The MQTT client reconnects by itself too; the new stream carries changes.
  await publish(client, "line-2", [{ ts: iso(0), output: 1201, state: "idle" }]);
  await page.waitForSelector(`tr[data-asset="${SITE}/line-2"][data-state="idle"]`, { timeout: 10000 });
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT });
  await context.close();
} catch (e) {
  problems.push(`failed: ${e.message}`);
} finally {
  await client.endAsync();
  await browser.close();
}

console.log(JSON.stringify({ measured, problems }));
if (problems.length) {
  for (const p of problems) console.error(`PROBLEM: ${p}`);
  process.exit(1);
}
