// The real Better Auth 1.7.25, configured like the server switchboard replaces, on a scratch
// PostgreSQL database: the reference that proves client.mjs right. A dev tool, not run in CI.
//
//   node reference/server.mjs            # then, in another shell, run client.mjs (README.md)
//
// Env: PORT          port on 127.0.0.1 (default 3111; 0 picks a free one)
//      ORIGIN        the trusted web-app origin (default http://127.0.0.1:5173)
//      PG_URL        the PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres);
//                    a database `ba_reference_<random>` is created there and dropped on exit
//      KEEP_DB=1     keep that database on exit, to inspect the rows
//      MAILBOX_DIR   turns on email verification and password reset; each email becomes
//                    `<n>.json` ({to, subject, text}) there, as the Rust test's Resend stand-in
//                    files them, for client.mjs's WITH_MAIL steps

import http from "node:http";
import { randomBytes } from "node:crypto";
import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

// Better Auth skips every origin check when NODE_ENV=test: the reference must not.
if (process.env.NODE_ENV === "test" || !process.env.NODE_ENV) process.env.NODE_ENV = "development";
process.env.BETTER_AUTH_TELEMETRY = "0";

const { default: pg } = await import("pg");
const { betterAuth } = await import("better-auth");
const { jwt } = await import("better-auth/plugins");
const { getMigrations } = await import("better-auth/db/migration");
const { toNodeHandler } = await import("better-auth/node");

const PORT = Number(process.env.PORT ?? 3111);
const ORIGIN = new URL(process.env.ORIGIN ?? "http://127.0.0.1:5173").origin;
const PG_URL = process.env.PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
// The secret every sample in spec/better-auth-compat.md uses.
const SECRET = "test-secret-0123456789abcdefghijklmnopqrstuvwxyz";

const dbName = `ba_reference_${randomBytes(4).toString("hex")}`;
const admin = new pg.Client({ connectionString: PG_URL });
await admin.connect();
await admin.query(`CREATE DATABASE "${dbName}"`);
const dbUrl = new URL(PG_URL);
dbUrl.pathname = `/${dbName}`;
const pool = new pg.Pool({ connectionString: dbUrl.toString() });

// Listen first so that the port (PORT=0) is known before Better Auth learns its baseURL.
let handler = null;
const server = http.createServer((req, res) => {
  // The original app wrapped Better Auth in CORS middleware (origins from CORS_ORIGINS,
  // credentials on); Better Auth itself sends no CORS headers and 404s every OPTIONS.
  if (req.headers.origin === ORIGIN) {
    res.setHeader("access-control-allow-origin", ORIGIN);
    res.setHeader("access-control-allow-credentials", "true");
    res.setHeader("vary", "Origin");
    if (req.method === "OPTIONS") {
      res.setHeader("access-control-allow-methods", "GET, POST");
      res.setHeader("access-control-allow-headers", "content-type, authorization");
      res.setHeader("access-control-max-age", "600");
      res.writeHead(204).end();
      return;
    }
    // Better Auth's JWT plugin exposes set-auth-jwt itself, on get-session only.
  }
  handler(req, res);
});
await new Promise((resolve) => server.listen(PORT, "127.0.0.1", resolve));
const baseURL = `http://127.0.0.1:${server.address().port}`;

const MAILBOX_DIR = process.env.MAILBOX_DIR;
let mailCount = 0;
async function deliver(to, subject, url) {
  const n = mailCount++;
  const partial = join(MAILBOX_DIR, `.${n}.partial`);
  await writeFile(partial, JSON.stringify({ to: [to], subject, text: `${subject}:\n${url}\n` }));
  await rename(partial, join(MAILBOX_DIR, `${n}.json`));
}
const mailHooks = MAILBOX_DIR
  ? {
      emailVerification: {
        sendVerificationEmail: ({ user, url }) => deliver(user.email, "Verify your email", url),
      },
      resetPassword: {
        sendResetPassword: ({ user, url }) => deliver(user.email, "Reset your password", url),
      },
    }
  : {};

const options = {
  baseURL,
  secret: SECRET,
  database: pool,
  trustedOrigins: [ORIGIN],
  emailAndPassword: {
    enabled: true,
    minPasswordLength: 8,
    maxPasswordLength: 128,
    ...(mailHooks.resetPassword ?? {}),
  },
  ...(mailHooks.emailVerification ? { emailVerification: mailHooks.emailVerification } : {}),
  user: { deleteUser: { enabled: true } },
  plugins: [jwt()],
  telemetry: { enabled: false },
};

const { runMigrations } = await getMigrations(options);
await runMigrations();
const auth = betterAuth(options);
handler = toNodeHandler(auth);

console.log(`Better Auth reference listening on ${baseURL} (database ${dbName}, trusted ${ORIGIN})`);
console.log(`  AUTH_URL=${baseURL} ORIGIN=${ORIGIN} node client.mjs`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  server.close();
  await pool.end();
  if (process.env.KEEP_DB !== "1") {
    await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  } else {
    console.log(`kept database ${dbName}`);
  }
  await admin.end();
  process.exit(0);
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
