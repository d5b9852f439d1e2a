//! Transaction users: the SIP usages built on transactions (RFC 3261 §10 registration, ...).

use rand::RngCore;

pub mod invite;
pub mod message;
pub mod message_summary;
pub mod registration;
pub mod subscription;

/// `bytes` random bytes as lower-case hex (Call-IDs, tags).
fn random_hex(rng: &mut dyn RngCore, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
