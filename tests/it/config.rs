//! Every configuration rule: layering, legacy environment names, and validation that reports
//! every problem at once.

use crate::common::test_config;
use switchboard::platform::config::{AppEnv, Config};
use switchboard::platform::role::Role;

const BOTH: &[Role] = &[Role::Auth, Role::Connectors];

fn problems(config: &Config, roles: &[Role]) -> Vec<String> {
    config
        .validate(roles)
        .err()
        .map(|e| e.problems())
        .unwrap_or_default()
}

fn has(problems: &[String], needle: &str) -> bool {
    problems.iter().any(|p| p.contains(needle))
}

/// A production environment that passes, to break one rule at a time.
fn production(extra: &[(&'static str, &'static str)]) -> Config {
    let mut env = vec![
        ("APP_ENV", "production"),
        ("BETTER_AUTH_URL", "https://auth.example.com"),
        (
            "BETTER_AUTH_SECRET",
            "a-real-production-secret-of-40-characters",
        ),
        ("JWT_SECRET", "another-real-production-secret-40-chars!"),
        ("ENCRYPTION_KEY", "0123456789abcdef0123456789ABCDEF"),
        ("CONNECTORS_URL", "https://connectors.example.com"),
        ("AUTH_JWKS_URL", "https://auth.example.com/api/auth/jwks"),
        ("CORS_ORIGINS", "https://app.example.com"),
        ("RESEND_API_KEY", "re_live_0123456789"),
    ];
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k, v));
    }
    test_config(&env)
}

#[test]
fn test_defaults_are_valid_for_both_roles() {
    let config = test_config(&[]);
    assert_eq!(config.app_env, AppEnv::Test);
    assert_eq!(config.server.auth_listen, "127.0.0.1:5001");
    assert_eq!(config.server.connectors_listen, "127.0.0.1:5002");
    assert_eq!(
        config.database.url.expose(),
        "postgres://postgres@127.0.0.1:5432/switchboard"
    );
    assert!(
        config.validate(BOTH).is_ok(),
        "{:?}",
        problems(&config, BOTH)
    );
}

#[test]
fn a_valid_production_config_passes() {
    let config = production(&[]);
    assert!(
        config.validate(BOTH).is_ok(),
        "{:?}",
        problems(&config, BOTH)
    );
}

#[test]
fn legacy_names_and_switchboard_keys_are_read() {
    let config = test_config(&[
        ("DATABASE_URL", "postgres://u@db.internal:5432/app"),
        (
            "CORS_ORIGINS",
            "http://localhost:5173, https://app.example.com",
        ),
        ("GITHUB_CLIENT_ID", "12345"),
        ("GITHUB_CLIENT_SECRET", "gh-secret"),
        ("AUTH_LISTEN", "0.0.0.0:7001"),
        ("SWITCHBOARD__DATABASE__POOL_MAX_SIZE", "7"),
        (
            "SWITCHBOARD__AUTH__TRUSTED_ORIGINS",
            "https://a.example,https://b.example",
        ),
    ]);
    assert_eq!(
        config.database.url.expose(),
        "postgres://u@db.internal:5432/app"
    );
    assert_eq!(
        config.server.cors_origins,
        vec!["http://localhost:5173", "https://app.example.com"]
    );
    assert_eq!(config.auth.github.client_id.as_deref(), Some("12345"));
    assert_eq!(config.server.auth_listen, "0.0.0.0:7001");
    assert_eq!(config.database.pool_max_size, 7);
    assert_eq!(config.auth.trusted_origins.len(), 2);
}

#[test]
fn empty_environment_values_count_as_unset() {
    let config = test_config(&[("GITHUB_CLIENT_ID", ""), ("DATABASE_URL", " ")]);
    assert_eq!(config.auth.github.client_id, None);
    assert!(config.database.url.expose().starts_with("postgres://"));
}

#[test]
fn unknown_keys_are_errors() {
    let err = Config::load(
        &[
            ("APP_ENV".to_owned(), "test".to_owned()),
            (
                "SWITCHBOARD__SERVER__NO_SUCH_KEY".to_owned(),
                "1".to_owned(),
            ),
        ]
        .into_iter()
        .collect(),
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no_such_key"), "{err}");
}

#[test]
fn an_unknown_app_env_is_refused() {
    let err = Config::load(
        &[("APP_ENV".to_owned(), "staging".to_owned())]
            .into_iter()
            .collect(),
        std::path::Path::new("config"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("APP_ENV"), "{err}");
}

#[test]
fn short_secrets_are_refused() {
    let config = test_config(&[
        ("BETTER_AUTH_SECRET", "short"),
        ("JWT_SECRET", "also-short"),
    ]);
    let p = problems(&config, &[Role::Auth]);
    assert!(
        has(
            &p,
            "BETTER_AUTH_SECRET must be at least 32 characters (it has 5)"
        ),
        "{p:?}"
    );
    assert!(
        has(&p, "JWT_SECRET must be at least 32 characters (it has 10)"),
        "{p:?}"
    );
}

#[test]
fn jwt_secret_must_differ_from_better_auth_secret() {
    let same = "the-same-secret-used-twice-0123456789";
    let config = test_config(&[("BETTER_AUTH_SECRET", same), ("JWT_SECRET", same)]);
    assert!(has(
        &problems(&config, &[Role::Auth]),
        "JWT_SECRET must differ from BETTER_AUTH_SECRET"
    ));
}

#[test]
fn encryption_key_must_be_exactly_32_bytes() {
    for (key, len) in [
        ("0123456789abcdef0123456789abcde", 31),
        ("0123456789abcdef0123456789abcdef0", 33),
    ] {
        let config = test_config(&[("ENCRYPTION_KEY", key)]);
        let p = problems(&config, &[Role::Connectors]);
        assert!(
            has(
                &p,
                &format!("ENCRYPTION_KEY must be exactly 32 bytes (it has {len})")
            ),
            "{p:?}"
        );
    }
    // Multibyte characters count as bytes: 16 × "é" is 32 bytes.
    let config = test_config(&[("ENCRYPTION_KEY", "éééééééééééééééé")]);
    assert!(problems(&config, &[Role::Connectors]).is_empty());
}

#[test]
fn each_role_checks_only_what_it_needs() {
    let config = test_config(&[("ENCRYPTION_KEY", "short"), ("BETTER_AUTH_SECRET", "short")]);
    let auth = problems(&config, &[Role::Auth]);
    assert!(
        has(&auth, "BETTER_AUTH_SECRET") && !has(&auth, "ENCRYPTION_KEY"),
        "{auth:?}"
    );
    let connectors = problems(&config, &[Role::Connectors]);
    assert!(
        has(&connectors, "ENCRYPTION_KEY") && !has(&connectors, "BETTER_AUTH_SECRET"),
        "{connectors:?}"
    );
}

#[test]
fn url_forms_are_checked() {
    let config = test_config(&[
        ("BETTER_AUTH_URL", "not a url"),
        ("AUTH_JWKS_URL", "ftp://auth.example.com/jwks"),
        ("CONNECTORS_URL", "https://c.example.com/?x=1"),
        ("DATABASE_URL", "mysql://root@localhost/db"),
    ]);
    let p = problems(&config, BOTH);
    assert!(has(&p, "BETTER_AUTH_URL is not a valid URL"), "{p:?}");
    assert!(has(&p, "AUTH_JWKS_URL must be an http(s) URL"), "{p:?}");
    assert!(has(&p, "CONNECTORS_URL must not carry a query"), "{p:?}");
    assert!(has(&p, "DATABASE_URL must be a postgres://"), "{p:?}");
}

#[test]
fn cors_origins_must_be_explicit_origins() {
    for bad in [
        "*",
        "https://*.example.com",
        "https://app.example.com/path",
        "app.example.com",
    ] {
        let config = test_config(&[("CORS_ORIGINS", bad)]);
        let p = problems(&config, BOTH);
        assert!(has(&p, "CORS_ORIGINS entry"), "{bad}: {p:?}");
    }
    let config = test_config(&[(
        "CORS_ORIGINS",
        "http://localhost:5173,https://app.example.com/",
    )]);
    assert!(problems(&config, BOTH).is_empty());
}

#[test]
fn listen_addresses_are_checked() {
    let config = test_config(&[
        ("AUTH_LISTEN", "localhost"),
        ("CONNECTORS_LISTEN", "127.0.0.1:5002"),
    ]);
    assert!(has(
        &problems(&config, BOTH),
        "AUTH_LISTEN must be an address with a port"
    ));
    let config = test_config(&[
        ("AUTH_LISTEN", "127.0.0.1:6000"),
        ("CONNECTORS_LISTEN", "127.0.0.1:6000"),
    ]);
    assert!(has(&problems(&config, BOTH), "must differ"));
    // One role alone does not care about the other's listener.
    assert!(problems(&config, &[Role::Auth]).is_empty());
}

#[test]
fn oauth_client_ids_and_secrets_come_in_pairs() {
    let config = test_config(&[
        ("GITHUB_CLIENT_ID", "id-only"),
        ("LINEAR_CLIENT_SECRET", "secret-only"),
    ]);
    let p = problems(&config, BOTH);
    assert!(
        has(
            &p,
            "GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET must be set together"
        ),
        "{p:?}"
    );
    assert!(
        has(
            &p,
            "LINEAR_CLIENT_ID and LINEAR_CLIENT_SECRET must be set together"
        ),
        "{p:?}"
    );
}

#[test]
fn production_requires_https_and_secure_cookies() {
    let config = production(&[
        ("BETTER_AUTH_URL", "http://auth.example.com"),
        ("CONNECTORS_URL", "http://connectors.example.com"),
        ("CORS_ORIGINS", "http://app.example.com"),
        ("SWITCHBOARD__AUTH__SECURE_COOKIES", "false"),
    ]);
    let p = problems(&config, BOTH);
    assert!(
        has(&p, "BETTER_AUTH_URL must be https in production"),
        "{p:?}"
    );
    assert!(
        has(&p, "CONNECTORS_URL must be https in production"),
        "{p:?}"
    );
    assert!(has(&p, "must be https in production"), "{p:?}");
    assert!(
        has(&p, "secure_cookies cannot be false in production"),
        "{p:?}"
    );
    assert_eq!(p.len(), 4, "every problem reported once: {p:?}");
}

#[test]
fn production_refuses_development_secrets() {
    let config = production(&[
        (
            "BETTER_AUTH_SECRET",
            "dev-only-better-auth-secret-not-for-production",
        ),
        ("ENCRYPTION_KEY", "dev-only-encryption-key-32bytes!"),
    ]);
    let p = problems(&config, BOTH);
    assert!(
        has(&p, "BETTER_AUTH_SECRET is a development-only value"),
        "{p:?}"
    );
    assert!(
        has(&p, "ENCRYPTION_KEY is a development-only value"),
        "{p:?}"
    );
}

#[test]
fn secure_cookies_follow_the_base_url_unless_set() {
    assert!(!test_config(&[]).secure_cookies());
    assert!(test_config(&[("BETTER_AUTH_URL", "https://auth.example.com")]).secure_cookies());
    assert!(
        !test_config(&[
            ("BETTER_AUTH_URL", "https://auth.example.com"),
            ("SWITCHBOARD__AUTH__SECURE_COOKIES", "false")
        ])
        .secure_cookies()
    );
}

#[test]
fn secrets_never_print_in_debug() {
    let config = production(&[]);
    let debug = format!("{config:?}");
    for secret in [
        "a-real-production-secret-of-40-characters",
        "another-real-production-secret-40-chars!",
        "0123456789abcdef0123456789ABCDEF",
    ] {
        assert!(!debug.contains(secret), "a secret leaked into Debug");
    }
    assert!(debug.contains("[redacted]"));
}

#[test]
fn mail_settings_are_read_and_checked() {
    use switchboard::auth::config::MailTransport;
    let config = test_config(&[]);
    let auth = &config.auth;
    assert_eq!(auth.mail.resend_base_url, "https://api.resend.com");
    assert_eq!(
        auth.mail.effective_transport(auth.resend_api_key.as_ref()),
        MailTransport::Log,
        "no key: mail is logged"
    );
    assert!(auth.email_verification.enabled && auth.password_reset.enabled);
    assert_eq!(auth.email_verification.expires_in_secs, 3600);
    assert_eq!(auth.password_reset.token_expires_in_secs, 3600);
    assert!(
        !auth.send_on_sign_up(),
        "follows require_email_verification"
    );
    let required = test_config(&[(
        "SWITCHBOARD__AUTH__EMAIL_AND_PASSWORD__REQUIRE_EMAIL_VERIFICATION",
        "true",
    )]);
    assert!(required.auth.send_on_sign_up());

    let keyed = production(&[]);
    assert_eq!(
        keyed
            .auth
            .mail
            .effective_transport(keyed.auth.resend_api_key.as_ref()),
        MailTransport::Resend
    );
    assert!(
        !format!("{:?}", keyed.auth).contains("re_live_0123456789"),
        "the API key never prints"
    );

    let mut no_key = production(&[]);
    no_key.auth.resend_api_key = None;
    let p = problems(&no_key, &[Role::Auth]);
    assert!(has(&p, "RESEND_API_KEY must be set in production"), "{p:?}");
    no_key.auth.email_verification.enabled = false;
    no_key.auth.password_reset.enabled = false;
    assert!(
        problems(&no_key, &[Role::Auth]).is_empty(),
        "no mail, no key needed"
    );
    assert!(
        problems(&no_key, &[Role::Connectors]).is_empty(),
        "only the auth role sends mail"
    );

    let bad = test_config(&[
        ("SWITCHBOARD__AUTH__MAIL__TRANSPORT", "resend"),
        ("SWITCHBOARD__AUTH__MAIL__FROM", "not an address"),
        ("SWITCHBOARD__AUTH__MAIL__RESEND_BASE_URL", "ftp://resend"),
    ]);
    let p = problems(&bad, &[Role::Auth]);
    assert!(
        has(&p, "transport is resend but RESEND_API_KEY is not set"),
        "{p:?}"
    );
    assert!(has(&p, "auth.mail.from must be an address"), "{p:?}");
    assert!(has(&p, "auth.mail.resend_base_url"), "{p:?}");
    assert_eq!(p.len(), 3, "{p:?}");
}

#[test]
fn unset_secrets_are_called_unset_with_a_recipe() {
    let config = production(&[
        ("BETTER_AUTH_SECRET", ""),
        ("JWT_SECRET", ""),
        ("ENCRYPTION_KEY", ""),
    ]);
    let found = problems(&config, BOTH);
    assert!(has(&found, "BETTER_AUTH_SECRET is not set"), "{found:?}");
    assert!(has(&found, "JWT_SECRET is not set"), "{found:?}");
    assert!(has(&found, "ENCRYPTION_KEY is not set"), "{found:?}");
    assert!(has(&found, "openssl rand"), "{found:?}");
    assert!(!has(&found, "(it has 0)"), "{found:?}");
}

#[test]
fn a_base64_encryption_key_is_refused_with_a_recipe() {
    // What `openssl rand -base64 32` prints: 44 characters.
    let config = production(&[(
        "ENCRYPTION_KEY",
        "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=",
    )]);
    let found = problems(&config, BOTH);
    let line = found
        .iter()
        .find(|p| p.contains("ENCRYPTION_KEY"))
        .unwrap_or_else(|| panic!("{found:?}"));
    assert!(line.contains("openssl rand -base64 32"), "{line}");
    assert!(line.contains("openssl rand -base64 24"), "{line}");
    assert!(
        !line.contains("q83vEjRWeJ"),
        "the key itself was printed: {line}"
    );
}

#[test]
fn the_resend_message_names_both_settings_that_turn_mail_off() {
    let config = production(&[("RESEND_API_KEY", "")]);
    let found = problems(&config, &[Role::Auth]);
    let line = found
        .iter()
        .find(|p| p.contains("RESEND_API_KEY"))
        .unwrap_or_else(|| panic!("{found:?}"));
    assert!(line.contains("auth.email_verification.enabled"), "{line}");
    assert!(line.contains("auth.password_reset.enabled"), "{line}");
}

#[test]
fn production_logs_json_even_without_a_config_folder() {
    let env: std::collections::HashMap<String, String> =
        [("APP_ENV".to_owned(), "production".to_owned())]
            .into_iter()
            .collect();
    let loaded = Config::load_from(&env, None).unwrap();
    assert_eq!(
        loaded.config.log.format,
        switchboard::platform::config::LogFormat::Json
    );
    assert!(loaded.files_read.is_empty());
    let dev = test_config(&[("APP_ENV", "development")]);
    assert_eq!(
        dev.log.format,
        switchboard::platform::config::LogFormat::Pretty
    );
}
