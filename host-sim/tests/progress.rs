//! Long commands show a progress bar with an ETA on a terminal, and nothing when stderr is not
//! one: piped or logged runs print exactly what they printed before there was a bar. The
//! terminal is a pseudo-terminal from util-linux's `script`; nothing here depends on timing (the
//! first update of a bar is always drawn, and its end always clears it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn sim() -> &'static str {
    env!("CARGO_BIN_EXE_orcwalk-sim")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `orcwalk-sim capture` of 6 stops of the gcc -O2 workload under qemu-aarch64, 3 a run, into
/// a fresh `out`.
fn capture_args(out: &Path) -> Vec<String> {
    let _ = std::fs::remove_dir_all(out);
    let program = repo().join("tests/fixtures/user/workload-gcc-O2");
    ["capture", "--out", &out.display().to_string(), "--count", "6", "--seed", "7", "--max-steps", "300"]
        .into_iter()
        .map(str::to_string)
        .chain(["--stops-per-run".into(), "3".into(), program.display().to_string(), "1000000".into()])
        .collect()
}

/// What `args` print with stdout and stderr on one pseudo-terminal.
fn on_a_terminal(args: &[String]) -> String {
    let quote = |a: &str| format!("'{}'", a.replace('\'', r"'\''"));
    let line = std::iter::once(sim()).chain(args.iter().map(String::as_str)).map(quote).collect::<Vec<_>>().join(" ");
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) for a pseudo-terminal");
    assert!(out.status.success(), "{line}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn capture_and_replay_write_nothing_on_stderr_when_it_is_not_a_terminal() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("progress-piped");
    let run = Command::new(sim()).args(capture_args(&out)).output().expect("capture (needs qemu-aarch64)");
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert_eq!(err, "", "capture wrote on a piped stderr");
    let stdout = String::from_utf8(run.stdout).unwrap();
    assert!(stdout.starts_with(&format!("{}: 6 dumps from 2 runs", out.display())), "{stdout}");
    // 300 dumps: a bar's worth of work.
    let run = Command::new(sim()).arg("replay").arg(repo().join("tests/corpus/synthetic")).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(String::from_utf8_lossy(&run.stderr), "", "replay wrote on a piped stderr");
    assert_eq!(String::from_utf8(run.stdout).unwrap().lines().filter(|l| l.ends_with(" frames)")).count(), 300);
}

#[test]
fn capture_shows_a_bar_with_an_eta_on_a_terminal_and_clears_it() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("progress-tty");
    let screen = on_a_terminal(&capture_args(&out));
    assert!(screen.contains("capture [") && screen.contains("/6, ") && screen.contains("ETA"), "{screen:?}");
    // The bar is cleared (carriage return, erase line) before the command's own lines.
    let after = screen.rsplit("\r\x1b[2K").next().unwrap();
    assert!(after.starts_with(&format!("{}: 6 dumps from 2 runs", out.display())), "{screen:?}");
}

#[test]
fn replay_shows_a_bar_on_a_terminal_between_its_lines() {
    let screen = on_a_terminal(&["replay".into(), repo().join("tests/corpus/synthetic").display().to_string()]);
    assert!(screen.contains("replay [") && screen.contains("/300, "), "{screen:?}");
    // Every verdict line reads whole: the bar is cleared before each is printed.
    let verdicts = screen.split("\r\n").filter(|l| l.ends_with(" frames)")).collect::<Vec<_>>();
    assert_eq!(verdicts.len(), 300);
    for v in verdicts {
        let line = v.rsplit("\x1b[2K").next().unwrap();
        assert!(line.starts_with(&repo().join("tests/corpus/synthetic").display().to_string()), "{v:?}");
    }
}
