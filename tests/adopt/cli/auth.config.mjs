// The auth config `@better-auth/cli generate` (1.3.9) / `auth generate` (1.7.7, the CLI's new
// package name) reads to write the Drizzle schema for the adopt tests: the Drizzle adapter on
// PostgreSQL, the JWT plugin, the app's own `plan` column, and with CUSTOM_NAMES=1 the
// `modelName` options (user -> users, account -> accounts). BA=1.3 uses better-auth 1.3.9.
// The database handle is never connected: the CLI only reads the options.
import { drizzle } from "drizzle-orm/node-postgres";
import pg from "pg";

const BA = process.env.BA ?? "1.7";
const CUSTOM = process.env.CUSTOM_NAMES === "1";
const pkg = BA === "1.3" ? "better-auth-1-3" : "better-auth";
const { betterAuth } = await import(pkg);
const { jwt } = await import(`${pkg}/plugins`);
const { drizzleAdapter } = await import(`${pkg}/adapters/drizzle`);

const db = drizzle(new pg.Pool({ connectionString: "postgres://127.0.0.1:1/never-connected" }));

export const auth = betterAuth({
  secret: "the-cli-only-reads-the-options-00000000",
  database: drizzleAdapter(db, { provider: "pg" }),
  emailAndPassword: { enabled: true },
  user: {
    modelName: CUSTOM ? "users" : "user",
    additionalFields: { plan: { type: "string", required: false, input: true } },
  },
  account: { modelName: CUSTOM ? "accounts" : "account" },
  plugins: [jwt()],
  telemetry: { enabled: false },
});
