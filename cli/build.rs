//! Records the compiler version (`version`'s GoVersion field holds it) and
//! `SOURCE_DATE_EPOCH` (its Built time; 0, as podman's reproducible
//! builds, when unset).

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    println!("cargo:rustc-env=CAIRN_RUSTC_VERSION={}", version.trim());
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        println!("cargo:rustc-env=CAIRN_BUILT={epoch}");
    }
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=build.rs");
}
