//! `cargo run -p alcove-ffi --bin uniffi-bindgen -- generate --library <lib> --language python --out-dir <dir>`
fn main() {
    uniffi::uniffi_bindgen_main()
}
