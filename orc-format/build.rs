//! The generator's fingerprint: FNV-1a-64 over the code that decides a table's bytes (the
//! generator, the A64 decoder, the entry, table and file writers), comments and whitespace left
//! out so that formatting does not count. The checker (`generate/check.rs`) decides no byte of a
//! table and is left out, so that work on it does not call every shipped kernel table stale. Kernel tables are shipped without their vmlinux; each
//! carries the fingerprint of the generator that made it (`vmlinux.orc.generator`), and a test
//! fails when it is not today's (`orc-format fingerprint`).

use std::path::Path;

fn strip(src: &str) -> String {
    let mut out = String::new();
    for line in src.lines() {
        let code = match line.find("//") {
            // A `//` inside a string literal is rare in this code and only makes the print
            // stricter (more text counted), never blind to a change outside it.
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        out.extend(code.chars().filter(|c| !c.is_whitespace()));
    }
    out
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files: Vec<_> = std::fs::read_dir(root.join("generate"))
        .expect("src/generate")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .filter(|p| !p.ends_with("check.rs"))
        .collect();
    for f in ["a64.rs", "entry.rs", "table.rs", "file.rs", "index.rs", "image_id.rs", "format_id.rs"] {
        files.push(root.join(f));
    }
    files.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let text = std::fs::read_to_string(f).expect("generator source");
        for b in f.file_name().expect("name").to_string_lossy().bytes().chain(strip(&text).bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    println!("cargo:rustc-env=ORC_GENERATOR_FINGERPRINT={h:016x}");
}
