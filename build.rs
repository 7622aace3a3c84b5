//! Refuses a build that contains no role: the binary would have nothing to serve.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let auth = std::env::var_os("CARGO_FEATURE_AUTH").is_some();
    let connectors = std::env::var_os("CARGO_FEATURE_CONNECTORS").is_some();
    if !auth && !connectors {
        println!(
            "cargo::error=switchboard needs at least one role: build with --features auth, --features connectors, or both (the default)"
        );
    }
}
