//! Shared helpers for the cross-crate and interop tests.
