//! Compiles `proto/alcove/v1/content.proto` with protox (a pure-Rust protobuf
//! compiler), so building Alcove needs nothing but cargo.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script binary reused from another checkout
    // (a shared target directory) must not point at that checkout.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let file = root.join("alcove/v1/content.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let descriptors = protox::compile([&file], [&root])?;
    // AttachmentPointer carries a key: its Debug is written by hand in
    // content.rs and prints no key bytes.
    prost_build::Config::new()
        .skip_debug([".alcove.v1.AttachmentPointer", ".alcove.v1.GroupSenderKey"])
        .compile_fds(descriptors)?;
    Ok(())
}
