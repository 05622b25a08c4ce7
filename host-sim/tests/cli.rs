//! The `orcwalk-sim` command as a user runs it, where a unit test cannot see it.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// `orcwalk-sim replay tests/corpus/user | head`: the reader closes the pipe after a few bytes.
/// The replay prints a line for each of 2,100 dumps, far more than a pipe holds, so the command
/// must write to a closed pipe; it stops with 141 and says nothing, where std's `println!`
/// panicked ("failed printing to stdout: Broken pipe").
#[test]
fn a_reader_that_stops_early_ends_replay_quietly() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/user");
    let mut child = Command::new(env!("CARGO_BIN_EXE_orcwalk-sim"))
        .arg("replay")
        .arg(&corpus)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    assert_eq!(head[0], b'/', "{}", String::from_utf8_lossy(&head));
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.is_empty(), "stderr: {err}");
    assert_eq!(out.status.code(), Some(141), "stderr: {err}");
}

/// The README's results table is `orcwalk-sim replay --markdown` over the shipped corpus, as the
/// command prints it now: it cannot drift from what the code does.
#[test]
fn the_readme_results_table_is_the_replay_markdown() {
    let out = Command::new(env!("CARGO_BIN_EXE_orcwalk-sim")).args(["replay", "--markdown"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8(out.stdout).unwrap();
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let marker = "<!-- orcwalk-sim replay --markdown";
    let start = readme.find(marker).expect("the README marks its results table");
    let block: Vec<&str> = readme[start..].lines().skip(1).take_while(|l| l.starts_with('|')).collect();
    assert_eq!(block.join("\n"), table.trim_end(), "README results table differs from `orcwalk-sim replay --markdown`");
}
