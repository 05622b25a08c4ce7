//! The `orc-format` command as a user runs it: outputs and exit codes (0 ok, 1 mismatches,
//! 2 unusable input).

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orc-format"))
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/orc").join(name)
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orc-format-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn build_dump_stats_check() {
    let elf = fixture("shapes-gcc-O2-fp");
    let table = tmp("gcc.orc");
    let out = bin().arg("build").arg(&elf).arg("-o").arg(&table).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("entries from 16 FDEs"));

    let out = bin().arg("check").arg(&elf).arg(&table).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": 0 mismatches"));

    let out = bin().arg("stats").arg(&elf).output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("functions w/o CFI: 1") && s.contains("call_weak_fn"), "{s}");
    assert!(s.contains("CFA is a DWARF expression"), "{s}");

    let out = bin().arg("dump").arg(&table).arg("--pc").arg("0x0").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("no entry"));
}

#[test]
fn check_against_another_binary_is_refused() {
    let table = tmp("clang.orc");
    assert!(bin().arg("build").arg(fixture("shapes-clang-O2-fp")).arg("-o").arg(&table).status().unwrap().success());
    let out = bin().arg("check").arg(fixture("shapes-gcc-O0-fp")).arg(&table).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a table for") && err.matches("build-id ").count() == 2, "{err}");
}

/// Two builds one instruction apart, neither with a build-id (tests/fixtures/imageid): their
/// ids used to be empty, so `check` compared the table with the other build's CFI as if it were
/// its own. Now each is a text hash, and the pairing is refused, naming both.
#[test]
fn check_against_a_build_one_instruction_apart_is_refused() {
    let twins = |name: &str| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/imageid").join(name);
    let table = tmp("twins-plain.orc");
    assert!(bin().arg("build").arg(twins("twins-plain")).arg("-o").arg(&table).status().unwrap().success());
    let out = bin().arg("dump").arg(&table).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("image id text-hash "));
    let out = bin().arg("check").arg(twins("twins-plain")).arg(&table).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    let out = bin().arg("check").arg(twins("twins-bti")).arg(&table).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is not a table for") && err.matches("text-hash ").count() == 2, "{err}");
}

#[test]
fn garbage_is_exit_2_with_a_reason() {
    let junk = tmp("junk");
    std::fs::write(&junk, b"ORCWALK\0 short").unwrap();
    let out = bin().arg("dump").arg(&junk).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated header"));
    let out = bin().arg("build").arg(&junk).arg("-o").arg(tmp("x.orc")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin().arg("stats").arg("/nonexistent/file").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/file"));
}

/// `check` holds a table to the control-flow proof: the compiler's rows as they are (clang 14
/// describes no epilogue, only the end of each prologue) claim frames no path proves.
#[test]
fn check_refuses_rows_not_proven_along_control_flow() {
    let elf = fixture("shapes-clang-O2-fp");
    let (proven, unproven) = (tmp("clang-proven.orc"), tmp("clang-unproven.orc"));
    for (out, extra) in [(&proven, None), (&unproven, Some("--unproven"))] {
        let o = bin().arg("build").arg(&elf).arg("-o").arg(out).args(extra).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = bin().arg("check").arg(&elf).arg(&proven).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{s}");
    assert!(s.contains("0 contradicted along some path"), "{s}");
    let o = bin().arg("check").arg(&elf).arg(&unproven).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{s}");
    let n: u64 = s
        .split(" contradicted along some path")
        .next()
        .and_then(|h| h.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(n > 0, "{s}");
}

/// `orc-format dump T | head`: the reader closes the pipe after a few bytes. The table prints
/// far more than a pipe holds (some 3,900 lines, 190 KiB), so the command must write to a closed pipe;
/// it stops with 141 and says nothing, where std's `println!` panicked ("failed printing to
/// stdout: Broken pipe").
#[test]
fn a_reader_that_stops_early_ends_dump_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let table = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/user/gcc-O2/program.orc");
    let mut child = bin().arg("dump").arg(&table).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut head = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    assert_eq!(&head[..10], b"format v1 ", "{}", String::from_utf8_lossy(&head));
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.is_empty(), "stderr: {err}");
    assert_eq!(out.status.code(), Some(141), "stderr: {err}");
}

/// A kernel's `_text` is a linker-script symbol without a type (so is `_edata` here): the ELF
/// object is anchored to it all the same (the first kernel build stopped at "no text symbol").
#[test]
fn elf_object_anchors_to_an_untyped_symbol() {
    let elf = fixture("shapes-gcc-O2-fp");
    let obj = tmp("untyped.o");
    let out = bin()
        .arg("build")
        .arg(&elf)
        .arg("-o")
        .arg(&obj)
        .args(["--elf-object", "--text-symbol", "_edata"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = bin()
        .arg("build")
        .arg(&elf)
        .arg("-o")
        .arg(&obj)
        .args(["--elf-object", "--text-symbol", "no_such_symbol"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no text symbol `no_such_symbol`"));
}

/// `check` says how many rows it accepted as refused (UNDEFINED where the CFI has a rule), as a
/// share of what it compared, and how many of them the proof of the image would have kept.
#[test]
fn check_prints_what_it_accepts_as_refused() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/user/clang-O2");
    let out = bin().arg("check").arg(dir.join("program.elf")).arg(dir.join("program.orc")).output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{s}");
    assert!(s.contains("checked 88314 addresses with CFI and 1244 without: 0 mismatches (2851 refused, "), "{s}");
    assert!(
        s.contains(
            "accepted as refused: 2851 addresses where the CFI has a rule and the table says UNDEFINED \
             (3.23 % of the addresses with CFI), 0 of them where the proof of the image keeps a row"
        ),
        "{s}"
    );
}

/// An object file's CFI names its code through relocations not yet applied (`.rela.eh_frame`):
/// read as it is, the generator and the checker would agree on addresses that are not the
/// code's. `check` refuses it (exit 2) rather than report 0 mismatches. Here a fixture marked
/// `ET_REL`; a real `gcc -c` object is refused the same way.
#[test]
fn check_refuses_a_relocatable_object() {
    let mut elf = std::fs::read(fixture("shapes-gcc-O2-fp")).unwrap();
    let table = tmp("rel.orc");
    assert!(bin().arg("build").arg(fixture("shapes-gcc-O2-fp")).arg("-o").arg(&table).status().unwrap().success());
    elf[16..18].copy_from_slice(&1u16.to_le_bytes()); // e_type ET_REL
    let rel = tmp("rel.o");
    std::fs::write(&rel, &elf).unwrap();
    let out = bin().arg("check").arg(&rel).arg(&table).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is a relocatable object"), "{err}");
}

/// A module without any CFI (assembly without CFI directives) gets no table, and the build goes on;
/// one with CFI gets its table.
#[test]
fn build_module_writes_no_table_without_cfi() {
    let dir = tmp("module-no-cfi");
    std::fs::create_dir_all(&dir).unwrap();
    let (src, obj, out) = (dir.join("m.s"), dir.join("m.o"), dir.join("m.orcwalk"));
    std::fs::write(&src, ".text\n.globl f\nf:\n\tret\n").unwrap();
    let ok = Command::new("aarch64-linux-gnu-as").arg("-o").arg(&obj).arg(&src).status().unwrap();
    assert!(ok.success());
    std::fs::write(&out, b"stale").unwrap();
    let o = bin().args(["build-module", "--ld", "ld.lld", "-o"]).arg(&out).arg(&obj).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("no CFI: no table"));
    assert!(!out.exists(), "a stale table left behind would be added to the module");

    std::fs::write(&src, ".text\n.globl f\nf:\n.cfi_startproc\n\tret\n.cfi_endproc\n").unwrap();
    let ok = Command::new("aarch64-linux-gnu-as").arg("-o").arg(&obj).arg(&src).status().unwrap();
    assert!(ok.success());
    let o = bin().args(["build-module", "--ld", "ld.lld", "-o"]).arg(&out).arg(&obj).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(orc_format::module::ModuleTable::parse(&std::fs::read(&out).unwrap()).is_ok());
}
