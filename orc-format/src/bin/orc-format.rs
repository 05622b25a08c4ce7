//! `orc-format`: build, dump, summarise and check arm64 ORC tables.
//!
//! Exit status: 0 success, 1 `check` found mismatches, 2 the input could not be used, 141 (as a
//! shell shows a program killed by SIGPIPE) when the reader closed stdout before everything was
//! printed (`orc-format dump T | head`): the command stops at once, printing nothing on stderr,
//! and does not claim success for work it did not finish.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use orc_format::generate::{self, ElfImage, GenError};
use orc_format::{Kind, TableFile};

// This command's `println!` and `print!`: std's panic on a closed stdout ("failed printing to
// stdout: Broken pipe"), these end the program as described above.
macro_rules! println {
    ($($arg:tt)*) => { out(format_args!("{}\n", format_args!($($arg)*))) };
}
macro_rules! print {
    ($($arg:tt)*) => { out(format_args!($($arg)*)) };
}

fn out(args: std::fmt::Arguments<'_>) {
    orc_format::stdout::write_or_exit("orc-format", args);
}

#[derive(Parser)]
#[command(version, about = "arm64 ORC tables from DWARF CFI: build, dump, stats, check")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the generator's fingerprint (kept beside shipped kernel tables as
    /// vmlinux.orc.generator: a table made by another generator is stale).
    Fingerprint,
    /// Build an ORC table file from an aarch64 ELF's .debug_frame/.eh_frame.
    Build {
        elf: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// Write a relocatable object with .orc_header/.orc_unwind_ip/.orc_unwind/.orc_lookup
        /// instead of a table file, ips relative to --text-symbol.
        #[arg(long)]
        elf_object: bool,
        /// The symbol the object's PREL32 relocations are expressed against.
        #[arg(long, default_value = "_text")]
        text_symbol: String,
        /// Keep every CFI row as the compiler wrote it, unproven (to show what proof cuts).
        #[arg(long)]
        unproven: bool,
    },
    /// Build a module's table (the `.orcwalk_module` section its .ko carries) from the .ko: the
    /// .ko is linked once by LD into a scratch image with each text section at its own address,
    /// the rows proven there, and written back as offsets into the named sections.
    BuildModule {
        ko: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// The linker (the kernel build's $(LD)).
        #[arg(long, default_value = "ld.lld")]
        ld: String,
    },
    /// Print a table's header and entries, or only the entry that covers --pc. TABLE is a table
    /// file or a linked ELF holding the ORC sections.
    Dump {
        table: PathBuf,
        /// Address to look up (hex with 0x, or decimal).
        #[arg(long, value_parser = parse_addr)]
        pc: Option<u64>,
    },
    /// Coverage and size figures for an ELF (generates in memory) or a table file.
    Stats { file: PathBuf },
    /// Compare a table with the ELF's CFI at every instruction; lists mismatches.
    Check { elf: PathBuf, table: PathBuf },
}

fn parse_addr(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("bad address `{s}`: {e}"))
}

fn table_file<'a>(bytes: &'a [u8], path: &Path) -> Result<TableFile<'a>, String> {
    TableFile::parse(bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn err(p: &Path) -> impl Fn(GenError) -> String + '_ {
    move |e| format!("{}: {e}", p.display())
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.cmd {
        Cmd::Fingerprint => println!("{}", generate::FINGERPRINT),
        Cmd::Build { elf, output, elf_object, text_symbol, unproven } => {
            let cache = generate::open_cached(&elf).map_err(err(&elf))?;
            let image = ElfImage::parse(&cache).map_err(err(&elf))?;
            let options = generate::Options { prove: !unproven, anchor: !unproven };
            let generated = generate::generate_with(&image, options).map_err(err(&elf))?;
            let out = if elf_object {
                let addr = generate::elf::symbol_address(&cache, &text_symbol)
                    .ok_or_else(|| format!("{}: no text symbol `{text_symbol}`", elf.display()))?;
                generate::sections::write_object(&generated, &text_symbol, addr).map_err(err(&elf))?
            } else {
                generated.to_file_bytes().map_err(err(&elf))?
            };
            std::fs::write(&output, &out).map_err(|e| format!("{}: {e}", output.display()))?;
            let s = &generated.stats;
            println!(
                "{}: {} entries from {} FDEs, {} bytes; {} unsupported rows; {} functions without CFI",
                output.display(),
                s.entries,
                s.fdes_used,
                out.len(),
                s.unsupported.values().sum::<u64>(),
                s.functions_without_cfi.len()
            );
        }
        Cmd::BuildModule { ko, output, ld } => {
            let mut work = output.clone().into_os_string();
            work.push(".work");
            let work = PathBuf::from(work);
            std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
            let built = orc_format::ko::build(&ko, &ld, &work);
            // The scratch link is of no use once the table is made, or when it could not be.
            let _ = std::fs::remove_dir_all(&work);
            // No CFI at all (a module of assembly without CFI directives): no table, which the
            // kernel takes as "unreliable through this module", not a failed build.
            if let Err(generate::GenError::NoCfi) = built {
                let _ = std::fs::remove_file(&output);
                println!("{}: no CFI: no table written (stacks through it are unreliable)", ko.display());
                return Ok(ExitCode::SUCCESS);
            }
            let (bytes, entries) = built.map_err(err(&ko))?;
            std::fs::write(&output, &bytes).map_err(|e| format!("{}: {e}", output.display()))?;
            println!("{}: {entries} entries, {} bytes", output.display(), bytes.len());
        }
        Cmd::Dump { table, pc } => {
            let bytes = generate::read_file(&table).map_err(err(&table))?;
            if !bytes.starts_with(&orc_format::file::MAGIC) {
                let t = generate::sections::read_linked(bytes.as_slice()).map_err(err(&table))?;
                println!("ELF sections: {} entries, .orc_unwind_ip at {:#x}", t.len(), t.ip_table_addr());
                let lines: Vec<String> = match pc {
                    Some(pc) => vec![
                        t.find(pc)
                            .map_or(format!("{pc:#x}: no entry"), |(ip, e)| format!("{pc:#x}: entry at {ip:#x}: {e}")),
                    ],
                    None => t.iter().map(|(ip, e)| format!("{ip:#x}: {e}")).collect(),
                };
                println!("{}", lines.join("\n"));
                return Ok(ExitCode::SUCCESS);
            }
            let file = table_file(&bytes, &table)?;
            match pc {
                Some(pc) => match file.table.find(pc) {
                    Some((ip, e)) => println!("{pc:#x}: entry at {ip:#x} (+{:#x}): {e}", pc - ip),
                    None => println!("{pc:#x}: no entry (below the table)"),
                },
                None => {
                    println!("format v{} layout {:#018x}", file.format.version, file.format.layout_hash);
                    println!("image id {}", file.image_id());
                    println!(
                        "rows {}",
                        if file.proven() {
                            "proven along control flow"
                        } else {
                            "as the compiler wrote them (unproven)"
                        }
                    );
                    println!(
                        "{} entries, index {}",
                        file.table.len(),
                        file.table.index().map_or("none".into(), |ix| format!(
                            "{} blocks from {:#x}",
                            ix.words.len() / 4 - 1,
                            ix.base
                        ))
                    );
                    for (ip, e) in file.table.iter() {
                        println!("{ip:#x}: {e}");
                    }
                }
            }
        }
        Cmd::Stats { file } => {
            let cache = generate::open_cached(&file).map_err(err(&file))?;
            let magic = object::ReadRef::read_bytes_at(&cache, 0, 8).unwrap_or(&[]);
            if magic == orc_format::file::MAGIC {
                let bytes = generate::read_file(&file).map_err(err(&file))?;
                let t = table_file(&bytes, &file)?;
                let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
                for (_, e) in t.table.iter() {
                    let k = match e.kind() {
                        Some(Kind::Undefined) => "undefined",
                        Some(Kind::EndOfStack) => "end_of_stack",
                        Some(Kind::Call) if e.sp_reg() == Some(orc_format::Reg::Fp) => "call (CFA on x29)",
                        Some(Kind::Call) => "call (CFA on sp)",
                        Some(Kind::Regs) => "regs",
                        Some(Kind::RegsPartial) => "regs_partial",
                        None => "reserved",
                    };
                    *kinds.entry(k.into()).or_default() += 1;
                }
                println!(
                    "table {}: {} entries, {} bytes, image id {}",
                    file.display(),
                    t.table.len(),
                    bytes.len(),
                    t.image_id()
                );
                for (k, n) in kinds {
                    println!("    {n:>8}  {k}");
                }
            } else {
                let image = ElfImage::parse(&cache).map_err(err(&file))?;
                let generated = generate::generate(&image).map_err(err(&file))?;
                print!("{}", generated.stats);
            }
        }
        Cmd::Check { elf, table } => {
            let cache = generate::open_cached(&elf).map_err(err(&elf))?;
            let image = ElfImage::parse(&cache).map_err(err(&elf))?;
            // In an object file the CFI's code addresses are relocations still to be applied:
            // the generator and the checker would both read the unrelocated fields, and agree.
            if object::File::parse(&cache).is_ok_and(|f| object::Object::kind(&f) == object::ObjectKind::Relocatable) {
                return Err(format!(
                    "{} is a relocatable object: its CFI's addresses are not final until it is linked, so no table can be checked against it (check the linked image)",
                    elf.display()
                ));
            }
            let table_bytes = generate::read_file(&table).map_err(err(&table))?;
            let file = table_file(&table_bytes, &table)?;
            if !file.matches(&image.image_id) {
                return Err(format!(
                    "{} is not a table for {}: the table was made from image id {}, the ELF has {}{}",
                    table.display(),
                    elf.display(),
                    file.image_id(),
                    image.image_id,
                    if file.image_id().is_some() { "" } else { " (a table without an id matches no ELF)" }
                ));
            }
            let report = generate::check(&image, &file.table).map_err(err(&elf))?;
            for m in &report.mismatches {
                println!("mismatch {m}");
            }
            let p = &report.proof;
            println!(
                "checked {} addresses with CFI and {} without: {} mismatches ({} refused, {} anchored to sp, {} contradicted along some path)",
                report.cfi_addresses,
                report.gap_addresses,
                report.mismatch_count,
                report.refused_addresses,
                report.anchored_addresses,
                report.contradicted_addresses
            );
            println!(
                "accepted as refused: {} addresses where the CFI has a rule and the table says UNDEFINED ({:.2} % of the addresses with CFI), {} of them where the proof of the image keeps a row",
                report.refused_addresses,
                percent(report.refused_addresses, report.cfi_addresses),
                report.refused_where_proven
            );
            println!(
                "proof of the image: {} instructions proven, {} cut, {} not judged (UNDEFINED or not a call frame); {} functions without CFI given derived rows ({} addresses in the table agree)",
                p.proven, p.cut, p.refused, report.derived.functions, report.derived_addresses
            );
            if report.mismatch_count > 0 {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `part` as a percentage of `whole` (0 for an empty whole).
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { 100.0 * part as f64 / whole as f64 }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("orc-format: {msg}");
            ExitCode::from(2)
        }
    }
}
