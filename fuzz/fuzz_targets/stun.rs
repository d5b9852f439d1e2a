#![no_main]
//! Fuzz target `stun`: see `handset_sip_fuzz::check_stun` for the properties checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| handset_sip_fuzz::check_stun(data));
