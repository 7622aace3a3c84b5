//! Tool names namespaced by server for `GET /api/tools`, in the form model APIs accept
//! (`^[a-zA-Z0-9_-]{1,64}$`), and mapped back. `<server key>__<tool>`: the key is the server id's
//! random part (alphanumeric), the tool name keeps `[A-Za-z0-9-]` and escapes `_` as `_u` and `.`
//! as `_d`, so `__` appears only as the separator and the mapping is reversible. A name that
//! would pass 64 characters becomes `<key>__x<hash>`, resolved by looking the hash up.

use ring::digest;

const KEY_LEN: usize = 12;
const MAX: usize = 64;

/// The short, stable key of a server id (`mcp_<random>` → the random part's first characters).
pub fn server_key(server_id: &str) -> String {
    server_id
        .trim_start_matches("mcp_")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(KEY_LEN)
        .collect()
}

fn hashed(tool: &str) -> String {
    let d = digest::digest(&digest::SHA256, tool.as_bytes());
    hex::encode(&d.as_ref()[..12])
}

pub fn namespaced(server_id: &str, tool: &str) -> String {
    let mut enc = String::with_capacity(tool.len());
    for ch in tool.chars() {
        match ch {
            '_' => enc.push_str("_u"),
            '.' => enc.push_str("_d"),
            c if c.is_ascii_alphanumeric() || c == '-' => enc.push(c),
            _ => return format!("{}__x{}", server_key(server_id), hashed(tool)),
        }
    }
    let full = format!("{}__{enc}", server_key(server_id));
    if full.len() > MAX || enc.is_empty() {
        format!("{}__x{}", server_key(server_id), hashed(tool))
    } else {
        full
    }
}

/// What a namespaced name stands for: the server key and either the tool name itself or the
/// hash of a long one (the caller compares `namespaced` of each candidate).
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Exact { key: String, tool: String },
    Hashed { key: String },
}

pub fn parse(name: &str) -> Option<Parsed> {
    let (key, enc) = name.split_once("__")?;
    if key.is_empty() || enc.is_empty() {
        return None;
    }
    let mut tool = String::new();
    let mut chars = enc.chars();
    while let Some(c) = chars.next() {
        match c {
            '_' => match chars.next() {
                Some('u') => tool.push('_'),
                Some('d') => tool.push('.'),
                _ => return None,
            },
            c => tool.push(c),
        }
    }
    if enc.starts_with('x') && enc.len() == 25 {
        return Some(Parsed::Hashed {
            key: key.to_owned(),
        });
    }
    Some(Parsed::Exact {
        key: key.to_owned(),
        tool,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(n: &str) -> bool {
        (1..=64).contains(&n.len())
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    #[test]
    fn round_trips() {
        let id = "mcp_AbC123xyz789qqq";
        for tool in ["echo", "get-sum", "a_b.c", "x_u", "_", "..", "a__b"] {
            let n = namespaced(id, tool);
            assert!(valid(&n), "{n}");
            assert_eq!(
                parse(&n),
                Some(Parsed::Exact {
                    key: server_key(id),
                    tool: tool.to_owned()
                }),
                "{tool}"
            );
        }
        let long = "t".repeat(100);
        let n = namespaced(id, &long);
        assert!(valid(&n), "{n}");
        assert_eq!(
            parse(&n),
            Some(Parsed::Hashed {
                key: server_key(id)
            })
        );
        assert_ne!(namespaced(id, "a_b"), namespaced(id, "a.b"));
    }
}
