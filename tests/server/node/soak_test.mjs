// A bounded soak on loopback: 4 concurrent clients, 50 requests each (half
// streamed), after a warm-up of 10 each. No request may fail, and the
// server's resident memory may grow by less than 5% from the end of the
// warm-up to the end. Latency percentiles and memory go to soak.json in
// the artifacts folder (and the test's output). Under a sanitizer the
// memory is reported, not checked: ASan's quarantine keeps freed memory.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import OpenAI from "openai";
import { startServer, storiesModel, rssBytes, quantile, artifacts, metric } from "./harness.mjs";

const CLIENTS = 4, WARMUP = 10, REQUESTS = 50, MAX_TOKENS = 32;

async function client(c, n, seed0, latencies) {
  let failures = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    try {
      const body = {
        model: "stories260K",
        messages: [{ role: "user", content: `Once upon a time, client ${c.id} asked ${i}` }],
        max_tokens: MAX_TOKENS, temperature: 0.8, seed: seed0 + i,
      };
      let tokens = 0;
      if (i % 2) {
        let text = "";
        const s = await c.api.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
        for await (const ch of s) {
          text += ch.choices[0]?.delta?.content ?? "";
          if (ch.usage) tokens = ch.usage.completion_tokens;
        }
        if (!text && tokens > 1) throw new Error("empty stream");
      } else {
        const r = await c.api.chat.completions.create(body);
        tokens = r.usage.completion_tokens;
      }
      if (tokens < 1 || tokens > MAX_TOKENS) throw new Error(`${tokens} tokens`);
      latencies.push(performance.now() - t0);
    } catch (e) {
      failures++;
      console.error(`client ${c.id} request ${i}: ${e}`);
    }
  }
  return failures;
}

async function phase(server, n, seed0, latencies) {
  const clients = Array.from({ length: CLIENTS }, (_, id) => ({
    id, api: new OpenAI({ baseURL: server.url + "/v1", apiKey: "unused", maxRetries: 0 }),
  }));
  const failures = await Promise.all(clients.map((c) => client(c, n, seed0 + 1000 * c.id, latencies)));
  return failures.reduce((a, b) => a + b, 0);
}

test("4 clients x 50 requests: no failures, resident memory flat", async () => {
  const server = await startServer(["-m", storiesModel, "--parallel", "2", "--ctx", "512"]);
  try {
    const warm = [];
    assert.equal(await phase(server, WARMUP, 1, warm), 0, "failures in the warm-up");
    const rssBefore = rssBytes(server.proc.pid);
    const latencies = [];
    const t0 = performance.now();
    const failures = await phase(server, REQUESTS, 100000, latencies);
    const seconds = (performance.now() - t0) / 1000;
    const rssAfter = rssBytes(server.proc.pid);
    const growth = (rssAfter - rssBefore) / rssBefore;
    const figures = {
      clients: CLIENTS, requests: CLIENTS * REQUESTS, warmup_requests: CLIENTS * WARMUP,
      max_tokens: MAX_TOKENS, parallel: 2, failures, seconds: Number(seconds.toFixed(2)),
      requests_per_s: Number((CLIENTS * REQUESTS / seconds).toFixed(1)),
      latency_ms: { p50: Number(quantile(latencies, 0.5).toFixed(1)), p99: Number(quantile(latencies, 0.99).toFixed(1)) },
      rss_bytes: { after_warmup: rssBefore, after: rssAfter, growth_pct: Number((100 * growth).toFixed(2)) },
      generated_tokens: await metric(server.url, "moestream_generated_tokens_total"),
    };
    writeFileSync(join(artifacts, "soak.json"), JSON.stringify(figures, null, 2) + "\n");
    console.log("soak:", JSON.stringify(figures));
    assert.equal(failures, 0);
    assert.equal(latencies.length, CLIENTS * REQUESTS);
    if (process.env.MOESTREAM_SANITIZE) {
      console.log(`soak: memory not checked under the ${process.env.MOESTREAM_SANITIZE} sanitizer`);
    } else {
      assert.ok(growth < 0.05, `resident memory grew ${(100 * growth).toFixed(2)}%`);
    }
    assert.equal(await metric(server.url, 'moestream_requests_total{reason="error"}'), 0);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});
