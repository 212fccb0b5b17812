// Shared by the serve tests: start `moestream serve` on a free port, read
// its resident memory, poll /metrics, and the paths the runner passes in.
import { spawn, execFileSync } from "node:child_process";
import { readFileSync, mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const bin = process.env.MOESTREAM_BIN;
export const sharedDir = process.env.MOESTREAM_SHARED_DIR;
export const artifacts = process.env.MOESTREAM_TEST_ARTIFACTS;
if (!bin || !sharedDir || !artifacts) {
  throw new Error("run through tests/server/run_node_tests.sh (MOESTREAM_BIN, MOESTREAM_SHARED_DIR, MOESTREAM_TEST_ARTIFACTS)");
}
mkdirSync(artifacts, { recursive: true });

export const storiesModel = join(sharedDir, "data/stories260k-gguf/stories260K.gguf");

// A generated qwen3moe model (no vocabulary: byte ids) in a scratch folder.
export function tinyMoeModel() {
  const dir = mkdtempSync(join(tmpdir(), "moestream-serve-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "tiny.gguf");
  execFileSync(bin, ["gen", "--preset", "tiny", "-o", path, "--quiet", "-t", "2"], { stdio: "inherit" });
  return path;
}

// The flags that offload the tiny model's 16 experts into 3 device slots.
export const offloadFlags = ["--experts-on", "host", "--device-budget", "8M", "--batch", "64"];

// Starts the server with `args` (plus --port 0) and resolves once it listens.
export function startServer(args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, ["serve", "--port", "0", "-t", "1", ...args], { stdio: ["ignore", "inherit", "pipe"] });
    let log = "";
    const timer = setTimeout(() => { proc.kill("SIGKILL"); reject(new Error("server did not start:\n" + log)); }, 60000);
    proc.stderr.on("data", (d) => {
      log += d.toString();
      const m = log.match(/on http:\/\/([^:/]+):(\d+)\//);
      if (m && !proc.started) {
        proc.started = true;
        clearTimeout(timer);
        const url = `http://${m[1]}:${m[2]}`;
        resolve({
          proc, url, log: () => log,
          async stop() {
            if (proc.exitCode !== null) return proc.exitCode;
            const exited = new Promise((r) => proc.once("exit", (code) => r(code)));
            proc.kill("SIGTERM");
            return exited;
          },
        });
      }
    });
    proc.on("exit", (code) => {
      if (!proc.started) { clearTimeout(timer); reject(new Error(`server exited (${code}) before listening:\n${log}`)); }
    });
  });
}

// Resident memory of a process, bytes (VmRSS).
export function rssBytes(pid) {
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/);
  return Number(m[1]) * 1024;
}

// The value of one sample line of /metrics (labels included in `name`).
export async function metric(url, name) {
  const text = await (await fetch(url + "/metrics")).text();
  for (const line of text.split("\n")) {
    if (line.startsWith(name + " ")) return Number(line.slice(name.length + 1));
  }
  return NaN;
}

// Polls `fn` until it returns true or `ms` pass.
export async function eventually(fn, ms = 10000, what = "condition") {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export function quantile(values, q) {
  if (!values.length) return 0;
  const v = [...values].sort((a, b) => a - b);
  const rank = Math.ceil(Math.min(Math.max(q, 0), 1) * v.length);
  return v[rank === 0 ? 0 : rank - 1];
}
