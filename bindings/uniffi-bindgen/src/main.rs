//! uniffi's bindgen CLI, built from the workspace so its version always matches the `uniffi`
//! that `handset-ffi` is built with. Used by `scripts/bindings.sh`:
//! `uniffi-bindgen generate --library target/debug/libhandset_ffi.so --language kotlin --out-dir ...`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
