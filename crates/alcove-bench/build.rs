//! Compiles the echo service used as the benchmark's ceiling.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let echo = root.join("bench/echo.proto");
    println!("cargo:rerun-if-changed={}", echo.display());
    let descriptors = protox::compile([&echo], [&root])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
