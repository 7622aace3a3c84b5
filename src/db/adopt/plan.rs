//! From what the database holds to switchboard's layout (the first migration,
//! `2026-11-25-000001_auth_schema`): the steps, each with the SQL that undoes it.

use super::inspect::{Column, Snapshot};
use crate::db::migrate::quote_ident;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Bool,
    Timestamp,
}

/// A Better Auth field: its names in both layouts, its type, and what switchboard's table has.
struct Field {
    camel: &'static str,
    snake: &'static str,
    kind: Kind,
    /// Every Better Auth 1.3–1.7 table has it: refused when missing. Otherwise added.
    required: bool,
    not_null: bool,
    default: Option<&'static str>,
}

const fn f(camel: &'static str, snake: &'static str, kind: Kind, required: bool) -> Field {
    Field {
        camel,
        snake,
        kind,
        required,
        not_null: required,
        default: None,
    }
}

const NOW: Option<&str> = Some("CURRENT_TIMESTAMP");

struct Model {
    table: &'static str,
    fields: &'static [Field],
    /// Better Auth creates the table only with a plugin (`jwks`: the JWT plugin): created when
    /// missing.
    optional: bool,
    /// (field, constraint name) of a single-column UNIQUE constraint.
    unique: &'static [(&'static str, &'static str)],
    /// (field, constraint name) of a foreign key to "user"(id) ON DELETE CASCADE.
    user_fk: Option<(&'static str, &'static str)>,
    /// (field, index name) of a plain single-column index.
    index: Option<(&'static str, &'static str)>,
    /// The DDL of the first migration, for a table that is missing.
    create: &'static str,
}

use Kind::{Bool, Text, Timestamp};

const USER: &[Field] = &[
    f("id", "id", Text, true),
    f("name", "name", Text, true),
    f("email", "email", Text, true),
    Field {
        default: Some("false"),
        ..f("emailVerified", "email_verified", Bool, true)
    },
    f("image", "image", Text, false),
    Field {
        default: NOW,
        ..f("createdAt", "created_at", Timestamp, true)
    },
    Field {
        default: NOW,
        ..f("updatedAt", "updated_at", Timestamp, true)
    },
];

const SESSION: &[Field] = &[
    f("id", "id", Text, true),
    f("expiresAt", "expires_at", Timestamp, true),
    f("token", "token", Text, true),
    Field {
        default: NOW,
        ..f("createdAt", "created_at", Timestamp, true)
    },
    f("updatedAt", "updated_at", Timestamp, true),
    f("ipAddress", "ip_address", Text, false),
    f("userAgent", "user_agent", Text, false),
    f("userId", "user_id", Text, true),
];

const ACCOUNT: &[Field] = &[
    f("id", "id", Text, true),
    f("accountId", "account_id", Text, true),
    f("providerId", "provider_id", Text, true),
    f("userId", "user_id", Text, true),
    f("accessToken", "access_token", Text, false),
    f("refreshToken", "refresh_token", Text, false),
    f("idToken", "id_token", Text, false),
    f(
        "accessTokenExpiresAt",
        "access_token_expires_at",
        Timestamp,
        false,
    ),
    f(
        "refreshTokenExpiresAt",
        "refresh_token_expires_at",
        Timestamp,
        false,
    ),
    f("scope", "scope", Text, false),
    f("password", "password", Text, false),
    Field {
        default: NOW,
        ..f("createdAt", "created_at", Timestamp, true)
    },
    f("updatedAt", "updated_at", Timestamp, true),
];

const VERIFICATION: &[Field] = &[
    f("id", "id", Text, true),
    f("identifier", "identifier", Text, true),
    f("value", "value", Text, true),
    f("expiresAt", "expires_at", Timestamp, true),
    // Optional in some 1.x schemas: added (filled with the adoption time) when missing.
    Field {
        not_null: true,
        default: NOW,
        ..f("createdAt", "created_at", Timestamp, false)
    },
    Field {
        not_null: true,
        default: NOW,
        ..f("updatedAt", "updated_at", Timestamp, false)
    },
];

const JWKS: &[Field] = &[
    f("id", "id", Text, true),
    f("publicKey", "public_key", Text, true),
    f("privateKey", "private_key", Text, true),
    f("createdAt", "created_at", Timestamp, true),
    // 1.4 added expiresAt, 1.7 alg and crv.
    f("expiresAt", "expires_at", Timestamp, false),
    f("alg", "alg", Text, false),
    f("crv", "crv", Text, false),
];

const MODELS: &[Model] = &[
    Model {
        table: "user",
        fields: USER,
        optional: false,
        unique: &[("email", "user_email_key")],
        user_fk: None,
        index: None,
        create: "",
    },
    Model {
        table: "session",
        fields: SESSION,
        optional: false,
        unique: &[("token", "session_token_key")],
        user_fk: Some(("userId", "session_userId_fkey")),
        index: Some(("userId", "session_userId_idx")),
        create: "",
    },
    Model {
        table: "account",
        fields: ACCOUNT,
        optional: false,
        unique: &[],
        user_fk: Some(("userId", "account_userId_fkey")),
        index: Some(("userId", "account_userId_idx")),
        create: "",
    },
    Model {
        table: "verification",
        fields: VERIFICATION,
        optional: false,
        unique: &[],
        user_fk: None,
        index: Some(("identifier", "verification_identifier_idx")),
        create: "",
    },
    Model {
        table: "jwks",
        fields: JWKS,
        optional: true,
        unique: &[],
        user_fk: None,
        index: None,
        create: "CREATE TABLE jwks (id text PRIMARY KEY, public_key text NOT NULL, \
                 private_key text NOT NULL, created_at timestamptz NOT NULL, expires_at timestamptz, \
                 alg text, crv text)",
    },
];

/// The Better Auth model names `--table-map` accepts (`rateLimit` is left alone either way).
pub const MODEL_NAMES: &[&str] = &["user", "session", "account", "verification", "jwks"];

/// Tables only switchboard's later migrations create: their presence means switchboard ran here.
pub const SWITCHBOARD_TABLES: &[&str] = &["connections", "oauth_flows", "jobs", "mcp_servers"];

/// One change, with the SQL that undoes it (None: nothing to undo, e.g. filling NULLs).
#[derive(Debug, Clone)]
pub struct Step {
    pub what: String,
    pub sql: String,
    pub undo: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Per Better Auth table: where it was found and in which layout.
    pub found: Vec<String>,
    pub steps: Vec<Step>,
    /// What is kept as it is (unknown columns, other constraints and indexes, other tables).
    pub untouched: Vec<String>,
    /// Whether any `timestamp without time zone` column is converted (the zone matters then).
    pub converts_zone: bool,
    pub source_zone: String,
    /// The actual table names (after `--table-map`), by model name.
    pub tables: BTreeMap<&'static str, String>,
}

/// Why the database cannot be adopted as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

fn q(name: &str) -> String {
    quote_ident(name)
}

/// An SQL string literal.
pub fn lit(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn target_type(kind: Kind) -> &'static str {
    match kind {
        Text => "text",
        Bool => "boolean",
        Timestamp => "timestamptz",
    }
}

fn column_def(field: &Field) -> String {
    let mut def = format!("{} {}", q(field.snake), target_type(field.kind));
    if field.not_null {
        def.push_str(" NOT NULL");
    }
    if let Some(default) = field.default {
        def.push_str(&format!(" DEFAULT {default}"));
    }
    def
}

/// Candidate column names for a field: snake_case, quoted camelCase, and camelCase folded to
/// lower case (created unquoted).
fn candidates(field: &Field) -> Vec<String> {
    let mut names = vec![field.snake.to_owned()];
    for name in [field.camel.to_owned(), field.camel.to_lowercase()] {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Parses `user=users,session=sessions`.
pub fn parse_table_map(specs: &[String]) -> Result<BTreeMap<&'static str, String>, Refusal> {
    let mut map = BTreeMap::new();
    for spec in specs.iter().flat_map(|s| s.split(',')) {
        let spec = spec.trim();
        if spec.is_empty() {
            continue;
        }
        let Some((model, table)) = spec.split_once('=') else {
            return Err(Refusal(format!(
                "--table-map entry `{spec}` is not MODEL=TABLE (e.g. user=users)"
            )));
        };
        let Some(model) = MODEL_NAMES.iter().find(|m| **m == model.trim()) else {
            return Err(Refusal(format!(
                "--table-map names the model `{}`; the models are {}",
                model.trim(),
                MODEL_NAMES.join(", ")
            )));
        };
        map.insert(*model, table.trim().to_owned());
    }
    Ok(map)
}

/// A type we can convert to the target's, or why not.
enum Conversion {
    None,
    To(String),
}

fn conversion(model: &str, field: &Field, col: &Column, zone: &str) -> Result<Conversion, Refusal> {
    let ok = match (field.kind, col.data_type.as_str()) {
        (Text, "text") => return Ok(Conversion::None),
        (Text, "character varying" | "character") => true,
        (Bool, "boolean") => return Ok(Conversion::None),
        (Timestamp, "timestamp with time zone") => return Ok(Conversion::None),
        (Timestamp, "timestamp without time zone") => {
            return Ok(Conversion::To(format!(
                "timestamptz USING {} AT TIME ZONE {}",
                q(field.snake),
                lit(zone)
            )));
        }
        _ => false,
    };
    if ok {
        return Ok(Conversion::To("text".to_owned()));
    }
    Err(Refusal(format!(
        "{model}.{} is {}; switchboard stores it as {} and cannot convert from that type \
         (ids generated as uuid or serial are not supported: Better Auth's default text ids are)",
        col.column_name,
        col.full_type,
        target_type(field.kind)
    )))
}

/// Normalises a column default for comparison.
fn same_default(found: Option<&str>, wanted: Option<&str>) -> bool {
    // Exact (but for case): `now()` becomes `CURRENT_TIMESTAMP`, as the migration writes it,
    // so an adopted table and a migrated one read the same in `information_schema`.
    let norm = |d: &str| d.trim().to_lowercase();
    match (found, wanted) {
        (None, None) => true,
        (Some(a), Some(b)) => norm(a) == norm(b),
        _ => false,
    }
}

pub struct Inputs<'a> {
    pub snapshot: &'a Snapshot,
    pub table_map: &'a BTreeMap<&'static str, String>,
    pub source_zone: &'a str,
    /// The version of the first migration, recorded as applied.
    pub version: &'a str,
}

/// Builds the plan, or says why the database cannot be adopted.
pub fn build(inputs: &Inputs<'_>) -> Result<Plan, Refusal> {
    let snap = inputs.snapshot;
    let zone = inputs.source_zone;
    let mut plan = Plan {
        source_zone: zone.to_owned(),
        ..Plan::default()
    };

    if let Some(found) = SWITCHBOARD_TABLES.iter().find(|t| snap.has_table(t)) {
        return Err(Refusal(format!(
            "switchboard's schema is already here (table `{found}` exists): if switchboard \
             migrated this database, run `switchboard migrate` instead of adopting it; if another \
             service keeps a table of that name here, move it out of the way first (ALTER TABLE \
             {found} SET SCHEMA legacy)"
        )));
    }

    for model in MODELS {
        let actual = inputs
            .table_map
            .get(model.table)
            .cloned()
            .unwrap_or_else(|| model.table.to_owned());
        if !snap.has_table(&actual) {
            if model.optional {
                plan.found.push(format!(
                    "{}: missing (the JWT plugin was off); created empty",
                    model.table
                ));
                plan.steps.push(Step {
                    what: format!("create table {}", model.table),
                    sql: model.create.to_owned(),
                    undo: Some(format!("DROP TABLE {}", q(model.table))),
                });
                plan.tables.insert(model.table, model.table.to_owned());
                continue;
            }
            return Err(not_recognised(snap, model.table, &actual));
        }
        if actual != model.table && snap.has_table(model.table) {
            return Err(Refusal(format!(
                "--table-map maps {} to `{actual}`, but a table `{}` exists too; rename or drop \
                 one of them first",
                model.table, model.table
            )));
        }
        plan.tables.insert(model.table, actual.clone());
        adopt_table(model, &actual, snap, zone, &mut plan)?;
    }

    for table in &snap.tables {
        if !plan.tables.values().any(|t| t == table) {
            plan.untouched.push(format!("table {table}"));
        }
    }

    let record_sql = format!(
        "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY \
         NOT NULL, run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP); \
         INSERT INTO __diesel_schema_migrations (version) VALUES ({})",
        lit(inputs.version)
    );
    let record_undo = if snap.has_table("__diesel_schema_migrations") {
        format!(
            "DELETE FROM __diesel_schema_migrations WHERE version = {}",
            lit(inputs.version)
        )
    } else {
        "DROP TABLE __diesel_schema_migrations".to_owned()
    };
    plan.steps.push(Step {
        what: format!(
            "record migration {} as applied (`switchboard migrate` continues from there)",
            inputs.version
        ),
        sql: record_sql,
        undo: Some(record_undo),
    });
    Ok(plan)
}

fn not_recognised(snap: &Snapshot, model: &str, actual: &str) -> Refusal {
    // Tables that look like Better Auth's user table under another name.
    let lookalikes: Vec<&str> = snap
        .tables
        .iter()
        .filter(|t| {
            let cols: Vec<&str> = snap.columns_of(t).map(|c| c.column_name.as_str()).collect();
            let has = |a: &str, b: &str| cols.contains(&a) || cols.contains(&b);
            match model {
                "user" => has("emailVerified", "email_verified") && cols.contains(&"email"),
                "session" => cols.contains(&"token") && has("expiresAt", "expires_at"),
                "account" => has("providerId", "provider_id"),
                "verification" => cols.contains(&"identifier"),
                _ => false,
            }
        })
        .map(String::as_str)
        .collect();
    let hint = if lookalikes.is_empty() {
        String::new()
    } else {
        format!(
            "; `{}` looks like it: pass --table-map {model}={}",
            lookalikes.join("`, `"),
            lookalikes[0]
        )
    };
    Refusal(format!(
        "not a Better Auth database that switchboard recognises: no table `{actual}` for the \
         Better Auth model `{model}` (tables found: {}){hint}",
        if snap.tables.is_empty() {
            "none".to_owned()
        } else {
            snap.tables.join(", ")
        }
    ))
}

fn adopt_table(
    model: &Model,
    actual: &str,
    snap: &Snapshot,
    zone: &str,
    plan: &mut Plan,
) -> Result<(), Refusal> {
    let name = model.table;
    let t = q(name);
    let columns: Vec<&Column> = snap.columns_of(actual).collect();
    let mut steps = Vec::new();
    if actual != name {
        steps.push(Step {
            what: format!("rename table {actual} to {name}"),
            sql: format!("ALTER TABLE {} RENAME TO {t}", q(actual)),
            undo: Some(format!("ALTER TABLE {t} RENAME TO {}", q(actual))),
        });
    }

    // Which column holds each field (by its name before adoption).
    let mut source: BTreeMap<&'static str, String> = BTreeMap::new();
    let mut known: Vec<String> = Vec::new();
    let (mut snake, mut camel, mut naive, mut with_zone) = (0, 0, 0, 0);
    let mut types = Vec::new();
    let mut types_undo = Vec::new();
    let mut later = Vec::new();
    for field in model.fields {
        let names = candidates(field);
        let hits: Vec<&&Column> = columns
            .iter()
            .filter(|c| names.contains(&c.column_name))
            .collect();
        if hits.len() > 1 {
            return Err(Refusal(format!(
                "table `{actual}` has both {} for Better Auth's `{}`; keep one (copy the data \
                 over) and adopt again",
                hits.iter()
                    .map(|c| format!("`{}`", c.column_name))
                    .collect::<Vec<_>>()
                    .join(" and "),
                field.camel
            )));
        }
        let Some(col) = hits.first() else {
            if field.required {
                return Err(Refusal(format!(
                    "table `{actual}` has no column for Better Auth's required field `{}` \
                     (looked for {}); columns found: {}. Is this a Better Auth 1.3 or later \
                     database? Add the column as Better Auth's migrator would, then adopt again",
                    field.camel,
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    columns
                        .iter()
                        .map(|c| c.column_name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            later.push(Step {
                what: format!(
                    "add column {name}.{} {}",
                    field.snake,
                    target_type(field.kind)
                ),
                sql: format!("ALTER TABLE {t} ADD COLUMN {}", column_def(field)),
                undo: Some(format!("ALTER TABLE {t} DROP COLUMN {}", q(field.snake))),
            });
            continue;
        };
        known.push(col.column_name.clone());
        source.insert(field.camel, col.column_name.clone());
        if col.column_name == field.snake {
            if field.snake != field.camel {
                snake += 1;
            }
        } else {
            camel += 1;
            steps.push(Step {
                what: format!(
                    "rename column {name}.{} to {}",
                    col.column_name, field.snake
                ),
                sql: format!(
                    "ALTER TABLE {t} RENAME COLUMN {} TO {}",
                    q(&col.column_name),
                    q(field.snake)
                ),
                undo: Some(format!(
                    "ALTER TABLE {t} RENAME COLUMN {} TO {}",
                    q(field.snake),
                    q(&col.column_name)
                )),
            });
        }
        let c = q(field.snake);
        match conversion(name, field, col, zone)? {
            Conversion::None => {
                if col.data_type == "timestamp with time zone" {
                    with_zone += 1;
                }
            }
            Conversion::To(to) => {
                if field.kind == Timestamp {
                    naive += 1;
                    plan.converts_zone = true;
                    types_undo.push(format!(
                        "ALTER COLUMN {c} TYPE {} USING {c} AT TIME ZONE {}",
                        col.full_type,
                        lit(zone)
                    ));
                } else {
                    types_undo.push(format!("ALTER COLUMN {c} TYPE {}", col.full_type));
                }
                types.push((
                    format!(
                        "{name}.{}: {} to {}",
                        field.snake,
                        col.full_type,
                        target_type(field.kind)
                    ),
                    format!("ALTER COLUMN {c} TYPE {to}"),
                ));
            }
        }
        if !same_default(col.column_default.as_deref(), field.default) {
            let set = match field.default {
                Some(d) => format!("SET DEFAULT {d}"),
                None => "DROP DEFAULT".to_owned(),
            };
            let back = match &col.column_default {
                Some(d) => format!("SET DEFAULT {d}"),
                None => "DROP DEFAULT".to_owned(),
            };
            later.push(Step {
                what: format!(
                    "default of {name}.{}: {} to {}",
                    field.snake,
                    col.column_default.as_deref().unwrap_or("none"),
                    field.default.unwrap_or("none")
                ),
                sql: format!("ALTER TABLE {t} ALTER COLUMN {c} {set}"),
                undo: Some(format!("ALTER TABLE {t} ALTER COLUMN {c} {back}")),
            });
        }
        if field.not_null && col.nullable {
            if let Some(d) = field.default {
                later.push(Step {
                    what: format!("fill NULLs in {name}.{} with {d}", field.snake),
                    sql: format!("UPDATE {t} SET {c} = {d} WHERE {c} IS NULL"),
                    undo: None,
                });
            }
            later.push(Step {
                what: format!("{name}.{} NOT NULL", field.snake),
                sql: format!("ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL"),
                undo: Some(format!("ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL")),
            });
        } else if !field.not_null && !col.nullable {
            later.push(Step {
                what: format!("{name}.{} may be NULL", field.snake),
                sql: format!("ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL"),
                undo: Some(format!("ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL")),
            });
        }
    }
    if !types.is_empty() {
        steps.push(Step {
            what: format!(
                "convert {} (one rewrite of {name})",
                types
                    .iter()
                    .map(|(w, _)| w.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            sql: format!(
                "ALTER TABLE {t} {}",
                types
                    .iter()
                    .map(|(_, s)| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            undo: Some(format!("ALTER TABLE {t} {}", types_undo.join(", "))),
        });
    }
    steps.extend(later);

    for col in &columns {
        if !known.contains(&col.column_name) {
            plan.untouched.push(format!(
                "column {name}.{} ({}): not Better Auth's, kept with its data",
                col.column_name, col.full_type
            ));
        }
    }

    let src = |camel: &str| source.get(camel).cloned().unwrap_or_default();
    let snake_of = |camel: &str| {
        model
            .fields
            .iter()
            .find(|f| f.camel == camel)
            .map(|f| f.snake)
            .unwrap_or_default()
    };
    let mut handled: Vec<String> = Vec::new();

    // Primary key on id, named <table>_pkey.
    let pkey = format!("{name}_pkey");
    match snap.constraints_of(actual).find(|c| c.kind == "p") {
        Some(pk) if pk.columns == src("id") => {
            handled.push(pk.name.clone());
            if pk.name != pkey {
                steps.push(rename_constraint(name, &pk.name, &pkey));
            }
        }
        Some(pk) => {
            return Err(Refusal(format!(
                "table `{actual}` has its primary key on ({}), not on id; Better Auth keys every \
                 table by id",
                pk.columns
            )));
        }
        None => steps.push(Step {
            what: format!("add primary key {pkey} on {name}(id)"),
            sql: format!(
                "ALTER TABLE {t} ADD CONSTRAINT {} PRIMARY KEY (id)",
                q(&pkey)
            ),
            undo: Some(format!("ALTER TABLE {t} DROP CONSTRAINT {}", q(&pkey))),
        }),
    }

    for (field, cname) in model.unique {
        let col = src(field);
        let constraint = snap
            .constraints_of(actual)
            .find(|c| c.kind == "u" && c.columns == col);
        let index = snap
            .indexes_of(actual)
            .find(|i| i.unique && !i.special && !i.backs_constraint && i.columns == col);
        if let Some(con) = constraint {
            handled.push(con.name.clone());
            if con.name != *cname {
                steps.push(rename_constraint(name, &con.name, cname));
            }
        } else if let Some(ix) = index {
            // Prisma writes a unique index, not a constraint: turn it into one.
            handled.push(ix.name.clone());
            steps.push(Step {
                what: format!("unique index {} becomes constraint {cname}", ix.name),
                sql: format!(
                    "ALTER TABLE {t} ADD CONSTRAINT {} UNIQUE USING INDEX {}",
                    q(cname),
                    q(&ix.name)
                ),
                undo: Some(format!(
                    "ALTER TABLE {t} DROP CONSTRAINT {}; CREATE UNIQUE INDEX {} ON {t} ({})",
                    q(cname),
                    q(&ix.name),
                    q(snake_of(field))
                )),
            });
        } else {
            steps.push(Step {
                what: format!(
                    "add unique constraint {cname} on {name}({})",
                    snake_of(field)
                ),
                sql: format!(
                    "ALTER TABLE {t} ADD CONSTRAINT {} UNIQUE ({})",
                    q(cname),
                    q(snake_of(field))
                ),
                undo: Some(format!("ALTER TABLE {t} DROP CONSTRAINT {}", q(cname))),
            });
        }
    }

    if let Some((field, cname)) = model.user_fk {
        let col = src(field);
        let user_table = plan.tables.get("user").cloned().unwrap_or_default();
        let fk = snap.constraints_of(actual).find(|c| {
            c.kind == "f" && c.columns == col && c.references.as_deref() == Some(&user_table)
        });
        let add = format!(
            "ALTER TABLE {t} ADD CONSTRAINT {} FOREIGN KEY (user_id) REFERENCES \"user\" (id) \
             ON DELETE CASCADE",
            q(cname)
        );
        match fk {
            Some(fk) if fk.on_delete == "c" => {
                handled.push(fk.name.clone());
                if fk.name != *cname {
                    steps.push(rename_constraint(name, &fk.name, cname));
                }
            }
            Some(fk) => {
                handled.push(fk.name.clone());
                steps.push(Step {
                    what: format!(
                        "foreign key {} ({}) becomes {cname} ON DELETE CASCADE",
                        fk.name, fk.definition
                    ),
                    sql: format!("ALTER TABLE {t} DROP CONSTRAINT {}; {add}", q(&fk.name)),
                    undo: Some(format!(
                        "ALTER TABLE {t} DROP CONSTRAINT {}; ALTER TABLE {t} ADD CONSTRAINT {} \
                         FOREIGN KEY (user_id) REFERENCES \"user\" (id){}",
                        q(cname),
                        q(&fk.name),
                        fk_actions(&fk.definition)
                    )),
                });
            }
            None => steps.push(Step {
                what: format!(
                    "add foreign key {cname} {name}(user_id) -> user(id) ON DELETE CASCADE"
                ),
                sql: add,
                undo: Some(format!("ALTER TABLE {t} DROP CONSTRAINT {}", q(cname))),
            }),
        }
    }

    if let Some((field, iname)) = model.index {
        let col = src(field);
        let found = snap
            .indexes_of(actual)
            .find(|i| !i.unique && !i.special && !i.backs_constraint && i.columns == col);
        match found {
            Some(ix) => {
                handled.push(ix.name.clone());
                if ix.name != *iname {
                    steps.push(Step {
                        what: format!("rename index {} to {iname}", ix.name),
                        sql: format!("ALTER INDEX {} RENAME TO {}", q(&ix.name), q(iname)),
                        undo: Some(format!(
                            "ALTER INDEX {} RENAME TO {}",
                            q(iname),
                            q(&ix.name)
                        )),
                    });
                }
            }
            None => steps.push(Step {
                what: format!("add index {iname} on {name}({})", snake_of(field)),
                sql: format!("CREATE INDEX {} ON {t} ({})", q(iname), q(snake_of(field))),
                undo: Some(format!("DROP INDEX {}", q(iname))),
            }),
        }
    }

    for con in snap.constraints_of(actual) {
        if !handled.contains(&con.name) && con.kind != "n" {
            plan.untouched.push(format!(
                "constraint {} on {name}: {}",
                con.name, con.definition
            ));
        }
    }
    for ix in snap.indexes_of(actual) {
        if !handled.contains(&ix.name) && !ix.backs_constraint {
            plan.untouched.push(format!("index {} on {name}", ix.name));
        }
    }

    let naming = match (snake, camel) {
        (0, 0) => "no multi-word columns",
        (_, 0) => "snake_case columns",
        (0, _) => "camelCase columns",
        _ => "mixed snake_case and camelCase columns",
    };
    let stamps = match (naive, with_zone) {
        (0, 0) => "no timestamps",
        (_, 0) => "timestamp without time zone",
        (0, _) => "timestamptz",
        _ => "mixed timestamp types",
    };
    let renamed = if actual == name {
        String::new()
    } else {
        format!(" (as `{actual}`)")
    };
    plan.found
        .push(format!("{name}{renamed}: {naming}, {stamps}"));
    plan.steps.extend(steps);
    Ok(())
}

/// What follows `REFERENCES table(column)` in a foreign key's definition (`ON UPDATE …`,
/// `ON DELETE …`, `MATCH …`, `DEFERRABLE …`), to restore it as it was.
fn fk_actions(definition: &str) -> &str {
    definition
        .find("REFERENCES")
        .and_then(|at| definition[at..].find(')').map(|close| at + close + 1))
        .map_or("", |end| &definition[end..])
}

fn rename_constraint(table: &str, from: &str, to: &str) -> Step {
    let t = q(table);
    Step {
        what: format!("rename constraint {from} on {table} to {to}"),
        sql: format!("ALTER TABLE {t} RENAME CONSTRAINT {} TO {}", q(from), q(to)),
        undo: Some(format!(
            "ALTER TABLE {t} RENAME CONSTRAINT {} TO {}",
            q(to),
            q(from)
        )),
    }
}

impl Plan {
    /// The plan as the operator reads it.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        out.push_str("Better Auth tables found:\n");
        for line in &self.found {
            out.push_str(&format!("  {line}\n"));
        }
        if self.converts_zone {
            out.push_str(&format!(
                "Timestamps without time zone are read as {} (--source-zone) and stored as timestamptz.\n",
                self.source_zone
            ));
        }
        out.push_str(&format!(
            "Plan ({} steps, applied in one transaction):\n",
            self.steps.len()
        ));
        for (n, step) in self.steps.iter().enumerate() {
            out.push_str(&format!("  {:>2}. {}\n", n + 1, step.what));
        }
        if !self.untouched.is_empty() {
            out.push_str("Left as it is:\n");
            for line in &self.untouched {
                out.push_str(&format!("  {line}\n"));
            }
        }
        out
    }

    /// The SQL, one statement group per step, as applied.
    pub fn sql(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            out.push_str(&format!("-- {}\n{};\n", step.what, step.sql));
        }
        out
    }

    /// SQL that restores the layout before adoption, newest step first, in one transaction.
    pub fn rollback(&self, version: &str) -> String {
        let mut out = String::from(
            "-- Restores the Better Auth layout `switchboard db adopt` found (psql -v ON_ERROR_STOP=1 -f FILE).\n\
             -- Data written since stays; NULLs the adoption filled stay filled.\n\
             BEGIN;\n",
        );
        out.push_str(&format!(
            "DO $$ BEGIN\n  IF EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = current_schema() \
             AND tablename = '__diesel_schema_migrations')\n     AND EXISTS (SELECT 1 FROM \
             __diesel_schema_migrations WHERE version > {v}) THEN\n    RAISE EXCEPTION \
             'switchboard migrations after {version} are applied: revert them first (see docs/migrating-from-typescript.md)';\n  \
             END IF;\nEND $$;\n",
            v = lit(version)
        ));
        for step in self.steps.iter().rev() {
            if let Some(undo) = &step.undo {
                out.push_str(&format!("-- undo: {}\n{undo};\n", step.what));
            }
        }
        out.push_str("COMMIT;\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_key_actions_are_kept_for_the_rollback() {
        assert_eq!(
            fk_actions(
                r#"FOREIGN KEY ("userId") REFERENCES "user"(id) ON UPDATE CASCADE ON DELETE RESTRICT"#
            ),
            " ON UPDATE CASCADE ON DELETE RESTRICT"
        );
        assert_eq!(fk_actions("FOREIGN KEY (user_id) REFERENCES users(id)"), "");
    }

    #[test]
    fn table_maps_are_model_equals_table() {
        let map = parse_table_map(&[
            "user=users, account=accounts".to_owned(),
            "session=s".to_owned(),
        ])
        .unwrap();
        assert_eq!(map.get("user").map(String::as_str), Some("users"));
        assert_eq!(map.get("account").map(String::as_str), Some("accounts"));
        assert_eq!(map.get("session").map(String::as_str), Some("s"));
        assert!(
            parse_table_map(&["users".to_owned()])
                .unwrap_err()
                .0
                .contains("MODEL=TABLE")
        );
        assert!(
            parse_table_map(&["people=users".to_owned()])
                .unwrap_err()
                .0
                .contains("`people`")
        );
    }

    #[test]
    fn defaults_compare_by_their_text() {
        assert!(same_default(
            Some("CURRENT_TIMESTAMP"),
            Some("current_timestamp")
        ));
        assert!(!same_default(Some("now()"), Some("CURRENT_TIMESTAMP")));
        assert!(!same_default(None, Some("false")));
        assert!(same_default(None, None));
    }

    #[test]
    fn literals_are_escaped() {
        assert_eq!(lit("O'Hara"), "'O''Hara'");
    }
}
