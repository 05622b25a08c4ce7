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
