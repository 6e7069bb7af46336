// The web example (examples/web) in headless Chromium, against the real
// relay on 127.0.0.1: a therapist and a client, each in a browser context
// of its own (own IndexedDB, own keys), exchange texts, a homework
// assignment with a worksheet, a submission, feedback and read receipts;
// then a native profile (the `alcove` CLI) talks to the browser therapist.
// Screenshots of both views land in target/browser-screenshots/.
//
// Run: node --test tests/browser/ (after scripts/build-wasm.sh and
// `cargo build -p alcove-server -p alcove-cli`); scripts/test-web.sh does
// all of it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { chromium } from "playwright-core";
import { serve } from "../../examples/web/serve.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
const serverBin = process.env.ALCOVE_SERVER_BIN || join(root, "target/debug/alcove-server");
const cliBin = process.env.ALCOVE_CLI_BIN || join(root, "target/debug/alcove");
const shots = join(root, "target/browser-screenshots");
const run = promisify(execFile);

let relay, relayUrl, site, pageUrl, browser, scratch;

function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startRelay(origin, dataDir = join(scratch, "relay"), port) {
  port ??= await freePort();
  const proc = spawn(serverBin, [
    "--listen", `127.0.0.1:${port}`,
    "--data-dir", dataDir,
    "--allow-origin", origin,
  ], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("alcove-server did not start in 20 s")), 20_000);
    proc.stdout.on("data", (d) => {
      if (String(d).includes("listening on")) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.on("exit", (code) => reject(new Error(`alcove-server exited with ${code}`)));
  });
  return { proc, url: `http://127.0.0.1:${port}`, port, origin, dataDir };
}

let relayInfo;

/** Stops the relay (SIGTERM: it flushes and closes its store) and starts
 * it again on the same port and store. */
async function restartRelay() {
  const exited = new Promise((resolve) => relay.once("exit", resolve));
  relay.kill("SIGTERM");
  await exited;
  const again = await startRelay(relayInfo.origin, relayInfo.dataDir, relayInfo.port);
  relay = again.proc;
}

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), "alcove-web-"));
  mkdirSync(shots, { recursive: true });
  site = await serve(0);
  const origin = `http://127.0.0.1:${site.address().port}`;
  relayInfo = await startRelay(origin);
  ({ proc: relay, url: relayUrl } = relayInfo);
  pageUrl = (role) => `${origin}/?role=${role}&relay=${encodeURIComponent(relayUrl)}`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
      "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run",
    ],
  });
});

after(async () => {
  await browser?.close();
  relay?.kill();
  site?.close();
  rmSync(scratch, { recursive: true, force: true });
});

/** A page in a fresh browser context (its own IndexedDB and keys). */
async function open(role) {
  const context = await browser.newContext({ viewport: { width: 900, height: 1400 } });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(String(e)));
  // The browser logs each refused connection while the relay restarts;
  // that is expected. Anything else logged as an error is a problem.
  page.on("console", (m) => {
    if (m.type() === "error" && !/ERR_CONNECTION_REFUSED/.test(m.text())) problems.push(m.text());
  });
  await page.goto(pageUrl(role));
  await page.locator("#setup").waitFor();
  return { page, problems };
}

async function createProfile(page, name) {
  await page.fill("#name", name);
  await page.click("#create");
  await page.locator("#app").waitFor();
  await page.waitForFunction(() => document.getElementById("address").textContent.length > 20);
}

/** Waits for `locator`; on a timeout, says what the page showed. */
async function shown(page, locator, problems = []) {
  try {
    await locator.waitFor({ timeout: 20_000 });
  } catch (e) {
    const status = await page.textContent("#status").catch(() => "?");
    throw new Error(`${e.message}\npage status: ${status}\npage errors: ${problems.join("; ")}`);
  }
}

const line = (page, text) => page.locator("#conversation li", { hasText: text });

test("a therapist and a client in two browsers, then a native client", async () => {
  const therapist = await open("therapist");
  const client = await open("client");
  const t = therapist.page;
  const c = client.page;
  await createProfile(t, "Dr. Rivera");
  await createProfile(c, "Sam");

  // The invite link and its QR code; the client accepts the link.
  await t.click("#make-invite");
  await t.locator("#invite-qr svg").waitFor();
  const link = await t.inputValue("#invite-link");
  assert.match(link, /invite/);
  await c.fill("#accept-link", link);
  await c.fill("#accept-name", "Dr. Rivera");
  await c.click("#accept");
  await shown(c, c.locator("#contacts li", { hasText: "Dr. Rivera" }), client.problems);
  await t.locator("#contacts li", { hasText: "Sam" }).waitFor();

  // Both sides show the same safety number; verified through the invite.
  const safetyT = (await t.textContent("#safety-number")).trim();
  const safetyC = (await c.textContent("#safety-number")).trim();
  assert.equal(safetyT, safetyC);
  assert.equal(safetyT.replace(/\s/g, "").length, 60);
  assert.match(await c.textContent("#verified-state"), /^Verified/);

  // Texts both ways, live; the therapist's message shows as read.
  await t.fill("#message", "Hello Sam, welcome to your space.");
  await t.click("#send");
  await line(c, "welcome to your space").waitFor();
  await c.fill("#message", "Thank you, glad to be here.");
  await c.click("#send");
  await line(t, "glad to be here").waitFor();
  await line(t, "welcome to your space").locator(".meta", { hasText: "Read" }).waitFor();

  // Homework with a worksheet file, encrypted in the page.
  const worksheet = "Thought record\nSituation: ...\nAutomatic thought: ...\n";
  await t.fill("#hw-title", "Thought record");
  await t.fill("#hw-instructions", "Write down one situation this week.");
  await t.setInputFiles("#hw-file", {
    name: "thought-record.txt",
    mimeType: "text/plain",
    buffer: Buffer.from(worksheet),
  });
  await t.click("#assign");
  const assignment = line(c, "Homework: Thought record");
  await assignment.waitFor();
  await assignment.locator("button.download").click();
  await assignment.locator(".worksheet-text").waitFor();
  assert.equal(await assignment.locator(".worksheet-text").textContent(), worksheet);

  // The client hands it in; the therapist gives feedback.
  await assignment.locator(".hand-in-text").fill("Situation: a meeting. Thought: I will fail.");
  await assignment.locator("button.hand-in").click();
  const submission = line(t, "Homework handed in");
  await submission.waitFor();
  assert.match(await submission.textContent(), /I will fail/);
  await submission.locator(".feedback-text").fill("Good catch. What evidence goes against it?");
  await submission.locator("button.send-feedback").click();
  await line(c, "What evidence goes against it?").waitFor();
  // Answered items lose their forms; an opened worksheet stays open.
  assert.equal(await assignment.locator("button.hand-in").count(), 0);
  assert.equal(await submission.locator("button.send-feedback").count(), 0);
  assert.equal(await assignment.locator(".worksheet-text").textContent(), worksheet);

  // A reload: the profile opens again from IndexedDB (the storage key
  // unwrapped by the page's non-extractable key), with its history, and
  // the conversation goes on.
  await c.reload();
  await shown(c, line(c, "What evidence goes against it?"), client.problems);
  await c.fill("#message", "Back after a reload.");
  await c.click("#send");
  await line(t, "Back after a reload.").waitFor();

  // The relay restarts (same port, same store): both pages pick their live
  // streams up again, and nothing sent meanwhile is lost.
  await restartRelay();
  await t.fill("#message", "After the relay restarted.");
  await t.click("#send");
  await shown(c, line(c, "After the relay restarted."), client.problems);

  // The same profile in a second tab is refused, not opened twice (two
  // in-memory copies would fork its sessions).
  const twin = await c.context().newPage();
  await twin.goto(pageUrl("client"));
  await twin.waitForFunction(() => /open in another tab/.test(document.getElementById("status").textContent));
  assert.ok(await twin.locator("#app").isHidden());
  await twin.close();

  await t.screenshot({ path: join(shots, "therapist.png"), fullPage: true });
  await c.screenshot({ path: join(shots, "client.png"), fullPage: true });

  // A native profile (the CLI, over gRPC) with the browser therapist.
  const env = { ...process.env, ALCOVE_STORAGE_KEY: "ab".repeat(32) };
  const native = ["--profile", join(scratch, "native")];
  await run(cliBin, [...native, "init", "--server", relayUrl, "--name", "Alex"], { env });
  await t.click("#make-invite");
  await t.waitForFunction((old) => document.getElementById("invite-link").value !== old, link);
  const second = await t.inputValue("#invite-link");
  await run(cliBin, [...native, "accept", second, "--name", "Dr. Rivera"], { env });
  await t.locator("#contacts li button", { hasText: "Alex" }).click();
  await run(cliBin, [...native, "send", "Dr. Rivera", "Hi from the native app"], { env });
  await line(t, "Hi from the native app").waitFor();
  await t.fill("#message", "Hello Alex, this came from a browser.");
  await t.click("#send");
  let inbox = "";
  for (let i = 0; i < 20 && !inbox.includes("this came from a browser"); i++) {
    inbox += (await run(cliBin, [...native, "inbox"], { env })).stdout;
  }
  assert.match(inbox, /this came from a browser/);

  assert.deepEqual(therapist.problems, []);
  assert.deepEqual(client.problems, []);
});

test("the relay refuses the page when its origin is not allowed", async () => {
  // A relay that allows another origin only: the page cannot register.
  const other = await startRelay("http://portal.example.test", join(scratch, "other-relay"));
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(pageUrl("therapist").replace(encodeURIComponent(relayUrl), encodeURIComponent(other.url)));
    await page.fill("#name", "Mallory");
    await page.click("#create");
    await page.waitForFunction(() => /Could not create the profile/.test(document.getElementById("status").textContent));
    assert.ok(await page.locator("#app").isHidden());
  } finally {
    other.proc.kill();
  }
});

