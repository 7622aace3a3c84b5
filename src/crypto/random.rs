//! Random identifiers and tokens from the operating system's CSPRNG, drawn uniformly from an
//! alphabet by rejection sampling (no modulo bias), as Better Auth's `generateId` does.

use ring::rand::{SecureRandom, SystemRandom};

pub const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
pub const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
pub const LOWER_ALPHANUMERIC: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// `len` characters drawn uniformly from `alphabet` (at most 256 symbols).
pub fn string_from(alphabet: &[u8], len: usize) -> String {
    debug_assert!(!alphabet.is_empty() && alphabet.len() <= 256);
    let rng = SystemRandom::new();
    // The largest multiple of the alphabet size that fits in a byte: bytes at or above it are
    // redrawn, so every symbol is equally likely.
    let limit = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        if rng.fill(&mut buf).is_err() {
            // The OS RNG does not fail on supported platforms; if it ever does, refuse to
            // produce a weak identifier by spinning until it recovers.
            continue;
        }
        for &b in &buf {
            if (b as usize) < limit && out.len() < len {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

/// Better Auth's 32-character row id (`generateId(32)`), also used for session tokens.
pub fn id() -> String {
    string_from(ALPHANUMERIC, 32)
}

/// Random bytes, hex-encoded in lower case.
pub fn hex(bytes: usize) -> String {
    let rng = SystemRandom::new();
    let mut buf = vec![0u8; bytes];
    while rng.fill(&mut buf).is_err() {}
    to_hex(&buf)
}

pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_alphanumerics_and_differ() {
        let a = id();
        let b = id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn every_symbol_appears() {
        let s = string_from(URL_SAFE, 20_000);
        for &c in URL_SAFE {
            assert!(s.as_bytes().contains(&c), "{} never drawn", c as char);
        }
    }

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(to_hex(&bytes), "0001abff");
        assert_eq!(from_hex("0001abff").as_deref(), Some(&bytes[..]));
        assert_eq!(from_hex("0g"), None);
        assert_eq!(from_hex("abc"), None);
        assert_eq!(hex(16).len(), 32);
    }
}
