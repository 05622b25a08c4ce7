//! Standard output for the project's command-line tools: std's `println!` panics when the reader
//! has gone ("failed printing to stdout: Broken pipe", `orc-format stats vmlinux | head`).

/// Writes to stdout; a reader that has gone ends the program with status 141 (as a shell's
/// SIGPIPE would: the command did not finish), any other write error with status 2 and the
/// reason, prefixed by `program`.
pub fn write_or_exit(program: &str, args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("{program}: stdout: {e}");
        std::process::exit(2);
    }
}
