//! Generates Rust bindings for the repo's C headers so tests can hold our layouts to what a C
//! compiler (libclang) makes of the same declarations.

fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let header = "orc-format/include/orc_entry.h";
    println!("cargo:rerun-if-changed={header}");
    bindgen::Builder::default()
        .header(header)
        .clang_arg("--target=aarch64-linux-gnu")
        .use_core()
        .derive_default(true)
        .generate()
        .expect("bindgen could not parse orc_entry.h (is libclang-dev installed? run scripts/setup)")
        .write_to_file(out.join("orc_entry.rs"))
        .expect("write bindings");
}
