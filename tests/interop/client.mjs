// Drives the official `better-auth` client (createAuthClient + jwtClient) through a whole account
// life against an auth server, asserting what a web UI would read: `data`, `error.code`,
// `error.status`. Run by `cargo test` against switchboard (tests/it/interop.rs); see README.md
// for running it against the real Better Auth reference server.
//
// Env: AUTH_URL  the server's origin, e.g. http://127.0.0.1:5001 (required)
//      ORIGIN    a trusted web-app origin to present, e.g. http://127.0.0.1:5173 (required)
//      WITH_JWT  "1" adds the JWT plugin steps (token(), jwks(), set-auth-jwt, jose verification)
//      WITH_MAIL "1" adds the mail steps (sendVerificationEmail, the verification link,
//                requestPasswordReset, the reset link, resetPassword); needs MAILBOX_DIR
//      MAILBOX_DIR  where the server's mail lands, one JSON file per email (`{to, subject, text}`,
//                   Resend's body), written by the Resend stand-in the Rust test runs; the steps
//                   read it as the user reads their inbox
//      JWKS_URL  where an independent verifier fetches keys (default AUTH_URL/api/auth/jwks)
//      TRACE     "1" prints every request and response on the wire (bodies cut at 300 chars)
//      WITH_GITHUB  "1" adds signIn.social({provider: "github"}); needs GITHUB_AUTHORIZE_URL and
//                GITHUB_CLIENT_ID, the server's configured values (no GitHub traffic is made)
//
// Node's fetch keeps no cookies and enforces no CORS, a browser does both; `browserFetch` below
// plays that part, so what passes here is what a browser-hosted web app would see.

import { createAuthClient } from "better-auth/client";
import { jwtClient } from "better-auth/client/plugins";
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { randomBytes } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";

const AUTH_URL = required("AUTH_URL").replace(/\/+$/, "");
const ORIGIN = new URL(required("ORIGIN")).origin;
const WITH_JWT = process.env.WITH_JWT === "1";
const JWKS_URL = process.env.JWKS_URL || `${AUTH_URL}/api/auth/jwks`;
const AUTH_ORIGIN = new URL(AUTH_URL).origin;
const TRACE = process.env.TRACE === "1";
const WITH_MAIL = process.env.WITH_MAIL === "1";
const MAILBOX_DIR = WITH_MAIL ? required("MAILBOX_DIR") : null;

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`client.mjs: environment variable ${name} is required`);
    process.exit(2);
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// A browser, reduced to what matters here: a cookie jar, the Origin and fetch-metadata headers,
// CORS (preflight for non-simple requests, credentialed-response checks, only exposed response
// headers readable by script).

// Response headers script may read cross-origin without them being exposed (Fetch standard).
const SAFELISTED_RESPONSE_HEADERS = new Set([
  "cache-control",
  "content-language",
  "content-length",
  "content-type",
  "expires",
  "last-modified",
  "pragma",
]);

class CookieJar {
  #cookies = new Map(); // name -> { value, expiresAt (ms) | null }

  store(setCookieHeaders, now = Date.now()) {
    for (const line of setCookieHeaders) {
      const [pair, ...attrs] = line.split(";");
      const eq = pair.indexOf("=");
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let expiresAt = null;
      for (const attr of attrs) {
        const [k, v = ""] = attr.split("=");
        const key = k.trim().toLowerCase();
        if (key === "max-age") expiresAt = now + Number(v.trim()) * 1000;
        else if (key === "expires" && expiresAt === null) expiresAt = Date.parse(v.trim());
      }
      if (value === "" || (expiresAt !== null && expiresAt <= now)) this.#cookies.delete(name);
      else this.#cookies.set(name, { value, expiresAt });
    }
  }

  header(now = Date.now()) {
    const parts = [];
    for (const [name, { value, expiresAt }] of this.#cookies) {
      if (expiresAt !== null && expiresAt <= now) this.#cookies.delete(name);
      else parts.push(`${name}=${value}`);
    }
    return parts.length ? parts.join("; ") : null;
  }

  names() {
    return [...this.#cookies.keys()];
  }
}

// Thrown where a browser's fetch would reject with a TypeError because CORS failed.
class CorsError extends TypeError {}

function isSimpleRequest(method, headers) {
  if (!["GET", "HEAD", "POST"].includes(method)) return false;
  for (const [name, value] of headers) {
    if (["accept", "accept-language", "content-language"].includes(name)) continue;
    if (name === "content-type") {
      const essence = value.split(";")[0].trim().toLowerCase();
      if (
        ["application/x-www-form-urlencoded", "multipart/form-data", "text/plain"].includes(essence)
      )
        continue;
    }
    return false;
  }
  return true;
}

function checkCorsResponse(res, what) {
  const allowOrigin = res.headers.get("access-control-allow-origin");
  const allowCredentials = res.headers.get("access-control-allow-credentials");
  if (allowOrigin !== ORIGIN) {
    throw new CorsError(
      `${what}: access-control-allow-origin is ${JSON.stringify(allowOrigin)}, not ${ORIGIN}`,
    );
  }
  if (allowCredentials !== "true") {
    throw new CorsError(
      `${what}: access-control-allow-credentials is ${JSON.stringify(allowCredentials)}, not "true"`,
    );
  }
}

function listHeader(res, name) {
  return (res.headers.get(name) || "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
}

async function trace(url, method, body, res) {
  const cut = (s) => (s && s.length > 300 ? `${s.slice(0, 300)}…` : s);
  console.log(`  > ${method} ${url.pathname}${url.search}${body ? ` ${cut(String(body))}` : ""}`);
  const text = await res.clone().text();
  console.log(`  < ${res.status} ${cut(text) || "(empty body)"}`);
  for (const [name, value] of res.headers) {
    if (name === "set-cookie" || name === "set-auth-jwt" || name.startsWith("access-control-")) {
      console.log(`    ${name}: ${cut(value)}`);
    }
  }
}

function makeBrowserFetch(jar) {
  return async function browserFetch(input, init = {}) {
    const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url);
    const method = (init.method || "GET").toUpperCase();
    const crossOrigin = url.origin !== ORIGIN;
    const authorHeaders = new Headers(init.headers);

    if (crossOrigin && !isSimpleRequest(method, authorHeaders)) {
      const requested = [...authorHeaders.keys()].sort();
      const preflight = await fetch(url, {
        method: "OPTIONS",
        redirect: "manual",
        headers: {
          origin: ORIGIN,
          "access-control-request-method": method,
          ...(requested.length ? { "access-control-request-headers": requested.join(",") } : {}),
          "sec-fetch-mode": "cors",
          "sec-fetch-site": "same-site",
          "sec-fetch-dest": "empty",
        },
      });
      if (TRACE) await trace(url, "OPTIONS", null, preflight);
      if (preflight.status < 200 || preflight.status > 299) {
        throw new CorsError(`preflight for ${method} ${url.pathname}: status ${preflight.status}`);
      }
      checkCorsResponse(preflight, `preflight for ${method} ${url.pathname}`);
      const methods = listHeader(preflight, "access-control-allow-methods");
      if (!["GET", "HEAD", "POST"].includes(method) && !methods.includes(method.toLowerCase())) {
        throw new CorsError(`preflight: method ${method} not allowed (${methods})`);
      }
      const allowed = listHeader(preflight, "access-control-allow-headers");
      for (const h of requested) {
        if (!allowed.includes(h)) {
          throw new CorsError(`preflight: header ${h} not allowed (${allowed})`);
        }
      }
    }

    const headers = new Headers(authorHeaders);
    if (crossOrigin || method !== "GET") headers.set("origin", ORIGIN);
    headers.set("sec-fetch-mode", "cors");
    headers.set("sec-fetch-site", crossOrigin ? "same-site" : "same-origin");
    headers.set("sec-fetch-dest", "empty");
    // `credentials: "include"` (what the client asks for): send the jar's cookies.
    const cookie = jar.header();
    if (cookie) headers.set("cookie", cookie);

    const res = await fetch(url, { ...init, method, headers, redirect: "manual" });
    if (TRACE) await trace(url, method, init.body, res);
    if (crossOrigin) checkCorsResponse(res, `${method} ${url.pathname}`);
    // A browser stores cookies from a credentialed response that passed CORS.
    jar.store(res.headers.getSetCookie());
    if (!crossOrigin) return res;

    const exposed = new Set(listHeader(res, "access-control-expose-headers"));
    const visible = new Headers();
    for (const [name, value] of res.headers) {
      if (SAFELISTED_RESPONSE_HEADERS.has(name) || exposed.has(name)) visible.append(name, value);
    }
    const nullBody = [101, 204, 205, 304].includes(res.status);
    return new Response(nullBody ? null : res.body, {
      status: res.status,
      statusText: res.statusText,
      headers: visible,
    });
  };
}

function newClient() {
  const jar = new CookieJar();
  const client = createAuthClient({
    baseURL: AUTH_URL,
    plugins: [jwtClient()],
    fetchOptions: { customFetchImpl: makeBrowserFetch(jar) },
  });
  return { client, jar };
}

// ---------------------------------------------------------------------------------------------
// Steps and assertions.

let passed = 0;
let failed = 0;
let skipped = 0;
let aborted = false;

class AssertionFailed extends Error {}

function check(cond, message) {
  if (!cond) throw new AssertionFailed(message);
}

function show(value) {
  return JSON.stringify(value, (_k, v) => (v === undefined ? "<undefined>" : v));
}

function eq(actual, expected, what) {
  check(
    isDeepStrictEqual(actual, expected),
    `${what}: expected ${show(expected)}, got ${show(actual)}`,
  );
}

function keys(obj, expected, what) {
  check(obj !== null && typeof obj === "object", `${what}: expected an object, got ${show(obj)}`);
  eq(Object.keys(obj).sort(), [...expected].sort(), `${what} keys`);
}

function isDate(value, what) {
  check(
    value instanceof Date && !Number.isNaN(value.getTime()),
    `${what}: expected a Date (the client revives ISO strings), got ${show(value)}`,
  );
}

function ok(result, what) {
  check(
    result.error === null,
    `${what}: expected success, got error ${show(result.error)} (data ${show(result.data)})`,
  );
  return result.data;
}

function fails(result, status, code, message, what) {
  check(result.error !== null, `${what}: expected an error, got data ${show(result.data)}`);
  eq(result.data, null, `${what} data`);
  eq(result.error.status, status, `${what} error.status`);
  eq(result.error.code, code, `${what} error.code`);
  if (message !== undefined) eq(result.error.message, message, `${what} error.message`);
}

async function step(name, fn) {
  if (aborted) {
    console.log(`SKIP ${name}`);
    failed += 1;
    skipped += 1;
    return;
  }
  try {
    const note = await fn();
    passed += 1;
    console.log(`ok   ${name}${note ? ` — ${note}` : ""}`);
  } catch (err) {
    failed += 1;
    // Later steps build on earlier ones; once one fails the rest would only repeat it.
    aborted = true;
    // A CORS failure is what a browser's fetch would reject with; its message says it all.
    let detail = err?.stack || String(err);
    if (err instanceof AssertionFailed) detail = err.message;
    else if (err instanceof CorsError) detail = `fetch rejected (CORS): ${err.message}`;
    console.log(`FAIL ${name}\n     ${detail.replace(/\n/g, "\n     ")}`);
  }
}

const USER_KEYS = ["id", "name", "email", "emailVerified", "image", "createdAt", "updatedAt"];
const SESSION_KEYS = [
  "id",
  "token",
  "userId",
  "expiresAt",
  "createdAt",
  "updatedAt",
  "ipAddress",
  "userAgent",
];
const TOKEN_RE = /^[A-Za-z0-9]{32}$/;
const DAY_MS = 86_400_000;

function checkUser(user, expected, what) {
  keys(user, USER_KEYS, what);
  check(typeof user.id === "string" && user.id.length > 0, `${what}.id: ${show(user.id)}`);
  eq(user.name, expected.name, `${what}.name`);
  eq(user.email, expected.email, `${what}.email`);
  eq(user.emailVerified, false, `${what}.emailVerified`);
  eq(user.image, null, `${what}.image`);
  isDate(user.createdAt, `${what}.createdAt`);
  isDate(user.updatedAt, `${what}.updatedAt`);
}

function checkSession(session, userId, what) {
  keys(session, SESSION_KEYS, what);
  check(TOKEN_RE.test(session.token), `${what}.token: ${show(session.token)}`);
  eq(session.userId, userId, `${what}.userId`);
  for (const k of ["expiresAt", "createdAt", "updatedAt"]) isDate(session[k], `${what}.${k}`);
  const ttl = session.expiresAt.getTime() - Date.now();
  check(
    ttl > 6.9 * DAY_MS && ttl <= 7 * DAY_MS + 60_000,
    `${what}.expiresAt: expected about now + 7 days, got ${session.expiresAt.toISOString()}`,
  );
  check(typeof session.ipAddress === "string", `${what}.ipAddress: ${show(session.ipAddress)}`);
  check(typeof session.userAgent === "string", `${what}.userAgent: ${show(session.userAgent)}`);
}

function jwtParts(token, what) {
  check(
    typeof token === "string" && /^[\w-]+\.[\w-]+\.[\w-]+$/.test(token),
    `${what}: not a compact JWS: ${show(token)}`,
  );
  const [h, p] = token.split(".");
  const json = (s) => JSON.parse(Buffer.from(s, "base64url").toString("utf8"));
  return { header: json(h), payload: json(p) };
}

// ---------------------------------------------------------------------------------------------
// The flow.

const email = `interop-${randomBytes(6).toString("hex")}@Example.com`;
const storedEmail = email.toLowerCase();
const firstName = "Interop Tester";
const newName = "Renamed Tester";
const oldPassword = `old-${randomBytes(9).toString("base64url")}`;
const newPassword = `new-${randomBytes(9).toString("base64url")}`;

const { client, jar } = newClient();
const state = {};

console.log(
  `official better-auth client against ${AUTH_URL} as ${ORIGIN}${WITH_JWT ? " (with JWT)" : ""}${WITH_MAIL ? " (with mail)" : ""}`,
);

await step("signUp.email creates the user and signs in", async () => {
  const data = ok(
    await client.signUp.email({ name: firstName, email, password: oldPassword }),
    "signUp.email",
  );
  keys(data, ["token", "user"], "signUp.email data");
  check(TOKEN_RE.test(data.token), `signUp.email data.token: ${show(data.token)}`);
  checkUser(data.user, { name: firstName, email: storedEmail }, "signUp.email data.user");
  check(
    jar.names().includes("better-auth.session_token"),
    `session cookie better-auth.session_token not set (jar: ${jar.names()})`,
  );
  state.userId = data.user.id;
  state.token = data.token;
  return `user ${state.userId}`;
});

await step("getSession returns the user and the session", async () => {
  const data = ok(await client.getSession(), "getSession");
  keys(data, ["session", "user"], "getSession data");
  checkUser(data.user, { name: firstName, email: storedEmail }, "getSession data.user");
  eq(data.user.id, state.userId, "getSession data.user.id");
  checkSession(data.session, state.userId, "getSession data.session");
  eq(data.session.token, state.token, "getSession data.session.token");
  state.sessionId = data.session.id;
});

await step("listSessions lists the one session", async () => {
  const data = ok(await client.listSessions(), "listSessions");
  check(Array.isArray(data), `listSessions data: expected an array, got ${show(data)}`);
  eq(data.length, 1, "listSessions length");
  checkSession(data[0], state.userId, "listSessions data[0]");
  eq(data[0].id, state.sessionId, "listSessions data[0].id");
  eq(data[0].token, state.token, "listSessions data[0].token");
});

await step("updateUser changes the name", async () => {
  const data = ok(await client.updateUser({ name: newName }), "updateUser");
  eq(data, { status: true }, "updateUser data");
});

await step("getSession shows the new name", async () => {
  const data = ok(await client.getSession(), "getSession");
  eq(data.user.name, newName, "getSession data.user.name");
  eq(data.session.token, state.token, "getSession data.session.token");
});

const other = newClient();
await step("a second device signs in; listSessions shows two", async () => {
  const data = ok(
    await other.client.signIn.email({ email, password: oldPassword }),
    "signIn.email (second device)",
  );
  keys(data, ["redirect", "token", "user"], "signIn.email data");
  eq(data.redirect, false, "signIn.email data.redirect");
  check(TOKEN_RE.test(data.token), `signIn.email data.token: ${show(data.token)}`);
  checkUser(data.user, { name: newName, email: storedEmail }, "signIn.email data.user");
  state.otherToken = data.token;
  const list = ok(await client.listSessions(), "listSessions");
  eq(list.map((s) => s.token).sort(), [state.token, data.token].sort(), "listSessions tokens");
});

await step("changePassword with revokeOtherSessions gives a new session", async () => {
  const data = ok(
    await client.changePassword({
      currentPassword: oldPassword,
      newPassword,
      revokeOtherSessions: true,
    }),
    "changePassword",
  );
  keys(data, ["token", "user"], "changePassword data");
  check(TOKEN_RE.test(data.token), `changePassword data.token: ${show(data.token)}`);
  check(data.token !== state.token, "changePassword data.token: expected a new token");
  checkUser(data.user, { name: newName, email: storedEmail }, "changePassword data.user");
  state.token = data.token;
});

await step("still signed in, on the new session only", async () => {
  const data = ok(await client.getSession(), "getSession");
  check(data !== null, "getSession data: expected a session, got null");
  eq(data.session.token, state.token, "getSession data.session.token");
  eq(data.user.id, state.userId, "getSession data.user.id");
  const list = ok(await client.listSessions(), "listSessions");
  eq(
    list.map((s) => s.token),
    [state.token],
    "listSessions tokens",
  );
  const theirs = ok(await other.client.getSession(), "getSession (second device)");
  eq(theirs, null, "getSession (second device) data");
});

await step("signOut", async () => {
  const data = ok(await client.signOut(), "signOut");
  eq(data, { success: true }, "signOut data");
});

await step("getSession is null after signOut", async () => {
  const data = ok(await client.getSession(), "getSession");
  eq(data, null, "getSession data");
});

await step("signIn.email with the old password fails", async () => {
  fails(
    await client.signIn.email({ email, password: oldPassword }),
    401,
    "INVALID_EMAIL_OR_PASSWORD",
    "Invalid email or password",
    "signIn.email (old password)",
  );
  const data = ok(await client.getSession(), "getSession");
  eq(data, null, "getSession data");
});

await step("signIn.email with the new password", async () => {
  const data = ok(await client.signIn.email({ email, password: newPassword }), "signIn.email");
  keys(data, ["redirect", "token", "user"], "signIn.email data");
  eq(data.redirect, false, "signIn.email data.redirect");
  checkUser(data.user, { name: newName, email: storedEmail }, "signIn.email data.user");
  const session = ok(await client.getSession(), "getSession");
  eq(session.session.token, data.token, "getSession data.session.token");
  state.token = data.token;
});

if (WITH_JWT) {
  const jwks = createRemoteJWKSet(new URL(JWKS_URL));
  const verifyOptions = { issuer: AUTH_ORIGIN, audience: AUTH_ORIGIN };

  const checkJwt = async (token, what) => {
    const { header } = jwtParts(token, what);
    eq(header.alg, "EdDSA", `${what} header.alg`);
    check(typeof header.kid === "string", `${what} header.kid: ${show(header.kid)}`);
    eq(decodeProtectedHeader(token).kid, header.kid, `${what} kid`);
    const { payload } = await jwtVerify(token, jwks, verifyOptions);
    eq(payload.sub, state.userId, `${what} sub`);
    eq(payload.id, state.userId, `${what} id`);
    eq(payload.email, storedEmail, `${what} email`);
    eq(payload.name, newName, `${what} name`);
    eq(payload.emailVerified, false, `${what} emailVerified`);
    eq(payload.exp - payload.iat, 900, `${what} exp - iat`);
    return header.kid;
  };

  await step("token() returns a JWT for the session", async () => {
    const data = ok(await client.token(), "token");
    keys(data, ["token"], "token data");
    jwtParts(data.token, "token data.token");
    state.jwt = data.token;
  });

  await step("jwks() returns the public keys", async () => {
    const data = ok(await client.jwks(), "jwks");
    keys(data, ["keys"], "jwks data");
    check(Array.isArray(data.keys) && data.keys.length > 0, `jwks data.keys: ${show(data.keys)}`);
    for (const [i, key] of data.keys.entries()) {
      eq(key.kty, "OKP", `jwks data.keys[${i}].kty`);
      eq(key.crv, "Ed25519", `jwks data.keys[${i}].crv`);
      eq(key.alg, "EdDSA", `jwks data.keys[${i}].alg`);
      check(typeof key.kid === "string", `jwks data.keys[${i}].kid: ${show(key.kid)}`);
      check(typeof key.x === "string", `jwks data.keys[${i}].x: ${show(key.x)}`);
      check(!("d" in key), `jwks data.keys[${i}] carries a private part`);
    }
    state.kids = data.keys.map((k) => k.kid);
    const { header } = jwtParts(state.jwt, "token data.token");
    check(state.kids.includes(header.kid), `JWT kid ${header.kid} is not in the JWKS`);
  });

  await step("getSession carries a set-auth-jwt header", async () => {
    let jwt = null;
    const data = ok(
      await client.getSession({
        fetchOptions: {
          onSuccess: (ctx) => {
            jwt = ctx.response.headers.get("set-auth-jwt");
          },
        },
      }),
      "getSession",
    );
    eq(data.session.token, state.token, "getSession data.session.token");
    check(jwt, "set-auth-jwt header missing or not exposed to script (Access-Control-Expose-Headers)");
    state.headerJwt = jwt;
  });

  await step(`jose createRemoteJWKSet(${JWKS_URL}) verifies both JWTs`, async () => {
    const kid = await checkJwt(state.jwt, "token() JWT");
    await checkJwt(state.headerJwt, "set-auth-jwt JWT");
    return `iss = aud = ${AUTH_ORIGIN}, kid ${kid}`;
  });
}

await step("deleteUser with the password", async () => {
  const data = ok(await client.deleteUser({ password: newPassword }), "deleteUser");
  eq(data, { success: true, message: "User deleted" }, "deleteUser data");
  const session = ok(await client.getSession(), "getSession");
  eq(session, null, "getSession data after deleteUser");
});

await step("signIn.email after deleteUser fails", async () => {
  fails(
    await client.signIn.email({ email, password: newPassword }),
    401,
    "INVALID_EMAIL_OR_PASSWORD",
    "Invalid email or password",
    "signIn.email (deleted user)",
  );
});

if (process.env.WITH_GITHUB === "1") {
  const authorizeUrl = required("GITHUB_AUTHORIZE_URL");
  const clientId = required("GITHUB_CLIENT_ID");

  await step("signIn.social({provider: github}) returns the authorize URL with PKCE", async () => {
    const { client: fresh, jar: freshJar } = newClient();
    const callbackURL = `${ORIGIN}/dash`;
    const data = ok(
      await fresh.signIn.social({ provider: "github", callbackURL, disableRedirect: true }),
      "signIn.social",
    );
    keys(data, ["url", "redirect"], "signIn.social data");
    eq(data.redirect, false, "signIn.social data.redirect");
    const url = new URL(data.url);
    eq(`${url.origin}${url.pathname}`, authorizeUrl, "authorize URL");
    const q = url.searchParams;
    eq(q.get("response_type"), "code", "response_type");
    eq(q.get("client_id"), clientId, "client_id");
    eq(q.get("scope"), "read:user user:email", "scope");
    eq(q.get("redirect_uri"), `${AUTH_ORIGIN}/api/auth/callback/github`, "redirect_uri");
    eq(q.get("code_challenge_method"), "S256", "code_challenge_method");
    check(/^[A-Za-z0-9_-]{43}$/.test(q.get("code_challenge") || ""), `code_challenge: ${q.get("code_challenge")}`);
    check(/^[A-Za-z0-9_-]{32}$/.test(q.get("state") || ""), `state: ${q.get("state")}`);
    check(freshJar.names().includes("better-auth.state"), `state cookie not stored: ${freshJar.names()}`);
    return `state ${q.get("state").slice(0, 6)}…`;
  });
}

// ---------------------------------------------------------------------------------------------
// WITH_MAIL: email verification and password reset, with a user of their own. The client cannot
// read mail; the server's mail lands in MAILBOX_DIR and these steps open it like an inbox.

const RESET_MESSAGE = "If this email exists in our system, check your email for the reset link";

/** The next email to `to` that has not been read yet; waits up to 10 s (mail goes out in the background). */
async function nextMail(to, read, what) {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const files = (await readdir(MAILBOX_DIR))
      .filter((f) => /^\d+\.json$/.test(f))
      .sort((a, b) => parseInt(a, 10) - parseInt(b, 10));
    for (const file of files) {
      if (read.has(file)) continue;
      const mail = JSON.parse(await readFile(join(MAILBOX_DIR, file), "utf8"));
      const recipients = Array.isArray(mail.to) ? mail.to : [mail.to];
      if (recipients.includes(to)) {
        read.add(file);
        return mail;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new AssertionFailed(`${what}: no email to ${to} arrived within 10 s`);
}

function linkIn(mail, what) {
  const found = /https?:\/\/\S+/.exec(mail.text ?? "");
  check(found, `${what}: no link in the email's text: ${show(mail.text)}`);
  return found[0];
}

/** Following a link from the inbox: a top-level navigation, with the browser's cookies. */
async function follow(link, jar) {
  const headers = new Headers({ "sec-fetch-mode": "navigate", "sec-fetch-site": "none" });
  const cookie = jar.header();
  if (cookie) headers.set("cookie", cookie);
  const res = await fetch(link, { headers, redirect: "manual" });
  jar.store(res.headers.getSetCookie());
  return res;
}

if (WITH_MAIL) {
  const inbox = new Set();
  const mailEmail = `interop-mail-${randomBytes(6).toString("hex")}@example.com`;
  const firstPassword = `first-${randomBytes(9).toString("base64url")}`;
  const resetTo = `reset-${randomBytes(9).toString("base64url")}`;
  const mail = newClient();

  await step("mail: signUp.email a second user", async () => {
    const data = ok(
      await mail.client.signUp.email({ name: "Mail Tester", email: mailEmail, password: firstPassword }),
      "signUp.email",
    );
    eq(data.user.emailVerified, false, "signUp.email data.user.emailVerified");
  });

  await step("mail: sendVerificationEmail mails a verification link", async () => {
    const data = ok(
      await mail.client.sendVerificationEmail({ email: mailEmail, callbackURL: `${ORIGIN}/verified` }),
      "sendVerificationEmail",
    );
    eq(data, { status: true }, "sendVerificationEmail data");
    const link = new URL(linkIn(await nextMail(mailEmail, inbox, "verification"), "verification"));
    eq(`${link.origin}${link.pathname}`, `${AUTH_URL}/api/auth/verify-email`, "verification link");
    eq(link.searchParams.get("callbackURL"), `${ORIGIN}/verified`, "verification link callbackURL");
    state.verifyLink = link.href;
    state.verifyToken = link.searchParams.get("token");
  });

  await step("mail: following the link verifies the email and lands on the app", async () => {
    const res = await follow(state.verifyLink, mail.jar);
    eq(res.status, 302, "verify-email status");
    eq(res.headers.get("location"), `${ORIGIN}/verified`, "verify-email location");
    const session = ok(await mail.client.getSession(), "getSession");
    eq(session.user.emailVerified, true, "getSession data.user.emailVerified");
  });

  await step("mail: verifyEmail with the used token says it is done", async () => {
    const data = ok(await mail.client.verifyEmail({ query: { token: state.verifyToken } }), "verifyEmail");
    eq(data, { status: true, user: null }, "verifyEmail data");
    fails(
      await mail.client.sendVerificationEmail({ email: mailEmail }),
      400,
      "EMAIL_ALREADY_VERIFIED",
      "Email is already verified",
      "sendVerificationEmail (verified)",
    );
  });

  await step("mail: requestPasswordReset answers the same for unknown and known addresses", async () => {
    const unknown = ok(
      await mail.client.requestPasswordReset({
        email: `nobody-${randomBytes(4).toString("hex")}@example.com`,
        redirectTo: `${ORIGIN}/reset`,
      }),
      "requestPasswordReset (unknown)",
    );
    const known = ok(
      await mail.client.requestPasswordReset({ email: mailEmail, redirectTo: `${ORIGIN}/reset` }),
      "requestPasswordReset",
    );
    eq(unknown, { status: true, message: RESET_MESSAGE }, "requestPasswordReset (unknown) data");
    eq(known, unknown, "requestPasswordReset data");
    const link = linkIn(await nextMail(mailEmail, inbox, "reset"), "reset");
    const match = /\/api\/auth\/reset-password\/([A-Za-z0-9]{24})\?callbackURL=(.*)$/.exec(link);
    check(match, `reset link: ${link}`);
    eq(decodeURIComponent(match[2]), `${ORIGIN}/reset`, "reset link callbackURL");
    state.resetLink = link;
  });

  await step("mail: the reset link lands on the app's reset page with the token", async () => {
    const res = await follow(state.resetLink, mail.jar);
    eq(res.status, 302, "reset-password link status");
    const location = new URL(res.headers.get("location"));
    eq(`${location.origin}${location.pathname}`, `${ORIGIN}/reset`, "reset-password link location");
    state.resetToken = location.searchParams.get("token");
    check(/^[A-Za-z0-9]{24}$/.test(state.resetToken ?? ""), `token in ${location}`);
  });

  await step("mail: resetPassword sets the new password, once", async () => {
    const data = ok(
      await mail.client.resetPassword({ newPassword: resetTo, token: state.resetToken }),
      "resetPassword",
    );
    eq(data, { status: true }, "resetPassword data");
    fails(
      await mail.client.resetPassword({ newPassword: `${resetTo}-again`, token: state.resetToken }),
      400,
      "INVALID_TOKEN",
      "Invalid token",
      "resetPassword (token used)",
    );
  });

  await step("mail: signIn.email works with the new password only", async () => {
    const fresh = newClient();
    fails(
      await fresh.client.signIn.email({ email: mailEmail, password: firstPassword }),
      401,
      "INVALID_EMAIL_OR_PASSWORD",
      "Invalid email or password",
      "signIn.email (old password)",
    );
    const data = ok(
      await fresh.client.signIn.email({ email: mailEmail, password: resetTo }),
      "signIn.email (new password)",
    );
    eq(data.user.emailVerified, true, "signIn.email data.user.emailVerified");
  });
}

// Skipped steps count as failed: the flow did not get through them.
const note = skipped ? ` (${skipped} skipped after the first failure)` : "";
console.log(`${passed} passed, ${failed} failed${note}`);
process.exit(failed === 0 ? 0 : 1);
