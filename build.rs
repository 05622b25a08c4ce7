//! Generates Rust bindings for the repo's C headers so tests can hold our layouts to what a C
//! compiler (libclang) makes of the same declarations.

fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    for (header, rust) in [
        ("orc-format/include/orc_entry.h", "orc_entry.rs"),
        ("kernel-crate/include/orcwalk.h", "orcwalk_abi.rs"),
        ("kernel-crate/include/arm64_kernel_layouts.h", "arm64_kernel_layouts.rs"),
    ] {
        println!("cargo:rerun-if-changed={header}");
        bindgen::Builder::default()
            .header(header)
            .clang_arg("--target=aarch64-linux-gnu")
            .use_core()
            .derive_default(true)
            .generate()
            .unwrap_or_else(|e| {
                panic!("bindgen could not parse {header} (libclang-dev installed? run scripts/setup): {e}")
            })
            .write_to_file(out.join(rust))
            .expect("write bindings");
    }
}
