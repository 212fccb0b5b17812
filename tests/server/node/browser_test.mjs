// The page at / in headless Chromium (Debian's, driven by playwright-core):
// send a message, watch the reply stream in and the expert heatmap change.
// The screenshot is kept in the artifacts folder (serve-page.png).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { startServer, tinyMoeModel, offloadFlags, artifacts } from "./harness.mjs";

let server, browser;

before(async () => {
  // The offloaded MoE model (3 device slots for 16 experts, a slowish link
  // so the reply takes a while): the heatmap shows experts coming and going.
  server = await startServer(["-m", tinyMoeModel(), ...offloadFlags, "--link", "custom:1:100"]);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
  });
});
after(async () => {
  await browser?.close();
  assert.equal(await server.stop(), 0);
});

test("the page streams a reply and the heatmap follows the experts", async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(server.url + "/");
  // The live feed is connected once the stats line shows tokens per second.
  await page.waitForFunction(() => /tok\/s/.test(document.getElementById("stats").textContent));
  await page.waitForFunction(() => Number(document.getElementById("heatmap").dataset.frames) >= 1);
  const before = await page.$eval("#heatmap", (c) => c.dataset.signature);

  // Record every change of the reply's text.
  await page.evaluate(() => {
    window.replyTexts = [];
    new MutationObserver(() => {
      const r = document.querySelector(".msg.assistant:last-child");
      if (r && r.textContent) window.replyTexts.push(r.textContent);
    }).observe(document.getElementById("messages"), { subtree: true, childList: true, characterData: true });
  });
  await page.fill("#prompt", "hello there");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelector(".msg.user")?.textContent === "hello there");
  // The page asks for 128 tokens; byte-id replies read " <id>" per token.
  await page.waitForFunction(() => {
    const r = document.querySelector(".msg.assistant");
    return r && r.textContent.trim().split(/\s+/).length === 128;
  }, null, { timeout: 120000 });
  const texts = await page.evaluate(() => window.replyTexts);
  const distinct = new Set(texts);
  assert.ok(distinct.size >= 3, `the reply arrived in ${distinct.size} steps, expected it to stream`);
  // Each step extends the one before: tokens are appended, never replaced.
  for (let i = 1; i < texts.length; i++) assert.ok(texts[i].startsWith(texts[i - 1]));

  // The heatmap has redrawn with the new routing and residency.
  await page.waitForFunction((b) => document.getElementById("heatmap").dataset.signature !== b, before);
  await page.waitForFunction(() => /requests 1\b/.test(document.getElementById("stats").textContent));
  const stats = await page.$eval("#stats", (e) => e.textContent);
  assert.match(stats, /expert cache hit rate \d+(\.\d)?%/);
  // The heatmap has blue (resident) and red (hit) cells.
  const colours = await page.$eval("#heatmap", (c) => {
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let blue = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 2] > 150 && d[i] < 100) blue++;
    return { blue };
  });
  assert.ok(colours.blue > 0, "resident experts are drawn");
  await page.screenshot({ path: join(artifacts, "serve-page.png"), fullPage: true });
  assert.deepEqual(errors, []);
});
