//! `orcwalk-sim`: replay recorded stacks, show a dump, generate synthetic dumps.
//!
//! Exit status: 0 success, 1 a false-reliable verdict (the bug that must never ship), 2 unusable
//! input, 141 (as a shell shows a program killed by SIGPIPE) when the reader closed stdout before
//! everything was printed (`orcwalk-sim replay | head`): the command stops at once, printing
//! nothing on stderr, and does not claim a clean replay it did not finish.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};
use orcwalk::Policy;
use orcwalk_sim::capture::kernel::{KernelPlan, KernelSymbols, TaskOffsets, capture_kernel};
use orcwalk_sim::capture::{Plan, capture};
use orcwalk_sim::dump::Dump;
use orcwalk_sim::replay::Mode;
use orcwalk_sim::report::{Options, Replayer, collect, load, show};
use orcwalk_sim::symbols::Symbols;
use orcwalk_sim::synth::{Program, Rng, sample};
use orcwalk_sim::truth::Image;

// This command's `println!`: std's panics on a closed stdout ("failed printing to stdout: Broken
// pipe"), this one ends the program as described above.
macro_rules! println {
    ($($arg:tt)*) => { out(format_args!("{}\n", format_args!($($arg)*))) };
}

fn out(args: std::fmt::Arguments<'_>) {
    orc_format::stdout::write_or_exit("orcwalk-sim", args);
}

#[derive(Parser)]
#[command(version, about = "orcwalk's simulator: replay recorded arm64 stacks against their ground truth")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum PolicyArg {
    Orcwalk,
    Mainline,
}

/// How `replay` and `show` walk a dump: which table, which image and lines, which policy.
#[derive(clap::Args)]
struct WalkArgs {
    /// ORC table file to use instead of the one each dump names.
    #[arg(long, conflicts_with = "elf")]
    table: Option<PathBuf>,
    /// Build the ORC table from this aarch64 ELF's CFI instead, and symbolize frames with it.
    #[arg(long)]
    elf: Option<PathBuf>,
    /// A kernel's debug vmlinux, for source lines beside the frames (-v, show, --json); refused
    /// for a dump whose image id is not its build-id.
    #[arg(long, value_name = "PATH")]
    vmlinux: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "orcwalk")]
    policy: PolicyArg,
    /// Two witnesses for every frame: refuse a CFA on x29 and a caller without a frame
    /// record, which the default accepts from proven rows with one witness (DESIGN §7).
    #[arg(long)]
    strict: bool,
}

impl WalkArgs {
    fn options(self, count_strict: bool) -> Options {
        let WalkArgs { table, elf, vmlinux, policy, strict } = self;
        let policy = if policy == PolicyArg::Mainline { Policy::Mainline } else { Policy::Orcwalk };
        Options { table, elf, policy, mode: Mode { strict }, count_strict, vmlinux }
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Replay dumps (files or directories, recursively; default: the shipped corpus) and print
    /// per-dump verdicts and a summary for both policies.
    Replay {
        paths: Vec<PathBuf>,
        #[command(flatten)]
        walk: WalkArgs,
        /// The same report as one JSON document: every dump, then the totals (docs/json.md).
        #[arg(long)]
        json: bool,
        /// Print every frame.
        #[arg(long, short)]
        verbose: bool,
        /// Only the results table, in markdown: per directory, orcwalk by default and strict and
        /// mainline's rule (the README's table is this output).
        #[arg(long, conflicts_with_all = ["json", "verbose", "strict"])]
        markdown: bool,
    },
    /// Print a dump's registers, regions, stacks and truth, and its walk (with the table its
    /// note names, beside it, unless --table or --elf says otherwise).
    Show {
        dump: PathBuf,
        #[command(flatten)]
        walk: WalkArgs,
        /// The same report as one JSON document (docs/json.md).
        #[arg(long)]
        json: bool,
        /// Also draw the walk to this SVG file: the stacks to scale, every frame record and
        /// pt_regs where it lies, the steps, each frame's function and witness, the failed step.
        #[arg(long, value_name = "OUT.svg")]
        svg: Option<PathBuf>,
    },
    /// Write DIR/vmlinux.syms: the function symbols of ELF (a debug vmlinux) that hold any text
    /// address the dumps under DIR hold, so that replays of a kernel corpus read as `name+off`.
    Symbols {
        #[arg(long)]
        elf: PathBuf,
        dir: PathBuf,
    },
    /// Run an aarch64 program under qemu-aarch64's gdbstub and write COUNT dumps of its stack at
    /// pseudo-random stops, each with the ground truth of a DWARF CFI unwind, plus program.orc
    /// built from the program's CFI.
    Capture {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 100)]
        count: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Single steps from the first instruction to the start-up stop of each run: 0..N.
        #[arg(long, default_value_t = 20000)]
        max_steps: u64,
        #[arg(long, default_value = "qemu-aarch64")]
        qemu: String,
        /// Sample at stops for this signal (the program's timer; 26 = SIGVTALRM); others are
        /// delivered without a sample.
        #[arg(long, default_value_t = 26)]
        signal: u8,
        /// Kill the program after this many stops of a run (the start-up stop included) and start
        /// it again, rather than letting each run go until the program ends.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        stops_per_run: Option<u32>,
        program: PathBuf,
        args: Vec<String>,
    },
    /// Boot an arm64 kernel in qemu-system-aarch64 (gdbstub on 127.0.0.1), interrupt it at
    /// pseudo-random times and write COUNT dumps of EL1 (or, with --el2, EL2) stops (task and IRQ
    /// stacks) with the truth of a DWARF unwind over VMLINUX, plus vmlinux.orc built from its CFI.
    CaptureKernel {
        #[arg(long)]
        kernel: PathBuf,
        /// The matching debug vmlinux (from the -dbg package).
        #[arg(long)]
        vmlinux: PathBuf,
        #[arg(long)]
        initrd: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 300)]
        count: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// pt_regs layout: v6.12 (no meta records), v6.13 (meta records), generic (generic entry).
        #[arg(long, default_value = "v6.12")]
        layout: String,
        #[arg(long, default_value = "cortex-a57")]
        cpu: String,
        /// Also sample this many blocked tasks per kernel stop (from their saved cpu_context, as
        /// livepatch walks them) into DIR/blocked; 0 for none. Needs gdb-multiarch.
        #[arg(long, default_value_t = 1)]
        blocked: u32,
        /// What the initramfs prints once it keeps the kernel busy.
        #[arg(long, default_value = "orcwalk-init: busy")]
        ready: String,
        #[arg(long, default_value = "qemu-system-aarch64")]
        qemu: String,
        /// Boot with virtualization on (`-M virt,virtualization=on`; needs a CPU with VHE, e.g.
        /// `--cpu max`): the kernel runs at EL2, and the stops kept are those at EL2.
        #[arg(long)]
        el2: bool,
    },
    /// Write a seeded synthetic corpus: program.orc (with its gap and stale variants) and COUNT dumps.
    Gen {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 100)]
        count: u32,
        #[arg(long)]
        out: PathBuf,
    },
}

fn default_corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus")
}

/// A progress bar with an ETA on stderr for `total` steps of long work. indicatif draws it only
/// when stderr is a terminal (and TERM is not `dumb`): piped or logged, nothing is written, so
/// what scripts read is what it was without a bar.
fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len}, {elapsed} so far, ETA {eta}")
        .map(|s| s.progress_chars("##-"))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(what.to_string());
    // Done, or dropped on an error, it leaves the terminal: what the command prints next starts
    // on a clean line.
    bar.with_finish(ProgressFinish::AndClear)
}

/// Builds the ORC table of the ELF `bytes` (read from `elf`) and writes it to `path`, creating
/// its directory.
fn write_table(elf: &Path, bytes: &[u8], path: &Path) -> Result<(), String> {
    let table = orc_format::generate::ElfImage::parse(bytes)
        .and_then(|i| orc_format::generate::generate(&i))
        .and_then(|g| g.to_file_bytes())
        .map_err(|e| format!("{}: {e}", elf.display()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, table).map_err(|e| format!("{}: {e}", path.display()))
}

/// A sink writing dumps to `dir` as 00000.core, 00001.core, …, a step of `bar` each.
fn numbered(dir: &Path, bar: Option<ProgressBar>) -> impl FnMut(Dump) -> std::io::Result<()> + use<> {
    let dir = dir.to_path_buf();
    let mut n = 0u32;
    move |dump| {
        let path = dir.join(format!("{n:05}.core"));
        n += 1;
        std::fs::write(&path, dump.write())?;
        if let Some(b) = &bar {
            b.inc(1);
        }
        Ok(())
    }
}

/// A capture's bar: the elapsed time and ETA kept fresh while the target runs between samples.
fn capture_bar(count: u32, what: &str) -> ProgressBar {
    let bar = progress_bar(u64::from(count), what);
    if !bar.is_hidden() {
        bar.enable_steady_tick(std::time::Duration::from_millis(500));
    }
    bar
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.cmd {
        Cmd::Replay { paths, walk, json, verbose, markdown } => {
            let paths = if paths.is_empty() { vec![default_corpus()] } else { paths };
            let mut files = Vec::new();
            for p in &paths {
                collect(p, &mut files)?;
            }
            if files.is_empty() {
                return Err("no dumps found".into());
            }
            let mut replayer = Replayer::new(walk.options(markdown))?;
            // Short runs go without a bar.
            let bar =
                if files.len() >= 50 { progress_bar(files.len() as u64, "replay") } else { ProgressBar::hidden() };
            for f in &files {
                let report = replayer.replay(f, &load(f)?)?;
                if !markdown && !json {
                    bar.suspend(|| println!("{}", report.text(verbose)));
                }
                bar.inc(1);
            }
            bar.finish_and_clear();
            let report = replayer.finish();
            if markdown {
                println!("{}", report.markdown(&default_corpus()));
            } else if json {
                println!("{}", serde_json::to_string_pretty(&report).map_err(|e| format!("JSON: {e}"))?);
            } else {
                println!("{}", report.totals_text());
            }
            let bad = report.false_reliable();
            if bad > 0 {
                eprintln!("orcwalk-sim: {bad} false-reliable verdicts");
                return Ok(ExitCode::from(1));
            }
        }
        Cmd::Symbols { elf, dir } => {
            let bytes = std::fs::read(&elf).map_err(|e| format!("{}: {e}", elf.display()))?;
            let all = Symbols::from_elf(&bytes).map_err(|e| format!("{}: {e}", elf.display()))?;
            let mut files = Vec::new();
            collect(&dir, &mut files)?;
            let dumps = files.iter().map(|f| load(f)).collect::<Result<Vec<_>, _>>()?;
            let needed = all.needed_by(dumps.iter());
            let out = dir.join("vmlinux.syms");
            std::fs::write(&out, needed.to_text()).map_err(|e| format!("{}: {e}", out.display()))?;
            println!("{}: {} of {} functions, for {} dumps", out.display(), needed.len(), all.len(), dumps.len());
        }
        Cmd::Show { dump, walk, json, svg } => {
            let report = show(&dump, walk.options(false))?;
            if let Some(out) = &svg {
                let picture = orcwalk_sim::svg::render(&report).map_err(|e| format!("{}: {e}", dump.display()))?;
                std::fs::write(out, picture).map_err(|e| format!("{}: {e}", out.display()))?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&report).map_err(|e| format!("JSON: {e}"))?);
            } else {
                println!("{}", report.text());
            }
        }
        Cmd::Capture { out, count, seed, max_steps, qemu, signal, stops_per_run, program, args } => {
            let bytes = std::fs::read(&program).map_err(|e| format!("{}: {e}", program.display()))?;
            let image = Image::parse(&bytes).map_err(|e| format!("{}: {e}", program.display()))?;
            write_table(&program, &bytes, &out.join("program.orc"))?;
            let plan = Plan {
                qemu,
                program,
                args,
                samples: count,
                seed,
                max_steps,
                signal,
                table_path: "program.orc".into(),
                stops_per_run,
            };
            let bar = capture_bar(count, "capture");
            let stats = capture(&plan, &image, numbered(&out, Some(bar.clone())));
            bar.finish_and_clear();
            let stats = stats.map_err(|e| format!("{}: {e}", plan.program.display()))?;
            println!(
                "{}: {} dumps from {} runs ({} ended by the program), truth complete in {}",
                out.display(),
                stats.samples,
                stats.runs,
                stats.ended,
                stats.complete
            );
            let at: Vec<String> = stats.positions.iter().map(|(p, n)| format!("{n} {p:?}")).collect();
            println!("    stops in: {}", at.join(", "));
            println!(
                "    stale rows whose truth came from running the epilogue out: {} of {}",
                stats.epilogues_run_out, stats.epilogue_attempts
            );
            for (why, n) in &stats.doubts {
                println!("    truth incomplete ({n}): {why}");
            }
        }
        Cmd::CaptureKernel { kernel, vmlinux, initrd, out, count, seed, layout, cpu, blocked, ready, qemu, el2 } => {
            let layout = match layout.as_str() {
                "v6.12" => orcwalk::KernelLayout::V6_12,
                "v6.13" => orcwalk::KernelLayout::V6_13,
                "generic" => orcwalk::KernelLayout::GENERIC_ENTRY,
                other => return Err(format!("unknown layout {other} (v6.12, v6.13, generic)")),
            };
            let bytes = std::fs::read(&vmlinux).map_err(|e| format!("{}: {e}", vmlinux.display()))?;
            let syms = KernelSymbols::read(&bytes).map_err(|e| format!("{}: {e}", vmlinux.display()))?;
            let image = Image::parse(&bytes).map_err(|e| format!("{}: {e}", vmlinux.display()))?;
            write_table(&vmlinux, &bytes, &out.join("vmlinux.orc"))?;
            let plan = KernelPlan {
                qemu,
                kernel,
                initrd,
                cpu,
                samples: count,
                seed,
                layout,
                ready,
                table_path: "vmlinux.orc".into(),
                blocked: match blocked {
                    0 => None,
                    n => Some((n, TaskOffsets::read(&vmlinux)?)),
                },
                el2,
            };
            let blocked_dir = out.join("blocked");
            if blocked > 0 {
                std::fs::create_dir_all(&blocked_dir).map_err(|e| format!("{}: {e}", blocked_dir.display()))?;
            }
            let bar = capture_bar(count, "capture-kernel");
            let stats =
                capture_kernel(&plan, &image, &syms, numbered(&out, Some(bar.clone())), numbered(&blocked_dir, None));
            bar.finish_and_clear();
            let stats = stats.map_err(|e| format!("{}: {e}", plan.kernel.display()))?;
            if blocked > 0 {
                println!(
                    "{}: {} blocked tasks, truth complete in {}",
                    blocked_dir.display(),
                    stats.blocked,
                    stats.blocked_complete
                );
                for (why, n) in &stats.blocked_skipped {
                    println!("    task skipped ({n}): {why}");
                }
            }
            println!(
                "{}: {} dumps from {} stops ({} not at EL{}, {} off the known stacks), truth complete in {}",
                out.display(),
                stats.samples,
                stats.stops,
                stats.not_el1,
                plan.kernel_el(),
                stats.off_stack,
                stats.complete
            );
            for (why, n) in &stats.doubts {
                println!("    truth incomplete ({n}): {why}");
            }
        }
        Cmd::Gen { seed, count, out } => {
            std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            let mut rng = Rng::new(seed);
            let program = Program::new(&mut rng);
            for (name, bytes) in orcwalk_sim::synth::tables(&program) {
                std::fs::write(out.join(name), bytes).map_err(|e| format!("{}: {e}", out.display()))?;
            }
            let mut corrupted = 0;
            for n in 0..count {
                let s = sample(&program, &mut rng, "program.orc");
                corrupted += u32::from(s.corruption.is_some());
                let path = out.join(format!("{n:05}.core"));
                std::fs::write(&path, s.dump.write()).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            println!(
                "{}: program.orc and {count} dumps ({corrupted} corrupted on purpose), seed {seed}",
                out.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("orcwalk-sim: {e}");
            ExitCode::from(2)
        }
    }
}
