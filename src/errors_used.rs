//! Lemmy's `test_errors_used`, for this tree: every error a client can be answered with must be
//! produced somewhere, so a variant that a refactor left behind fails the tests instead of
//! lingering in the enum, its code table and the documentation.
//!
//! It reads the source: for each enum below, each variant must be *constructed* somewhere in
//! `src/` (a mention as a match pattern does not count; `#[from]` counts, since `?` builds it).

use std::path::{Path, PathBuf};

/// (file under `src/`, enum). `Code` is written by the `codes!` macro in `auth/error.rs`.
const ENUMS: &[(&str, &str)] = &[
    ("auth/error.rs", "Code"),
    ("auth/error.rs", "AuthError"),
    ("auth/jwt/mod.rs", "JwtError"),
    ("auth/social/flow.rs", "CallbackError"),
    ("platform/error.rs", "PlatformError"),
    ("connectors/error.rs", "ConnectorsError"),
    ("trust/error.rs", "TrustError"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The variants of `name` in `text`, each with whether `#[from]` builds it.
fn variants(text: &str, name: &str) -> Vec<(String, bool)> {
    if name == "Code" {
        let start = text.find("codes! {").expect("codes! block") + "codes! {".len();
        let body = &text[start..start + text[start..].find("\n}").unwrap()];
        return body
            .lines()
            .filter_map(|l| l.trim().split_once(" => "))
            .map(|(v, _)| (v.to_owned(), false))
            .collect();
    }
    let head = format!("pub enum {name} {{");
    let start = text.find(&head).unwrap_or_else(|| panic!("{head}")) + head.len();
    let body = &text[start..start + text[start..].find("\n}").unwrap()];
    let mut depth = 0i32;
    let mut out = Vec::new();
    for line in body.lines() {
        let t = line.trim();
        if depth == 0 && t.starts_with(|c: char| c.is_ascii_uppercase()) {
            let ident: String = t.chars().take_while(|&c| is_ident(c)).collect();
            out.push((ident, t.contains("#[from]")));
        }
        depth += t.matches(['(', '{']).count() as i32 - t.matches([')', '}']).count() as i32;
    }
    out
}

/// Whether the mention ending at `rest` (the text just after the variant's name) is a pattern:
/// a match arm (`=>`, `|`), or the left side of a `let`.
fn is_pattern(before: &str, rest: &str) -> bool {
    let mut rest = rest.trim_start();
    if let Some(open) = rest.chars().next().filter(|c| *c == '(' || *c == '{') {
        let close = if open == '(' { ')' } else { '}' };
        let mut depth = 0;
        for (i, c) in rest.char_indices() {
            if c == open {
                depth += 1;
            } else if c == close {
                depth -= 1;
                if depth == 0 {
                    rest = rest[i + 1..].trim_start();
                    break;
                }
            }
        }
    }
    let line_start = before.rfind('\n').map_or(before, |i| &before[i + 1..]);
    // `let P = …` / `if let P = …`: a pattern when no `=` stands between `let` and the mention.
    let let_pattern = line_start
        .rfind("let ")
        .is_some_and(|i| !line_start[i..].contains('='));
    rest.starts_with("=>")
        || (rest.starts_with('|') && !rest.starts_with("||"))
        || let_pattern
        || line_start.contains("matches!(")
}

/// Whether `text` constructs `prefix::variant` (e.g. `ConnectorsError::StateUsed`) anywhere.
fn constructs(text: &str, prefix: &str, variant: &str) -> bool {
    let needle = format!("{prefix}::{variant}");
    text.match_indices(&needle).any(|(at, _)| {
        let before = &text[..at];
        let rest = &text[at + needle.len()..];
        let whole = !before.ends_with(is_ident) && !rest.starts_with(is_ident);
        whole && !is_pattern(before, rest)
    })
}

#[test]
fn every_error_variant_is_constructed_somewhere() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let sources: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            let rel = f
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, std::fs::read_to_string(f).unwrap())
        })
        .filter(|(rel, _)| rel != "errors_used.rs")
        .collect();
    let mut unused = Vec::new();
    for (file, name) in ENUMS {
        let (_, text) = sources.iter().find(|(rel, _)| rel == file).unwrap();
        let found = variants(text, name);
        assert!(found.len() > 1, "{file}: no variants of {name} found");
        for (variant, from) in found {
            let used = from
                || sources.iter().any(|(rel, src)| {
                    constructs(src, name, &variant)
                        || (rel == file && constructs(src, "Self", &variant))
                });
            if !used {
                unused.push(format!("{name}::{variant} ({file})"));
            }
        }
    }
    assert!(
        unused.is_empty(),
        "error variants never constructed (remove them, or use them): {unused:?}"
    );
}

#[test]
fn a_pattern_is_not_a_use() {
    let text = "match e { E::A => 1, E::B(_) | E::C { .. } => 2 }\nlet E::D(x) = e;\nE::F(1)\n\
                let g = x.ok_or(E::G)?;";
    assert!(!constructs(text, "E", "A"));
    assert!(!constructs(text, "E", "B"));
    assert!(!constructs(text, "E", "C"));
    assert!(!constructs(text, "E", "D"));
    assert!(constructs(text, "E", "F"));
    assert!(!constructs(text, "E", "Fo"));
    assert!(constructs(text, "E", "G"));
}
