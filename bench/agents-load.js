// The client side of bench/agents.sh (node 18+, no dependencies).
//
//   MODE=overhead BASE=http://127.0.0.1:5322 TOKEN=<jwt> RUNS=300 CONCURRENCY=8 node bench/agents-load.js
//     Runs RUNS agent runs (a turn calling TOOL, default echo, and an answer each against the
//     instant stand-in),
//     CONCURRENCY at a time (with RATE, RATE runs started per second, CONCURRENCY at most at
//     once), each followed to its end on its SSE stream; then prints the
//     server's own time per turn (p50/p99) from the switchboard_agent_turn_overhead_seconds
//     histogram on BASE/metrics (the difference over this phase), and the wall time per run.
//
//   MODE=memory BASE=… TOKEN=… SB_PID=<pid> STANDIN=http://127.0.0.1:5323 STREAMS=1000 node bench/agents-load.js
//     Starts STREAMS runs whose model streams slowly ("[slow]" prompt), attaches one SSE client
//     to each GET /api/agent-runs/{id}/events, waits until the stand-in has every model stream
//     open and every SSE client has received a text_delta, then prints the process's RSS
//     (/proc/SB_PID/status) against the idle RSS measured before, and cancels the runs.
"use strict";
const http = require("http");
const fs = require("fs");

const BASE = new URL(process.env.BASE || "http://127.0.0.1:5322");
const TOKEN = process.env.TOKEN;
const MODE = process.env.MODE || "overhead";
// The tool the model calls in MODE=overhead (a server-everything tool; see anthropic-standin.js).
const TOOL = process.env.TOOL || "echo";
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

function request(method, path, body, extra = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request({
      host: BASE.hostname, port: BASE.port, method, path, agent,
      headers: Object.assign({ authorization: `Bearer ${TOKEN}` },
        data ? { "content-type": "application/json", "content-length": data.length } : {}, extra),
    }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    if (data) req.write(data);
    req.end();
  });
}

/// Follows a run's SSE stream; onEvent(type, data) per event; resolves at the stream's end.
function follow(id, onEvent) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: BASE.hostname, port: BASE.port, method: "GET", path: `/api/agent-runs/${id}/events`, agent,
      headers: { authorization: `Bearer ${TOKEN}`, accept: "text/event-stream" },
    }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`events: ${res.statusCode}`));
      let buf = "";
      res.setEncoding("utf8");
      res.on("data", (c) => {
        buf += c;
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let type = null, data = null;
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) type = line.slice(7);
            else if (line.startsWith("data: ")) data = line.slice(6);
          }
          if (type) onEvent(type, data ? JSON.parse(data) : null);
        }
      });
      res.on("end", resolve);
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

async function histogram(name = "switchboard_agent_turn_overhead_seconds") {
  const res = await request("GET", "/metrics");
  const buckets = [];
  let sum = 0, count = 0;
  for (const line of res.body.split("\n")) {
    let m = line.match(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\d+)`));
    if (m) buckets.push([m[1] === "+Inf" ? Infinity : Number(m[1]), Number(m[2])]);
    m = line.match(new RegExp(`^${name}_sum (\\S+)`));
    if (m) sum = Number(m[1]);
    m = line.match(new RegExp(`^${name}_count (\\d+)`));
    if (m) count = Number(m[1]);
  }
  return { buckets, sum, count };
}

/// What a histogram gained between two readings.
function delta(before, after) {
  return {
    count: after.count - before.count,
    sum: after.sum - before.sum,
    buckets: after.buckets.map(([le, c], i) => [le, c - (before.buckets[i] ? before.buckets[i][1] : 0)]),
  };
}

/// The bucket bound under which a fraction q of the samples fall (an upper bound on the
/// quantile, at the histogram's resolution).
function quantile(h, q) {
  const want = q * h.count;
  for (const [le, c] of h.buckets) if (c >= want) return le;
  return Infinity;
}

/// The share of samples at or under `le` seconds (a bucket bound).
function share(h, le) {
  const b = h.buckets.find(([bound]) => bound >= le);
  return `${((100 * (b ? b[1] : h.count)) / Math.max(1, h.count)).toFixed(1)} %`;
}

const ms = (s) => (s === Infinity ? "+Inf" : `${(s * 1000).toFixed(2)} ms`);

async function create(prompt) {
  const res = await request("POST", "/api/agent-runs", { prompt });
  if (res.status !== 202) throw new Error(`POST /api/agent-runs: ${res.status} ${res.body}`);
  return JSON.parse(res.body).id;
}

async function overhead() {
  const runs = Number(process.env.RUNS || 300);
  const conc = Number(process.env.CONCURRENCY || 8);
  const RATE = Number(process.env.RATE || 0);
  const before = await histogram();
  const dbBefore = await histogram("switchboard_agent_turn_db_wait_seconds");
  const walls = [];
  const statuses = {};
  let next = 0;
  const t0 = Date.now();
  async function worker() {
    while (next < runs) {
      const i = next++;
      // RATE: runs start on a schedule (open loop), CONCURRENCY at most at once.
      if (RATE > 0) {
        const wait = t0 + (i * 1000) / RATE - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      const t = Date.now();
      const id = await create(`Echo hello, then say you are done. [tool:${TOOL}]`);
      let status = null;
      await follow(id, (type, data) => { if (type === "status") status = data.status; });
      walls.push(Date.now() - t);
      statuses[status] = (statuses[status] || 0) + 1;
    }
  }
  await Promise.all(Array.from({ length: conc }, worker));
  const took = (Date.now() - t0) / 1000;
  const d = delta(before, await histogram());
  const db = delta(dbBefore, await histogram("switchboard_agent_turn_db_wait_seconds"));
  walls.sort((a, b) => a - b);
  const pct = (p) => walls[Math.min(walls.length - 1, Math.floor(p * walls.length))];
  console.log(JSON.stringify({
    runs, concurrency: conc, rate: RATE || undefined, tool: TOOL, seconds: took, runs_per_second: +(runs / took).toFixed(1), statuses,
    run_wall_ms: { p50: pct(0.5), p99: pct(0.99) },
    turns: d.count,
    overhead_per_turn: {
      mean: ms(d.sum / Math.max(1, d.count)), p50: ms(quantile(d, 0.5)), p90: ms(quantile(d, 0.9)),
      p99: ms(quantile(d, 0.99)), within_2ms: share(d, 0.002),
    },
    of_which_db_wait: { mean: ms(db.sum / Math.max(1, db.count)), p50: ms(quantile(db, 0.5)), p99: ms(quantile(db, 0.99)) },
  }));
}

function rssMb(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(s.match(/VmRSS:\s+(\d+)/)[1]) / 1024;
}

async function stats() {
  return new Promise((resolve, reject) => {
    http.get(`${process.env.STANDIN}/stats`, (res) => {
      let b = "";
      res.on("data", (c) => (b += c));
      res.on("end", () => resolve(JSON.parse(b)));
    }).on("error", reject);
  });
}

async function memory() {
  const n = Number(process.env.STREAMS || 1000);
  const pid = process.env.SB_PID;
  const idle = rssMb(pid);
  const ids = [];
  const t0 = Date.now();
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < n) { next++; ids.push(await create("[slow] Tell me a long story.")); }
  }));
  const created = (Date.now() - t0) / 1000;
  const deltas = new Map();
  const ended = [];
  for (const id of ids) {
    deltas.set(id, 0);
    follow(id, (type) => { if (type === "text_delta") deltas.set(id, deltas.get(id) + 1); })
      .then(() => ended.push(id), () => ended.push(id));
  }
  const deadline = Date.now() + Number(process.env.WAIT_SECONDS || 180) * 1000;
  let s, streaming;
  for (;;) {
    s = await stats();
    streaming = [...deltas.values()].filter((c) => c > 0).length;
    if ((s.open_slow >= n && streaming >= n) || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  const reached = (Date.now() - t0) / 1000;
  // Steady state: hold a few seconds, then read RSS (the peak of three reads).
  let rss = 0;
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 2000));
    rss = Math.max(rss, rssMb(pid));
  }
  s = await stats();
  streaming = [...deltas.values()].filter((c) => c > 0).length;
  console.log(JSON.stringify({
    runs: n, created_in_s: created, all_streaming_after_s: reached,
    model_streams_open: s.open_slow, model_streams_peak: s.peak_open_slow, sse_clients_receiving: streaming, sse_ended_early: ended.length,
    rss_idle_mb: +idle.toFixed(1), rss_mb: +rss.toFixed(1),
    per_run_kb: +(((rss - idle) * 1024) / n).toFixed(1),
  }));
  if (process.env.HOLD_SECONDS) await new Promise((r) => setTimeout(r, Number(process.env.HOLD_SECONDS) * 1000));
  await Promise.all(Array.from({ length: 16 }, async (_, k) => {
    for (let i = k; i < ids.length; i += 16) await request("POST", `/api/agent-runs/${ids[i]}/cancel`);
  }));
  process.exit(0);
}

(MODE === "memory" ? memory() : overhead()).catch((e) => { console.error(e); process.exit(1); });
