//! Transaction users: the SIP usages built on transactions (RFC 3261 §10 registration, ...).

pub mod invite;
pub mod message_summary;
pub mod registration;
pub mod subscription;
