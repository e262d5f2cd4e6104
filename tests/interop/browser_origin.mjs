// Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) opens PAGE_URL (examples/chat.html
// served by our own server, whose WebSocket is on the same origin) and reports whether its WebSocket opened.
// Driven by test_browser.py (the Origin allow-list):
//
//     node browser_origin.mjs PAGE_URL
//
// Prints one line of JSON: {"state": "open" | "closed", "label": the page's state text, "events": the page's log,
// "console_errors": [...]}. On failure: {"error": "..."}, exit code 1.

import { chromium } from "playwright-core";

const [pageUrl] = process.argv.slice(2);
const CHROMIUM = process.env.INTEROP_CHROMIUM || "/usr/bin/chromium";
const DEADLINE_MS = Number(process.env.INTEROP_DEADLINE_MS || 45000);

setTimeout(() => {
  process.stdout.write(`${JSON.stringify({ error: `browser scenario did not finish within ${DEADLINE_MS} ms` })}\n`);
  process.exit(1);
}, DEADLINE_MS).unref();

let browser = null;
try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30000,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"],
  });
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  const consoleErrors = [];
  page.on("console", (msg) => {
    if (msg.type() === "error") consoleErrors.push(msg.text());
  });
  await page.goto(pageUrl, { waitUntil: "load" });
  await page.locator('#state:not([data-state="connecting"])').waitFor();
  const state = await page.locator("#state").getAttribute("data-state");
  const label = await page.locator("#state").textContent();
  const events = await page.locator("#log li.msg").evaluateAll((items) => items.map((item) => item.textContent));
  await browser.close();
  process.stdout.write(`${JSON.stringify({ state, label, events, console_errors: consoleErrors })}\n`);
  process.exit(0);
} catch (err) {
  if (browser) await browser.close().catch(() => {});
  process.stdout.write(`${JSON.stringify({ error: String(err && err.stack ? err.stack : err) })}\n`);
  process.exit(1);
}
