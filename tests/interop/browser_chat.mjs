// Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core; no browser download) chatting through
// examples/chat.html served by our own server. Driven by test_browser.py:
//
//     node browser_chat.mjs BASE_URL SCREENSHOT_DIR
//
// Two pages (two browser contexts, like two people) open BASE_URL, both /join lobby, page 1 says hello, page 2
// must show it and page 1 must not; then page 2 sends /all. Screenshots of both pages go to SCREENSHOT_DIR.
// Prints one line of JSON on stdout (what each page shows, the HTTP response, console errors). Then it reads one
// line from stdin, sent once the test has stopped the server, waits for both pages to show the connection closed
// and prints a second JSON line (each page's state and last event). On failure: {"error": "..."}, exit code 1.

import { existsSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const [baseUrl, screenshotDir] = process.argv.slice(2);
const CHROMIUM = process.env.INTEROP_CHROMIUM || "/usr/bin/chromium";
const DEADLINE_MS = Number(process.env.INTEROP_DEADLINE_MS || 45000);
const STEP_MS = 15000;

let browser = null;

function emit(result) {
  return new Promise((resolve) => process.stdout.write(`${JSON.stringify(result)}\n`, resolve));
}

async function finish(code, result) {
  if (browser) await browser.close().catch(() => {});
  await emit(result);
  process.exit(code);
}

function stdinLine() {
  return new Promise((resolve, reject) => {
    let buffered = "";
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", (chunk) => {
      buffered += chunk;
      if (buffered.includes("\n")) resolve(buffered.split("\n")[0]);
    });
    process.stdin.on("end", () => reject(new Error("stdin closed before the test said the server stopped")));
  });
}

setTimeout(() => {
  process.stdout.write(`${JSON.stringify({ error: `browser scenario did not finish within ${DEADLINE_MS} ms` })}\n`);
  process.exit(1);
}, DEADLINE_MS).unref();

async function openPage(name, consoleErrors) {
  const context = await browser.newContext({ viewport: { width: 800, height: 640 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on("console", (msg) => {
    if (msg.type() === "error") consoleErrors.push(`${name}: ${msg.text()}`);
  });
  page.on("pageerror", (err) => consoleErrors.push(`${name}: ${err.message}`));
  const response = await page.goto(baseUrl, { waitUntil: "load" });
  await page.locator('#state[data-state="open"]').waitFor();
  return {
    page,
    http: { status: response.status(), contentType: response.headers()["content-type"] || "" },
  };
}

// Types a line into the page's input and sends it with Enter, like a person would.
async function say(page, text) {
  await page.locator("#line").fill(text);
  await page.locator("#line").press("Enter");
  await page.locator('#log li.msg[data-kind="out"]', { hasText: text }).last().waitFor();
}

function received(page, text) {
  return page.locator(`#log li.msg[data-kind="in"][data-text=${JSON.stringify(text)}]`);
}

async function logOf(page) {
  return page.locator("#log li.msg").evaluateAll((items) =>
    items.map((item) => ({ kind: item.dataset.kind, text: item.textContent })),
  );
}

async function main() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: run bash tests/interop/setup.sh`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30000,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
  const consoleErrors = [];
  const one = await openPage("page 1", consoleErrors);
  const two = await openPage("page 2", consoleErrors);
  const [p1, p2] = [one.page, two.page];

  await say(p1, "/join lobby");
  await received(p1, "joined lobby").waitFor();
  await say(p2, "/join lobby");
  await received(p2, "joined lobby").waitFor();

  await say(p1, "/say lobby hello from page 1");
  await received(p2, "hello from page 1").waitFor();
  // Page 1 must not get its own /say. Its next answer comes after anything the server queued for it before,
  // so once the /rooms answer is shown, a /say echo would already be there.
  await say(p1, "/rooms");
  await received(p1, '["lobby"]').waitFor();
  const page1SawOwnSay = await received(p1, "hello from page 1").count();

  await say(p2, "/all lobby hi everyone from page 2");
  await received(p1, "hi everyone from page 2").waitFor();
  await received(p2, "hi everyone from page 2").waitFor();

  // The browser's own WebSocket from page 1's script: 1 MiB of text and of binary echo back (ChatApp echoes
  // what is not a command), then the browser closes with 4000 and a reason, and sees the code echoed.
  const raw = await p1.evaluate(async () => {
    const ws = new WebSocket(`ws://${location.host}/raw`);
    ws.binaryType = "arraybuffer";
    const inbox = [];
    let wake = null;
    ws.onmessage = (event) => {
      inbox.push(event.data);
      if (wake) wake();
    };
    const next = async () => {
      while (!inbox.length) await new Promise((resolve) => (wake = resolve));
      return inbox.shift();
    };
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error("raw WebSocket failed to open"));
    });
    const text = "browser ❄ ".repeat(Math.ceil((1024 * 1024) / 12));
    ws.send(text);
    const textBack = await next();
    const bytes = new Uint8Array(1024 * 1024).map((_, i) => (i * 7) & 0xff);
    ws.send(bytes);
    const bytesBack = new Uint8Array(await next());
    const closed = new Promise((resolve) => {
      ws.onclose = (event) => resolve({ code: event.code, reason: event.reason, wasClean: event.wasClean });
    });
    ws.close(4000, "bye from browser");
    return {
      extensions: ws.extensions,
      text_ok: textBack === text,
      text_length: text.length,
      binary_ok: bytesBack.length === bytes.length && bytesBack.every((b, i) => b === bytes[i]),
      binary_length: bytesBack.length,
      close: await closed,
    };
  });

  const shots = {
    page1: path.join(screenshotDir, "chat-page1.png"),
    page2: path.join(screenshotDir, "chat-page2.png"),
  };
  await p1.screenshot({ path: shots.page1, fullPage: true });
  await p2.screenshot({ path: shots.page2, fullPage: true });

  await emit({
    browser_version: browser.version(),
    http: { page1: one.http, page2: two.http },
    title: await p2.title(),
    state: { page1: await p1.locator("#state").getAttribute("data-state"), page2: await p2.locator("#state").getAttribute("data-state") },
    page1_saw_own_say: page1SawOwnSay,
    raw,
    log: { page1: await logOf(p1), page2: await logOf(p2) },
    screenshots: shots,
    console_errors: consoleErrors,
  });

  // The test stops the server (close 1001 to everyone) and then tells us.
  const word = await stdinLine();
  if (word !== "stopped") throw new Error(`unexpected line on stdin: ${JSON.stringify(word)}`);
  const after = {};
  for (const [name, page] of [["page1", p1], ["page2", p2]]) {
    await page.locator('#state[data-state="closed"]').waitFor();
    after[name] = {
      state: await page.locator("#state").textContent(),
      last_event: await page.locator('#log li.msg[data-kind="event"]').last().textContent(),
      input_disabled: await page.locator("#line").isDisabled(),
    };
  }
  const closedShot = path.join(screenshotDir, "chat-page2-closed.png");
  await p2.screenshot({ path: closedShot, fullPage: true });
  return { after_stop: after, screenshot: closedShot, console_errors: consoleErrors };
}

main().then(
  (result) => finish(0, result),
  (err) => finish(1, { error: String(err && err.stack ? err.stack : err) }),
);
