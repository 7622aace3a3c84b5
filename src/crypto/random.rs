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
    ::hex::encode(&buf)
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

    /// 96 symbols: 256 % 96 = 64, so bytes 192..=255 must be redrawn. Taken modulo 96 instead,
    /// symbols 0..64 would come up 3 times in 256 and the rest twice: a bias this test sees.
    #[test]
    fn rejection_sampling_leaves_no_bias() {
        let alphabet: Vec<u8> = (b' '..=0x7f).collect();
        assert_eq!(alphabet.len(), 96);
        const PER_SYMBOL: usize = 2_000;
        let s = string_from(&alphabet, PER_SYMBOL * 96);
        assert_eq!(s.len(), PER_SYMBOL * 96);
        let mut counts = [0usize; 128];
        for b in s.bytes() {
            counts[b as usize] += 1;
        }
        // Each count is binomial(192000, 1/96): mean 2000, sd ~44. ±15 % is ~7 sd; the biases
        // of the mutants (redraw none, one or four bytes fewer) move a count by 25 % or more.
        for &c in &alphabet {
            let n = counts[c as usize];
            assert!(
                (1_700..=2_300).contains(&n),
                "{:?} drawn {n} times, expected about {PER_SYMBOL}",
                c as char
            );
        }
    }

    #[test]
    fn lengths_are_exact() {
        for len in [0, 1, 63, 64, 65, 200] {
            assert_eq!(string_from(ALPHANUMERIC, len).len(), len);
            assert_eq!(string_from(LOWER_ALPHANUMERIC, len).len(), len);
            assert_eq!(hex(len).len(), 2 * len);
        }
        let lower = string_from(LOWER_ALPHANUMERIC, 2_000);
        assert!(
            lower
                .bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
        assert!(
            hex(64)
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn hex_is_twice_as_long_as_its_bytes() {
        assert_eq!(hex(16).len(), 32);
        assert_eq!(::hex::decode(hex(16)).map(|b| b.len()).ok(), Some(16));
    }
}
