#![no_main]
//! Fuzz target `phone`: see `handset_sip_fuzz::phone` for the set-up, the operations read from
//! the input and the properties checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| handset_sip_fuzz::check_phone(data));
