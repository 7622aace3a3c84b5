//! HMAC-SHA256 signatures and their constant-time verification (ring).

use ring::hmac;

pub fn sign(key: &[u8], message: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&key, message).as_ref().to_vec()
}

/// Constant-time: ring compares the tags without early exit.
pub fn verify(key: &[u8], message: &[u8], tag: &[u8]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::verify(&key, message, tag).is_ok()
}

/// Constant-time equality of two secrets of possibly different length.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Comparing HMACs of both sides under a one-off key hides the lengths and positions.
    let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new());
    match key {
        Ok(key) => {
            let tag = hmac::sign(&key, a);
            hmac::verify(&key, b, tag.as_ref()).is_ok()
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_its_own_signatures_only() {
        let tag = sign(b"key", b"message");
        assert!(verify(b"key", b"message", &tag));
        assert!(!verify(b"key", b"message!", &tag));
        assert!(!verify(b"other", b"message", &tag));
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
