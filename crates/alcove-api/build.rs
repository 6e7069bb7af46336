//! Compiles the relay API with protox (no system `protoc`) and keeps the
//! file descriptor set for gRPC server reflection.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script binary reused from another checkout
    // (a shared target directory) must not point at that checkout.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let relay = root.join("alcove/v1/relay.proto");
    println!("cargo:rerun-if-changed={}", relay.display());
    let descriptors = protox::compile([&relay], [&root])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("relay_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .codec_path("crate::codec::StrictCodec")
        // No `connect` constructors: they need tonic's transport, which a
        // wasm build of the SDK does not have (clients take a channel).
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
