//! What makes a delivery believable: an HMAC-SHA256 of the exact bytes received under one of
//! the configured secrets (constant-time), and for Linear a `webhookTimestamp` near now.

use crate::platform::secret::Secret;
use chrono::{DateTime, Utc};

/// Whether `signature_hex` is the HMAC-SHA256 of `body` under any of `secrets`. Every secret is
/// tried (no early exit on a match position that would tell which one), each compare is
/// constant-time (ring), and a signature that is not hex of the right length fails.
pub fn signed_by_any(secrets: &[&Secret], body: &[u8], signature_hex: &str) -> bool {
    let Ok(tag) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    if tag.len() != 32 {
        return false;
    }
    let mut ok = false;
    for secret in secrets {
        ok |= crate::crypto::hmac::verify(secret.expose().as_bytes(), body, &tag);
    }
    ok
}

/// Linear's rule: the body's `webhookTimestamp` (epoch ms, a finite number; `None` when
/// missing or not a number) within `tolerance` of now, either way.
pub fn fresh(webhook_timestamp: Option<f64>, now: DateTime<Utc>, tolerance_secs: i64) -> bool {
    let Some(ts) = webhook_timestamp else {
        return false;
    };
    if !ts.is_finite() {
        return false;
    }
    let now_ms = now.timestamp_millis() as f64;
    (now_ms - ts).abs() <= (tolerance_secs as f64) * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_configured_secret_verifies() {
        let old = Secret::new("old-secret");
        let new = Secret::new("new-secret");
        let sig = hex::encode(crate::crypto::hmac::sign(b"old-secret", b"{}"));
        assert!(signed_by_any(&[&new, &old], b"{}", &sig));
        assert!(!signed_by_any(&[&new], b"{}", &sig));
        assert!(!signed_by_any(&[&new, &old], b"{} ", &sig));
        assert!(!signed_by_any(&[&old], b"{}", "zz"));
        assert!(!signed_by_any(&[&old], b"{}", &sig[..10]));
        assert!(!signed_by_any(&[], b"{}", &sig));
    }

    #[test]
    fn timestamps_outside_the_window_are_stale() {
        let now = DateTime::from_timestamp_millis(1_800_000_000_000).unwrap();
        let at = |ms: i64| Some(ms as f64);
        assert!(fresh(at(1_800_000_000_000 - 60_000), now, 60));
        assert!(fresh(at(1_800_000_000_000 + 60_000), now, 60));
        assert!(!fresh(at(1_800_000_000_000 - 60_001), now, 60));
        assert!(!fresh(at(1_800_000_000_000 + 60_001), now, 60));
        assert!(!fresh(Some(f64::INFINITY), now, 60));
        assert!(!fresh(None, now, 60));
    }
}
