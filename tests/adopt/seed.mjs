// Makes a Better Auth database the way a running deployment has one, with the real better-auth:
// its tables (Better Auth's own migrator, or a Drizzle schema pushed with drizzle-kit), and rows
// written through Better Auth's own API: email+password users with open sessions, a GitHub-linked
// user, a JWKS key with a signed JWT, a pending password reset. Prints what the adopt test needs
// as one JSON line on stdout.
//
// Environment:
//   PG_URL       the database (must exist and be empty)
//   SECRET       BETTER_AUTH_SECRET (the switchboard test config's auth.secret)
//   BASE_URL     BETTER_AUTH_URL (default http://localhost:5001)
//   BA           1.7 (better-auth 1.7.25, default) or 1.3 (better-auth 1.3.9)
//   LAYOUT       migrator (default: `getMigrations(...).runMigrations()`, quoted camelCase and
//                timestamptz) or drizzle (drizzle-kit's SQL for the schema Better Auth's CLI
//                generates from cli/auth.config.mjs: `auth generate` 1.7.7 for BA=1.7,
//                `@better-auth/cli generate` 1.3.9 for BA=1.3; snake_case, timestamp without
//                time zone)
//   CUSTOM_NAMES 1: Better Auth's `modelName` option, user -> users, account -> accounts

import pg from "pg";

const env = process.env;
const PG_URL = env.PG_URL;
const SECRET = env.SECRET;
const BASE_URL = env.BASE_URL ?? "http://localhost:5001";
const BA = env.BA ?? "1.7";
const LAYOUT = env.LAYOUT ?? "migrator";
const CUSTOM = env.CUSTOM_NAMES === "1";
if (!PG_URL || !SECRET) {
  console.error("PG_URL and SECRET are required");
  process.exit(2);
}

const pkg = BA === "1.3" ? "better-auth-1-3" : "better-auth";
const { betterAuth } = await import(pkg);
const { jwt } = await import(`${pkg}/plugins`);

const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });

let sentReset = null;
const names = CUSTOM
  ? { user: "users", account: "accounts" }
  : { user: "user", account: "account" };

// Runs Better Auth's CLI on cli/auth.config.mjs (Drizzle adapter, provider "pg", the JWT plugin,
// the `plan` column, the modelName options) and returns the schema module it generated.
async function generatedSchema() {
  const { execFileSync } = await import("node:child_process");
  const { mkdtempSync, rmSync } = await import("node:fs");
  const path = await import("node:path");
  const here = path.dirname(new URL(import.meta.url).pathname);
  // Inside tests/adopt, so the generated file's imports resolve to these node_modules.
  const dir = mkdtempSync(path.join(here, ".generated-"));
  const output = path.join(dir, "schema.ts");
  const cli =
    BA === "1.3"
      ? ["node_modules/better-auth-cli-1-3/dist/index.mjs"]
      : [
          ...(Object.groupBy ? [] : ["--import", "./cli/node20-groupby.mjs"]),
          "node_modules/auth/dist/index.mjs",
        ];
  try {
    execFileSync(
      process.execPath,
      [...cli, "generate", "--config", "cli/auth.config.mjs", "--output", output, "-y"],
      {
        cwd: here,
        env: { ...env, BA, CUSTOM_NAMES: CUSTOM ? "1" : "0" },
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    const { createJiti } = await import("jiti");
    const module = await createJiti(import.meta.url).import(output);
    return { ...module };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function drizzleDatabase() {
  const { drizzle } = await import("drizzle-orm/node-postgres");
  const { generateDrizzleJson, generateMigration } = await import("drizzle-kit/api");
  // What Better Auth's CLI (`generate`, Drizzle adapter on pg) writes: snake_case columns,
  // timestamp without time zone, plus the app's own `plan` column.
  const schema = await generatedSchema();
  const statements = await generateMigration(
    generateDrizzleJson({}),
    generateDrizzleJson(schema),
  );
  for (const sql of statements) {
    await pool.query(sql);
  }
  const { drizzleAdapter } = await import(`${pkg}/adapters/drizzle`);
  return drizzleAdapter(drizzle(pool), { provider: "pg", schema });
}

const database = LAYOUT === "drizzle" ? await drizzleDatabase() : pool;

const options = {
  baseURL: BASE_URL,
  secret: SECRET,
  database,
  emailAndPassword: {
    enabled: true,
    sendResetPassword: async ({ token }) => {
      sentReset = token;
    },
  },
  user: {
    modelName: names.user,
    additionalFields: { plan: { type: "string", required: false, input: true } },
  },
  account: { modelName: names.account },
  plugins: [jwt()],
  telemetry: { enabled: false },
};

if (LAYOUT !== "drizzle") {
  const migration = await import(BA === "1.3" ? `${pkg}/db` : `${pkg}/db/migration`);
  const { runMigrations } = await migration.getMigrations(options);
  await runMigrations();
}

const auth = betterAuth(options);

function sessionCookie(response) {
  const all = response.headers.getSetCookie
    ? response.headers.getSetCookie()
    : [response.headers.get("set-cookie")];
  for (const line of all.join(", ").split(/,\s*(?=[^;=]+=)/)) {
    const pair = line.split(";")[0].trim();
    if (pair.startsWith("better-auth.session_token=")) return pair;
  }
  throw new Error(`no session cookie in ${JSON.stringify(all)}`);
}

const users = [];
for (const [email, password, plan] of [
  ["alice@example.com", "alice-password-1", "pro"],
  ["bob@example.com", "bob-password-22", null],
]) {
  const body = { name: email.split("@")[0], email, password };
  if (plan) body.plan = plan;
  const res = await auth.api.signUpEmail({ body, asResponse: true });
  if (!res.ok) throw new Error(`sign-up ${email}: ${res.status} ${await res.text()}`);
  const json = await res.json();
  users.push({ email, password, id: json.user.id, cookie: sessionCookie(res) });
}

// A JWT as the JWT plugin hands it out (this creates the JWKS key).
const headers = new Headers({ cookie: users[0].cookie });
const { token } = await auth.api.getToken({ headers });
const kid = JSON.parse(Buffer.from(token.split(".")[0], "base64url").toString()).kid;

// A pending password reset for bob.
const request = auth.api.requestPasswordReset ?? auth.api.forgetPassword;
await request({ body: { email: users[1].email, redirectTo: `${BASE_URL}/reset` } });
if (!sentReset) throw new Error("no reset token was sent");

// A GitHub-linked user, written by Better Auth's own adapter (what its OAuth callback calls).
const ctx = await auth.$context;
const created = await ctx.internalAdapter.createOAuthUser(
  { email: "gh@example.com", name: "Octo", emailVerified: true, image: null },
  {
    providerId: "github",
    accountId: "4242",
    accessToken: "gho_seeded_token",
    scope: "read:user,user:email",
  },
);
const githubUser = created.user ?? created;

await pool.end();
console.log(
  JSON.stringify({
    version: (await import(`${pkg}/package.json`, { with: { type: "json" } }).catch(() => null))
      ?.default?.version,
    users,
    jwt: token,
    kid,
    resetToken: sentReset,
    github: { id: githubUser.id, email: "gh@example.com", accountId: "4242" },
  }),
);
