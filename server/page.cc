// The page served at /: a chat box whose replies stream in from
// /v1/chat/completions, and a live view of the expert cache fed by /events
// (server-sent Metrics::LiveJson). Plain HTML and JavaScript, no build step.
//
// Hooks the browser test reads: #prompt, #send, #messages (.msg.assistant
// holds a reply), #heatmap (data-frames: events drawn; data-signature: a
// digest of what it shows), #toks (tokens/s chart), #stats.
#include "server/http_server.h"

namespace moestream::server {

const char* const kIndexHtml = R"PAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>moestream</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; display: flex; height: 100vh; color: #222; }
  #chat { flex: 1; display: flex; flex-direction: column; border-right: 1px solid #ddd; min-width: 320px; }
  #messages { flex: 1; overflow-y: auto; padding: 12px; }
  .msg { margin: 6px 0; padding: 8px 10px; border-radius: 6px; white-space: pre-wrap; }
  .user { background: #e8f0fe; }
  .assistant { background: #f3f3f3; }
  .error { background: #fde8e8; color: #900; }
  form { display: flex; gap: 6px; padding: 10px; border-top: 1px solid #ddd; }
  #prompt { flex: 1; font: inherit; padding: 6px; resize: vertical; }
  #live { width: 46%; padding: 12px; overflow-y: auto; }
  canvas { border: 1px solid #ccc; display: block; margin: 6px 0 12px; width: 100%; height: auto; }
  .legend span { display: inline-block; width: 12px; height: 12px; vertical-align: middle; margin: 0 4px 0 10px; }
  #key { width: 12em; }
  h2 { font-size: 15px; margin: 8px 0 4px; }
</style>
</head>
<body>
<div id="chat">
  <div id="messages"></div>
  <form id="form">
    <textarea id="prompt" rows="2" placeholder="Say something (Enter sends, Shift+Enter: new line)"></textarea>
    <div>
      <button id="send" type="submit">Send</button><br>
      <input id="key" type="password" placeholder="API key (if set)">
    </div>
  </form>
</div>
<div id="live">
  <div id="stats">connecting…</div>
  <h2>Experts by layer</h2>
  <div class="legend">rows: layers, columns: experts
    <span style="background:#2b6cb0"></span>resident
    <span style="background:#90cdf4"></span>loading
    <span style="background:#f56565"></span>hit since the last update</div>
  <canvas id="heatmap" width="640" height="200" data-frames="0" data-signature=""></canvas>
  <h2>Tokens per second</h2>
  <canvas id="toks" width="640" height="140"></canvas>
</div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const conversation = [];
const keyInput = $("key");
keyInput.value = localStorage.getItem("moestream-key") || "";
keyInput.addEventListener("change", () => localStorage.setItem("moestream-key", keyInput.value));

function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text;
  $("messages").appendChild(div);
  $("messages").scrollTop = $("messages").scrollHeight;
  return div;
}

async function send(text) {
  conversation.push({ role: "user", content: text });
  addMessage("user", text);
  const out = addMessage("assistant", "");
  const headers = { "Content-Type": "application/json" };
  if (keyInput.value) headers["Authorization"] = "Bearer " + keyInput.value;
  let reply = "";
  try {
    const res = await fetch("/v1/chat/completions", {
      method: "POST", headers,
      body: JSON.stringify({ model: "moestream", messages: conversation, stream: true, max_tokens: 128 }),
    });
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      throw new Error((body.error && body.error.message) || res.statusText);
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffered.indexOf("\n\n")) >= 0) {
        const event = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
          if (delta && delta.content) {
            reply += delta.content;
            out.textContent = reply;
          }
        }
      }
    }
    conversation.push({ role: "assistant", content: reply });
  } catch (e) {
    out.className = "msg error";
    out.textContent = "error: " + e.message;
    conversation.pop();
  }
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("prompt").value.trim();
  if (!text) return;
  $("prompt").value = "";
  send(text);
});
$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("form").requestSubmit(); }
});

let lastUses = null;
const rates = [];

function drawHeatmap(s) {
  const c = $("heatmap");
  const ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  if (!s.layers) {
    ctx.fillStyle = "#666";
    ctx.fillText("a dense model: no routed experts", 10, 20);
    return;
  }
  const cw = c.width / s.experts, ch = c.height / s.layers;
  const hits = s.uses.map((u, i) => (lastUses && lastUses.length === s.uses.length) ? u - lastUses[i] : 0);
  const maxHit = Math.max(1, ...hits);
  for (let l = 0; l < s.layers; l++) {
    for (let x = 0; x < s.experts; x++) {
      const i = l * s.experts + x;
      const r = s.offload ? s.resident[i] : 2;
      ctx.fillStyle = r === 2 ? "#2b6cb0" : r === 1 ? "#90cdf4" : "#f7fafc";
      ctx.fillRect(x * cw, l * ch, Math.max(1, cw - 1), Math.max(1, ch - 1));
      if (hits[i] > 0) {
        ctx.fillStyle = "rgba(245,101,101," + (0.35 + 0.65 * hits[i] / maxHit).toFixed(3) + ")";
        ctx.fillRect(x * cw + cw * 0.2, l * ch + ch * 0.2, Math.max(1, cw * 0.6), Math.max(1, ch * 0.6));
      }
    }
  }
  lastUses = s.uses.slice();
  c.dataset.frames = String(Number(c.dataset.frames) + 1);
  let sig = 0;
  for (let i = 0; i < s.uses.length; i++) sig = (sig * 31 + s.uses[i] * 3 + (s.offload ? s.resident[i] : 0)) % 1000000007;
  c.dataset.signature = String(sig);
}

function drawRates(s) {
  rates.push(s.tok_s);
  if (rates.length > 120) rates.shift();
  const c = $("toks");
  const ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  const max = Math.max(1, ...rates);
  ctx.strokeStyle = "#2b6cb0";
  ctx.beginPath();
  rates.forEach((v, i) => {
    const x = (i / 119) * c.width, y = c.height - 4 - (v / max) * (c.height - 20);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
  ctx.fillStyle = "#444";
  ctx.fillText("max " + max.toFixed(1) + " tok/s", 6, 12);
}

function connect() {
  const es = new EventSource("/events");
  es.onmessage = (m) => {
    const s = JSON.parse(m.data);
    const hit = s.hit_rate && s.hit_rate.length
      ? " · expert cache hit rate " + (100 * s.hit_rate.reduce((a, b) => a + b, 0) / s.hit_rate.length).toFixed(1) + "%"
        + " · expert slots " + s.expert_slots_in_use + "/" + s.expert_slots
      : "";
    $("stats").textContent = s.tok_s.toFixed(1) + " tok/s · queue " + s.queue + " · slots " +
      s.slots_in_use + "/" + s.slots + " · requests " + s.requests + hit;
    drawHeatmap(s);
    drawRates(s);
  };
  es.onerror = () => { $("stats").textContent = "live view disconnected; retrying…"; };
}
connect();
</script>
</body>
</html>
)PAGE";

}  // namespace moestream::server
