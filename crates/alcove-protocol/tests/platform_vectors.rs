//! Platform vectors: the committed `tests/vectors/platform.json` is what
//! this native build computes from `alcove_protocol::vectors` (library
//! code, so the browser build runs the very same steps). The wasm build is
//! held to the same file by `bindings/alcove-wasm/tests/vectors.test.mjs`.
//! (`vectors.rs` beside this file keeps the richer conversation vectors of
//! the native build.)
//!
//! After a deliberate change to a wire format, rewrite the file with
//! `ALCOVE_WRITE_VECTORS=1 cargo test -p alcove-protocol --test platform_vectors`.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// The seed both builds use.
const SEED: [u8; 32] = [7; 32];

fn file() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/platform.json")
}

fn computed() -> serde_json::Value {
    let vectors = alcove_protocol::vectors::conversation(&mut ChaCha20Rng::from_seed(SEED))
        .expect("the conversation runs");
    serde_json::json!({
        "seed": hex::encode(SEED),
        "vectors": vectors
            .iter()
            .map(|(name, bytes)| serde_json::json!({ "name": name, "hex": hex::encode(bytes) }))
            .collect::<Vec<_>>(),
    })
}

#[test]
fn the_committed_vectors_are_what_the_native_build_computes() {
    let now = computed();
    if std::env::var_os("ALCOVE_WRITE_VECTORS").is_some() {
        std::fs::write(file(), serde_json::to_string_pretty(&now).unwrap() + "\n").unwrap();
    }
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file()).unwrap()).unwrap();
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&committed), names(&now));
    for (c, n) in committed["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .zip(now["vectors"].as_array().unwrap())
    {
        assert_eq!(c["hex"], n["hex"], "vector {} changed", n["name"]);
    }
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    assert_eq!(computed(), computed());
    let other =
        alcove_protocol::vectors::conversation(&mut ChaCha20Rng::from_seed([8; 32])).unwrap();
    let now = alcove_protocol::vectors::conversation(&mut ChaCha20Rng::from_seed(SEED)).unwrap();
    assert_eq!(other.len(), now.len());
    assert!(other.iter().zip(&now).all(|(a, b)| a.1 != b.1));
}
