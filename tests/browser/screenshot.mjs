// Screenshot of a running dashboard (the README's picture comes from the demo):
//   cargo run -p throughline-demo -- --http-listen 127.0.0.1:8080
//   node tests/browser/screenshot.mjs http://127.0.0.1:8080 docs/dashboard.png
// Waits until a downtime alert is on the page (the demo's press-2 stops after
// about half a minute), then writes a 1920x1080 PNG.
import { chromium } from "playwright-core";

const [url, out] = process.argv.slice(2);
if (!url || !out) {
  console.error("usage: node screenshot.mjs URL OUT.png [CHROMIUM]");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.argv[4] || process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
  await page.goto(url);
  await page.waitForSelector("#link.live", { timeout: 15000 });
  await page.waitForSelector("li.alert.kind-downtime", { timeout: 120000 });
  await page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
}
