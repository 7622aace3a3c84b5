//! The Docker image: its runtime layout reads the production config and logs JSON, and its
//! builder stage is the pinned toolchain.

use super::*;

/// The runtime stage of the Dockerfile: its WORKDIR and ENV.
fn image_layout() -> (String, Vec<(String, String)>) {
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let runtime = dockerfile.rsplit("\nFROM ").next().unwrap();
    let joined = runtime.replace("\\\n", " ");
    let mut workdir = String::new();
    let mut env = Vec::new();
    for line in joined.lines().map(str::trim) {
        if let Some(dir) = line.strip_prefix("WORKDIR ") {
            workdir = dir.trim().to_owned();
        } else if let Some(pairs) = line.strip_prefix("ENV ") {
            for pair in pairs.split_whitespace() {
                let (k, v) = pair.split_once('=').unwrap();
                env.push((k.to_owned(), v.trim_matches('"').to_owned()));
            }
        }
    }
    assert!(
        runtime.contains("COPY --from=build /src/config ./config"),
        "the image no longer copies config/ into its WORKDIR"
    );
    (workdir, env)
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn the_image_layout_reads_the_production_config_and_logs_json() {
    let (workdir, image_env) = image_layout();
    assert_eq!(workdir, "/app");
    let root = TempDir::new("image");
    let app = root.0.join("app");
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
        &app.join("config"),
    );
    // The image's environment, with its absolute paths moved under the stand-in root.
    let mut env: Vec<(String, String)> = image_env
        .into_iter()
        .map(|(k, v)| {
            let v = match v.strip_prefix("/app") {
                Some(rest) => format!("{}{rest}", app.display()),
                None => v,
            };
            (k, v)
        })
        .collect();
    assert!(env.iter().any(|(k, v)| k == "APP_ENV" && v == "production"));
    for (k, v) in [
        ("BETTER_AUTH_URL", "https://auth.example.com"),
        (
            "BETTER_AUTH_SECRET",
            "a-real-production-secret-of-40-characters",
        ),
        ("JWT_SECRET", "another-real-production-secret-40-chars!"),
        ("RESEND_API_KEY", "re_live_0123456789"),
        ("ENCRYPTION_KEY", "0123456789abcdef0123456789ABCDEF"),
        ("CONNECTORS_URL", "https://connectors.example.com"),
        ("AUTH_JWKS_URL", "https://auth.example.com/api/auth/jwks"),
    ] {
        env.push((k.to_owned(), v.to_owned()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = run_in(&app, &env, &["check-config", "--role", "all"]);
    assert!(out.status.success(), "{}", text(&out));
    // A command's log lines go to stderr; its stdout is its result alone.
    let stdout = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "configuration is valid for role(s) auth, connectors (APP_ENV=production)"
    );
    let logs: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let read = logs
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("config folder"))
        })
        .unwrap_or_else(|| panic!("no JSON log line names the config folder:\n{stdout}"));
    assert_eq!(read["level"], "INFO");
    let files = read["files"].as_str().unwrap();
    assert!(files.contains("production.toml"), "{files}");
    assert!(
        !stdout.contains("\u{1b}["),
        "ANSI colour in production logs:\n{stdout}"
    );
}

#[test]
fn the_builder_image_is_the_pinned_toolchain() {
    let toolchain =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/rust-toolchain.toml"))
            .unwrap();
    let channel = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"');
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(&format!("FROM rust:{channel}-")),
        "the Dockerfile's builder is not rust:{channel}"
    );
    assert!(dockerfile.contains("HEALTHCHECK"));
    assert!(dockerfile.contains("\"healthcheck\""));
}
