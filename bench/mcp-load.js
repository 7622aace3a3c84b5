// Closed-loop load for POST /api/mcp-servers/{id}/tools/echo/call: CONCURRENCY callers on
// keep-alive connections, each sending its next call when the last one answered. Per call it
// takes the whole latency (client clock) and the upstream time switchboard reports in
// `Server-Timing: upstream;dur=<ms>` (from sending to the MCP server to its full answer), so
// switchboard's own part = total - upstream, per call. The client's own time is in "total"
// (so the own part is an upper bound). Prints one JSON line.
//   URL TOKEN CONCURRENCY (16) RUN_SECONDS (10) WARMUP (2)
const http = require("http");
const url = new URL(process.env.URL);
const token = process.env.TOKEN;
const concurrency = Number(process.env.CONCURRENCY || 16);
const seconds = Number(process.env.RUN_SECONDS || 10);
const warmup = Number(process.env.WARMUP || 2);
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const body = JSON.stringify({ arguments: { message: "hello from the bench" } });
const totals = [];
const owns = [];
const ups = [];
// Server-Timing own;dur=: the handler's time minus upstream, on switchboard's clock (no client
// or kernel queueing in it).
const serverOwns = [];
let non2xx = 0;
let missing = 0;
let measuring = false;
let stopping = false;

function once() {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const req = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
        },
      },
      (res) => {
        res.on("data", () => {});
        res.on("end", () => {
          const total = Number(process.hrtime.bigint() - started) / 1e6;
          if (measuring) {
            if (res.statusCode < 200 || res.statusCode > 299) non2xx++;
            const st = res.headers["server-timing"] || "";
            const m = /upstream;dur=([0-9.]+)/.exec(st);
            const o = /own;dur=([0-9.]+)/.exec(st);
            if (measuring && o) serverOwns.push(Number(o[1]));
            totals.push(total);
            if (m) {
              const up = Number(m[1]);
              ups.push(up);
              owns.push(total - up);
            } else {
              missing++;
            }
          }
          resolve();
        });
      },
    );
    req.on("error", (e) => {
      if (measuring) non2xx++;
      resolve();
    });
    req.end(body);
  });
}

async function caller() {
  while (!stopping) await once();
}

function pct(xs, p) {
  if (xs.length === 0) return null;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

(async () => {
  const callers = Array.from({ length: concurrency }, caller);
  await new Promise((r) => setTimeout(r, warmup * 1000));
  measuring = true;
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  const took = Number(process.hrtime.bigint() - t0) / 1e9;
  stopping = true;
  await Promise.all(callers);
  agent.destroy();
  const f = (x) => (x === null ? null : Math.round(x * 1000) / 1000);
  console.log(
    JSON.stringify({
      calls: totals.length,
      rps: Math.round(totals.length / took),
      non2xx,
      no_server_timing: missing,
      total_p50_ms: f(pct(totals, 50)),
      total_p99_ms: f(pct(totals, 99)),
      upstream_p50_ms: f(pct(ups, 50)),
      upstream_p99_ms: f(pct(ups, 99)),
      own_p50_ms: f(pct(owns, 50)),
      own_p90_ms: f(pct(owns, 90)),
      own_p99_ms: f(pct(owns, 99)),
      server_own_p50_ms: f(pct(serverOwns, 50)),
      server_own_p99_ms: f(pct(serverOwns, 99)),
    }),
  );
})();
