// The official OpenAI client against `moestream serve` on 127.0.0.1: chat,
// streaming, stop sequences, max_tokens, completions, every error case,
// and a disconnect that cancels its request. Then an offloaded MoE model
// with two slots: its expert-cache metrics.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startServer, storiesModel, tinyMoeModel, offloadFlags, metric, eventually } from "./harness.mjs";

const KEY = "test-key";
let server, client;

before(async () => {
  server = await startServer(["-m", storiesModel, "--api-key", KEY, "--ctx", "256", "--max-body", "64K"]);
  client = new OpenAI({ baseURL: server.url + "/v1", apiKey: KEY, maxRetries: 0 });
});
after(async () => {
  assert.equal(await server.stop(), 0, "the server exits 0 on SIGTERM");
});

const chat = (extra = {}) => ({
  model: "stories260K",
  messages: [{ role: "user", content: "Once upon a time" }],
  ...extra,
});

test("lists the model", async () => {
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), ["stories260K"]);
});

test("chat completion with usage and max_tokens", async () => {
  const r = await client.chat.completions.create(chat({ max_tokens: 20, temperature: 0 }));
  assert.equal(r.object, "chat.completion");
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, "assistant");
  assert.ok(r.choices[0].message.content.length > 0);
  assert.equal(r.choices[0].finish_reason, "length");
  assert.equal(r.usage.completion_tokens, 20);
  assert.ok(r.usage.prompt_tokens > 0);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 20);
  const short = await client.chat.completions.create(chat({ max_tokens: 5, temperature: 0 }));
  assert.equal(short.usage.completion_tokens, 5);
  assert.ok(r.choices[0].message.content.startsWith(short.choices[0].message.content));
});

test("a seed makes sampling repeatable", async () => {
  const a = await client.chat.completions.create(chat({ max_tokens: 24, temperature: 0.9, seed: 7 }));
  const b = await client.chat.completions.create(chat({ max_tokens: 24, temperature: 0.9, seed: 7 }));
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
});

test("streaming sends the same text in chunks, then usage and [DONE]", async () => {
  const whole = await client.chat.completions.create(chat({ max_tokens: 24, temperature: 0 }));
  const stream = await client.chat.completions.create(
    chat({ max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true } }));
  let text = "", chunks = 0, role = null, finish = null, usage = null;
  for await (const c of stream) {
    chunks++;
    if (c.usage) usage = c.usage;
    if (!c.choices.length) continue;
    assert.equal(c.object, "chat.completion.chunk");
    role ??= c.choices[0].delta.role ?? null;
    text += c.choices[0].delta.content ?? "";
    finish = c.choices[0].finish_reason ?? finish;
  }
  assert.equal(role, "assistant");
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, "length");
  assert.ok(chunks >= 3, `${chunks} chunks`);
  assert.equal(usage.completion_tokens, 24);
});

test("stop sequences end the reply before them", async () => {
  const full = (await client.chat.completions.create(chat({ max_tokens: 40, temperature: 0 }))).choices[0].message.content;
  const words = full.trim().split(/\s+/);
  const stop = " " + words[3];
  const want = full.slice(0, full.indexOf(stop));
  const r = await client.chat.completions.create(chat({ max_tokens: 40, temperature: 0, stop: [stop, "zzzz"] }));
  assert.equal(r.choices[0].finish_reason, "stop");
  assert.equal(r.choices[0].message.content, want);
  const stream = await client.chat.completions.create(chat({ max_tokens: 40, temperature: 0, stop, stream: true }));
  let text = "", finish = null;
  for await (const c of stream) {
    text += c.choices[0]?.delta?.content ?? "";
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(text, want);
  assert.equal(finish, "stop");
});

test("completions from text and from token ids", async () => {
  const a = await client.completions.create({ model: "stories260K", prompt: "Once upon a time", max_tokens: 8, temperature: 0 });
  assert.equal(a.object, "text_completion");
  assert.equal(a.usage.completion_tokens, 8);
  assert.ok(a.choices[0].text.length > 0);
  const b = await client.completions.create({ model: "stories260K", prompt: [1, 403, 407], max_tokens: 4, temperature: 0 });
  assert.equal(b.usage.prompt_tokens, 3);
  const s = await client.completions.create({ model: "stories260K", prompt: "Once upon a time", max_tokens: 8, temperature: 0, stream: true });
  let text = "";
  for await (const c of s) text += c.choices[0]?.text ?? "";
  assert.equal(text, a.choices[0].text);
});

async function rejects(promise, status, check = () => {}) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError, String(e));
    assert.equal(e.status, status, e.message);
    check(e);
    return e;
  }
  assert.fail(`expected HTTP ${status}`);
}

test("401 for a missing or wrong key", async () => {
  const wrong = new OpenAI({ baseURL: server.url + "/v1", apiKey: "nope", maxRetries: 0 });
  await rejects(wrong.chat.completions.create(chat()), 401, (e) => {
    assert.ok(e instanceof OpenAI.AuthenticationError);
    assert.equal(e.code, "invalid_api_key");
  });
  const none = await fetch(server.url + "/v1/models");
  assert.equal(none.status, 401);
  assert.equal((await none.json()).error.type, "authentication_error");
  // The page, health and metrics need no key.
  assert.equal((await fetch(server.url + "/health")).status, 200);
  assert.equal((await fetch(server.url + "/")).status, 200);
});

test("400 names the bad field", async () => {
  const cases = [
    [{ temperature: 5 }, "temperature"],
    [{ top_p: 0 }, "top_p"],
    [{ max_tokens: 0 }, "max_tokens"],
    [{ n: 2 }, "n"],
    [{ stop: ["a", "b", "c", "d", "e"] }, "stop"],
    [{ seed: -3 }, "seed"],
    [{ messages: [] }, "messages"],
    [{ messages: [{ role: "wizard", content: "hi" }] }, "messages[0].role"],
  ];
  for (const [extra, param] of cases) {
    await rejects(client.chat.completions.create(chat(extra)), 400, (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError);
      assert.equal(e.param, param, JSON.stringify(extra));
      assert.equal(e.type, "invalid_request_error");
    });
  }
});

test("400 for a prompt longer than the context", async () => {
  const long = "Once upon a time there was a little girl. ".repeat(60);  // > 256 tokens, < 64 KiB
  await rejects(client.chat.completions.create(chat({ messages: [{ role: "user", content: long }] })), 400, (e) => {
    assert.equal(e.code, "context_length_exceeded");
    assert.equal(e.param, "messages");
  });
});

test("400 for bad JSON, 413 over the body limit, 404 elsewhere", async () => {
  const headers = { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" };
  const bad = await fetch(server.url + "/v1/chat/completions", { method: "POST", headers, body: '{"messages": [' });
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error.message, /not valid JSON/);
  await rejects(client.chat.completions.create(chat({ messages: [{ role: "user", content: "x".repeat(100000) }] })), 413);
  const missing = await fetch(server.url + "/v1/nothing", { headers });
  assert.equal(missing.status, 404);
  assert.ok((await missing.json()).error.message);
});

test("the server is healthy after every error", async () => {
  const h = await fetch(server.url + "/health");
  assert.deepEqual(await h.json(), { status: "ok" });
  const r = await client.chat.completions.create(chat({ max_tokens: 3 }));
  assert.equal(r.usage.completion_tokens, 3);
  assert.ok((await metric(server.url, 'moestream_http_errors_total{status="400"}')) >= 10);
  assert.equal(await metric(server.url, 'moestream_http_errors_total{status="413"}'), 1);
});

test("an offloaded MoE model with two slots reports its expert cache", async () => {
  const moe = await startServer(["-m", tinyMoeModel(), ...offloadFlags, "--parallel", "2"]);
  try {
    const c = new OpenAI({ baseURL: moe.url + "/v1", apiKey: "unused", maxRetries: 0 });
    const [a, b] = await Promise.all([
      c.completions.create({ model: "tiny", prompt: [1, 2, 3, 4], max_tokens: 12, temperature: 0 }),
      c.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "hello" }], max_tokens: 12 }),
    ]);
    assert.equal(a.usage.completion_tokens, 12);
    assert.equal(b.usage.completion_tokens, 12);
    assert.match(a.choices[0].text, /^( \d+){12}$/);  // byte ids: " <id>" per token
    const text = await (await fetch(moe.url + "/metrics")).text();
    for (const l of [0, 1]) {
      assert.match(text, new RegExp(`^moestream_expert_cache_hit_rate\\{layer="${l}"\\} [0-9.e-]+$`, "m"));
      assert.ok((await metric(moe.url, `moestream_expert_cache_accesses_total{layer="${l}"}`)) > 0);
    }
    assert.ok((await metric(moe.url, 'moestream_expert_bytes_read_total{tier="host"}')) > 0);
    assert.equal(await metric(moe.url, "moestream_expert_cache_slots"), 3);
    assert.equal(await metric(moe.url, "moestream_slots"), 2);
    assert.ok((await metric(moe.url, "moestream_expert_stall_seconds_total")) >= 0);
  } finally {
    assert.equal(await moe.stop(), 0);
  }
});

test("a client that disconnects cancels its request", async () => {
  // A slow modelled link (0.2 GB/s, 0.5 ms a copy) makes each token take
  // milliseconds, so the requests below are still running when their clients go.
  const slow = await startServer(["-m", tinyMoeModel(), ...offloadFlags, "--link", "custom:0.2:500"]);
  try {
    const c = new OpenAI({ baseURL: slow.url + "/v1", apiKey: "unused", maxRetries: 0 });
    const cancelled = () => metric(slow.url, 'moestream_requests_total{reason="cancelled"}');
    const controller = new AbortController();
    const stream = await c.chat.completions.create(
      { model: "tiny", messages: [{ role: "user", content: "hello" }], max_tokens: 400, stream: true },
      { signal: controller.signal });
    let got = 0;
    try {
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta?.content && ++got === 2) controller.abort();
      }
    } catch (e) {
      assert.ok(e instanceof OpenAI.APIUserAbortError || e.name === "AbortError", String(e));
    }
    await eventually(async () => (await cancelled()) === 1, 10000, "the cancel to be counted");
    await eventually(async () => (await metric(slow.url, "moestream_slots_in_use")) === 0, 10000, "the slot to be free");
    // A request that is not streamed: its client goes away while it runs.
    const c2 = new AbortController();
    const p = c.completions.create({ model: "tiny", prompt: [1, 2, 3], max_tokens: 400 }, { signal: c2.signal });
    setTimeout(() => c2.abort(), 300);
    await assert.rejects(p);
    await eventually(async () => (await cancelled()) === 2, 10000, "the second cancel to be counted");
    assert.equal(await metric(slow.url, 'moestream_requests_total{reason="length"}'), 0);
  } finally {
    assert.equal(await slow.stop(), 0);
  }
});
