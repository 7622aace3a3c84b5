// A loopback stand-in for Anthropic's Messages API (streaming), for bench/agents.sh.
//
//   PORT=5323 node bench/anthropic-standin.js
//
// POST /v1/messages answers at once, by the conversation so far:
//   - the first turn: one tool_use block calling the offered tool whose name ends in "echo",
//     or in NAME if the prompt says "[tool:NAME]" (the run's tool call through MCP; echo gets
//     {"message": "hello"}, any other tool {}), stop_reason tool_use;
//   - after a tool_result: a short text answer, end_turn;
//   - a prompt containing "[slow]": one text answer streamed slowly, a text_delta every
//     SLOW_DELTA_MS (default 1000) for SLOW_SECONDS (default 120), or until the client goes.
// GET /stats: {"open_slow": streams in flight now, "peak_open_slow": the most at once,
// "served": answers begun}. bench/agents.sh sets SLOW_SECONDS long enough that the first
// streams are still open when the last ones start.
// Listens on 127.0.0.1 only.
"use strict";
const http = require("http");

const PORT = Number(process.env.PORT || 5323);
const SLOW_DELTA_MS = Number(process.env.SLOW_DELTA_MS || 1000);
const SLOW_SECONDS = Number(process.env.SLOW_SECONDS || 120);
let openSlow = 0;
let peakOpenSlow = 0;
let served = 0;

const frame = (e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`;
const start = () => ({
  type: "message_start",
  message: { id: "msg_bench", type: "message", role: "assistant", content: [], stop_reason: null,
    usage: { input_tokens: 50, output_tokens: 1 } },
});
const end = (stop) => [
  { type: "message_delta", delta: { stop_reason: stop }, usage: { output_tokens: 10 } },
  { type: "message_stop" },
];
const headers = { "content-type": "text/event-stream", "request-id": "req_bench" };

function textOf(content) {
  if (typeof content === "string") return content;
  return (content || []).map((b) => b.text || "").join("");
}

function answer(body, res) {
  served++;
  const msgs = body.messages || [];
  const last = msgs[msgs.length - 1] || {};
  const first = msgs[0] || {};
  if (textOf(first.content).includes("[slow]")) return slow(res);
  const afterTool = Array.isArray(last.content) && last.content.some((b) => b.type === "tool_result");
  let ev;
  if (afterTool) {
    ev = [start(),
      { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } },
      { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Done: the echo came back." } },
      { type: "content_block_stop", index: 0 },
      ...end("end_turn")];
  } else {
    const wanted = (textOf(first.content).match(/\[tool:([\w-]+)\]/) || [null, "echo"])[1];
    const tool = (body.tools || []).find((t) => t.name.endsWith(`__${wanted}`)) || { name: wanted };
    ev = [start(),
      { type: "content_block_start", index: 0, content_block: { type: "tool_use", id: `toolu_${served}`, name: tool.name, input: {} } },
      { type: "content_block_delta", index: 0, delta: { type: "input_json_delta", partial_json: wanted === "echo" ? '{"message":' : "{" } },
      { type: "content_block_delta", index: 0, delta: { type: "input_json_delta", partial_json: wanted === "echo" ? '"hello"}' : "}" } },
      { type: "content_block_stop", index: 0 },
      ...end("tool_use")];
  }
  res.writeHead(200, headers);
  res.end(ev.map(frame).join(""));
}

function slow(res) {
  openSlow++;
  peakOpenSlow = Math.max(peakOpenSlow, openSlow);
  let done = false;
  const finish = () => { if (!done) { done = true; openSlow--; clearInterval(timer); } };
  res.writeHead(200, headers);
  res.write(frame(start()) + frame({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }));
  const until = Date.now() + SLOW_SECONDS * 1000;
  const timer = setInterval(() => {
    if (Date.now() >= until) {
      res.end([{ type: "content_block_stop", index: 0 }, ...end("end_turn")].map(frame).join(""));
      finish();
      return;
    }
    res.write(frame({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "tick " } }));
  }, SLOW_DELTA_MS);
  // The socket, not the response: node may emit the response's "close" before its end.
  res.socket.once("close", finish);
}

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/stats") {
    res.writeHead(200, { "content-type": "application/json" });
    return res.end(JSON.stringify({ open_slow: openSlow, peak_open_slow: peakOpenSlow, served }));
  }
  if (req.method !== "POST" || !req.url.startsWith("/v1/messages")) {
    res.writeHead(404);
    return res.end();
  }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      res.writeHead(400, { "content-type": "application/json" });
      return res.end('{"type":"error","error":{"type":"invalid_request_error","message":"bad json"}}');
    }
    answer(body, res);
  });
});
server.requestTimeout = 0;
server.headersTimeout = 0;
server.keepAliveTimeout = 60000;
server.listen(PORT, "127.0.0.1");
