//! Compiles the echo service used as the benchmark's ceiling.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script binary reused from another checkout
    // (a shared target directory) must not point at that checkout.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let echo = root.join("bench/echo.proto");
    println!("cargo:rerun-if-changed={}", echo.display());
    let descriptors = protox::compile([&echo], [&root])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
