//! `replay --json` is the report the text is printed from, serialized: it reads back into the
//! report types as it was made, and it says which version of the schema (docs/json.md) it is.

use std::path::PathBuf;
use std::process::Command;

use orcwalk_sim::report::{Options, ReplayReport, ShowReport, VERSION, VerdictReport, replay_paths, show};

/// A shipped corpus small enough to replay in a debug build in a second or two, with symbols
/// (its program.elf), reliable and unreliable verdicts and signal frames.
fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/user/gcc-O2")
}

fn replay_json() -> String {
    let out =
        Command::new(env!("CARGO_BIN_EXE_orcwalk-sim")).arg("replay").arg("--json").arg(corpus()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn replay_json_reads_back_into_the_report_it_was_made_from() {
    let json = replay_json();
    let back: ReplayReport = serde_json::from_str(&json).unwrap();
    let made = replay_paths(&[corpus()], Options::default()).unwrap();
    assert_eq!(back, made, "the JSON read back is not the report replay makes");
    assert_eq!(serde_json::to_string_pretty(&back).unwrap(), json.trim_end(), "the JSON does not round-trip");
    // What makes it worth reading: every dump, frames named (all but those in the vDSO's
    // signal trampoline, which is not the program's), reasons.
    let dumps = orcwalk_sim::dump::load_dir(&corpus()).unwrap();
    assert_eq!(back.dumps.len(), dumps.len());
    let frames: Vec<_> = back.dumps.iter().flat_map(|d| &d.frames).collect();
    let named = frames.iter().filter(|f| f.function.is_some()).count();
    assert!(named * 20 > frames.len() * 19, "{named} of {} frames named", frames.len());
    assert!(back.dumps.iter().any(|d| matches!(&d.verdict, VerdictReport::Unreliable { function: Some(_), .. })));
    assert!(back.dumps.iter().any(|d| d.verdict == VerdictReport::Correct));
}

#[test]
fn replay_json_says_its_version() {
    let json = replay_json();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        value.get("version").and_then(serde_json::Value::as_u64),
        Some(u64::from(VERSION)),
        "no top-level version"
    );
    let mut unversioned = value.clone();
    unversioned.as_object_mut().unwrap().remove("version");
    assert!(
        serde_json::from_value::<ReplayReport>(unversioned).is_err(),
        "a document without a version must not read as a report"
    );
}

/// `show --json` of a kernel dump that crossed an exception and then failed: the same report as
/// `show` makes in-process, its walk symbolized.
#[test]
fn show_json_reads_back_into_the_report_it_was_made_from() {
    let dump = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/kernel/6.12-cloud/00050.core");
    let out = Command::new(env!("CARGO_BIN_EXE_orcwalk-sim")).arg("show").arg("--json").arg(&dump).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json = String::from_utf8(out.stdout).unwrap();
    let back: ShowReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, show(&dump, Options::default()).unwrap());
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["version"], u64::from(VERSION));
    let walk = back.walk.expect("the table lies beside the dump");
    assert!(
        matches!(&walk.verdict, VerdictReport::Unreliable { function: Some(f), .. } if f.starts_with("rcu_all_qs+"))
    );
    assert_eq!(walk.frames.iter().filter(|f| f.kind == orcwalk::FrameKind::Exception).count(), 1);
    assert_eq!(back.truth[0].function.as_deref(), Some("arch_timer_handler_virt+0xc/0x4c"));
}
