#![no_main]
//! Fuzz target `parse_message`: see `handset_sip_fuzz::check_parse_message` for the properties checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| handset_sip_fuzz::check_parse_message(data));
