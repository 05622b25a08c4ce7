//! Unwind latency, everything measured in one run so that only ratios are reported:
//!
//! - `per_frame/*`: the captured gcc -O2 user stacks that orcwalk proves (tests/corpus/user),
//!   unwound by the plain frame-pointer chain (two loads per frame, no checks: the floor), by
//!   orcwalk's validated walk, and by framehop from the binary's .eh_frame with its rule cache
//!   cold (new cache per stack) and warm (one cache throughout). `direct` reads the stack as a
//!   kernel does (one bounds-checked load from the stack's words); `dump` goes through the
//!   dump's region search, what the replays use. Throughput is in frames.
//! - `kernel_blocked/*`: the same for the blocked tasks of the 7.2 PREEMPT_RT corpus
//!   (tests/corpus/kernel/7.2-rt/blocked) against that kernel's table: what livepatch pays.
//! - `*/orcwalk_cached/direct`: orcwalk with a caller-owned ORC lookup cache (`OrcCache`, 1,024
//!   slots) kept across all walks and iterations (warm, like `framehop_warm`); measured apart
//!   from the walk without it.
//! - `livepatch/*`: verdicts for 1,000 blocked kernel-shaped synthetic tasks of 10-40 frames
//!   under both policies, the same tasks for both. The time is per 1,000 tasks; the throughput
//!   is in frames *walked* under that policy (a walk that stops early walks fewer).
//! - `generate/*`: ORC generation from the largest shipped ELF (and from
//!   `ORCWALK_BENCH_VMLINUX`, a debug vmlinux, when set), throughput in ELF bytes.
//!
//! `cargo bench --bench unwind`. The set-up checks that every unwinder returns exactly the
//! truth's frames on the stacks it times, so the work compared is the same.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use framehop::aarch64::{CacheAarch64, UnwindRegsAarch64, UnwinderAarch64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder};
use object::{Object, ObjectSection};
use orc_format::TableFile;
use orcwalk::code::TableCode;
use orcwalk::recovery::NoRecovery;
use orcwalk::{CachedCode, CodeInfo, Config, Frame, Memory, OrcCache, Policy, StackList, Verdict, walk};
use orcwalk_sim::dump::Dump;
use orcwalk_sim::replay::{self, Mode};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn user_dumps(build: &str) -> Vec<Dump> {
    let dir = root().join("tests/corpus/user").join(build);
    orcwalk_sim::dump::load_dir(&dir).expect("user corpus").into_iter().map(|(_, d)| d).collect()
}

/// Slots of the caller-owned ORC lookup cache the `orcwalk_cached` variants keep across walks.
const CACHE_SLOTS: usize = 1024;

/// Memory as a kernel reads it: the stack's words (the dump's region holding sp), one
/// subtraction, an alignment and bounds check and a load per read; no search over regions.
struct Direct {
    base: u64,
    words: Vec<u64>,
}

impl Direct {
    fn new(d: &Dump) -> Option<Direct> {
        let sp = d.info.sp;
        let r = d.regions.iter().find(|r| r.vaddr <= sp && sp - r.vaddr < r.data.len() as u64)?;
        r.vaddr.is_multiple_of(8).then(|| Direct {
            base: r.vaddr,
            words: r.data.chunks_exact(8).map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes"))).collect(),
        })
    }
}

impl Memory for Direct {
    #[inline]
    fn read_u64(&self, addr: u64) -> Option<u64> {
        let off = addr.wrapping_sub(self.base);
        if !off.is_multiple_of(8) {
            return None;
        }
        self.words.get(usize::try_from(off / 8).ok()?).copied()
    }
}

/// orcwalk's validated walk of one dump read through `mem`; the number of frames when reliable.
fn orcwalk_frames<M: Memory, C: CodeInfo>(d: &Dump, mem: &M, code: &C, cfg: &Config) -> Option<usize> {
    let i = &d.info;
    let mut n = 0;
    let v = walk(i.start(), cfg, mem, &StackList { stacks: &i.stacks }, code, &NoRecovery, |_: &Frame| {
        n += 1;
        true
    });
    (v == Verdict::Reliable).then_some(n)
}

/// orcwalk's frames (pcs) for one dump, to check against the truth in the set-up.
fn orcwalk_pcs<M: Memory>(d: &Dump, mem: &M, code: &TableCode<'_>, cfg: &Config) -> Option<Vec<u64>> {
    let i = &d.info;
    let mut pcs = Vec::new();
    let v = walk(i.start(), cfg, mem, &StackList { stacks: &i.stacks }, code, &NoRecovery, |f: &Frame| {
        pcs.push(f.pc);
        true
    });
    (v == Verdict::Reliable).then_some(pcs)
}

/// The plain chain from the start pc: pc, then {fp, lr} records until fp is 0. No checks
/// beyond what keeps it finite: the floor a validated walk is measured against.
fn fp_chain<M: Memory>(d: &Dump, mem: &M) -> usize {
    let mut n = 1;
    let mut fp = d.info.fp;
    while fp != 0 && n < 100 {
        let (Some(next), Some(ra)) = (mem.read_u64(fp), mem.read_u64(fp.wrapping_add(8))) else { break };
        black_box(ra);
        fp = next;
        n += 1;
    }
    n
}

fn framehop_unwinder(elf: &Path) -> UnwinderAarch64<Vec<u8>> {
    let bytes = std::fs::read(elf).expect("ELF");
    let file = object::File::parse(bytes.as_slice()).expect("ELF");
    let section = |name: &str| {
        file.section_by_name(name).map(|s| (s.address()..s.address() + s.size(), s.data().expect("data").to_vec()))
    };
    let (text_svma, text) = section(".text").expect(".text");
    let eh = section(".eh_frame").expect(".eh_frame");
    let hdr = section(".eh_frame_hdr");
    let got = section(".got");
    let info = ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma: Some(text_svma.clone()),
        text: Some(text),
        eh_frame_svma: Some(eh.0),
        eh_frame: Some(eh.1),
        eh_frame_hdr_svma: hdr.as_ref().map(|h| h.0.clone()),
        eh_frame_hdr: hdr.map(|h| h.1),
        got_svma: got.map(|g| g.0),
        ..Default::default()
    };
    let mut unwinder = UnwinderAarch64::new();
    // A static, non-PIE executable: mapped where it was linked.
    unwinder.add_module(Module::new("workload".into(), 0x400000..text_svma.end + 0x100000, 0, info));
    unwinder
}

/// framehop's frames for one dump (return addresses as they are, like the truth).
fn framehop_frames<M: Memory>(
    u: &UnwinderAarch64<Vec<u8>>,
    cache: &mut CacheAarch64,
    d: &Dump,
    mem: &M,
    out: &mut Vec<u64>,
) {
    out.clear();
    let i = &d.info;
    let mut read = |addr: u64| mem.read_u64(addr).ok_or(());
    let mut it = u.iter_frames(i.pc, UnwindRegsAarch64::new(i.lr, i.sp, i.fp), cache, &mut read);
    while let Ok(Some(f)) = it.next() {
        out.push(match f {
            FrameAddress::InstructionPointer(pc) => pc,
            FrameAddress::ReturnAddress(ra) => ra.get(),
        });
    }
}

/// What both stack groups measure alike: the plain chain and orcwalk (with and without the
/// lookup cache), each through the direct reader and the dump's.
fn chain_and_walks(
    g: &mut BenchmarkGroup<'_, WallTime>,
    chosen: &[(&Dump, Direct)],
    code: &TableCode<'_>,
    cfg: &Config,
) {
    g.bench_function("fp_chain/direct", |b| b.iter(|| chosen.iter().map(|(d, m)| fp_chain(d, m)).sum::<usize>()));
    g.bench_function("fp_chain/dump", |b| b.iter(|| chosen.iter().map(|(d, _)| fp_chain(d, *d)).sum::<usize>()));
    g.bench_function("orcwalk/direct", |b| {
        b.iter(|| chosen.iter().map(|(d, m)| orcwalk_frames(d, m, code, cfg).unwrap_or(0)).sum::<usize>())
    });
    g.bench_function("orcwalk/dump", |b| {
        b.iter(|| chosen.iter().map(|(d, _)| orcwalk_frames(d, *d, code, cfg).unwrap_or(0)).sum::<usize>())
    });
    g.bench_function("orcwalk_cached/direct", |b| {
        let cache = OrcCache::<CACHE_SLOTS>::new();
        let cached = CachedCode { code, cache: Some(&cache) };
        b.iter(|| chosen.iter().map(|(d, m)| orcwalk_frames(d, m, &cached, cfg).unwrap_or(0)).sum::<usize>())
    });
}

fn per_frame(c: &mut Criterion) {
    let build = "gcc-O2";
    let dumps = user_dumps(build);
    let table_bytes = std::fs::read(root().join("tests/corpus/user").join(build).join("program.orc")).expect("table");
    let table = TableFile::parse(&table_bytes).expect("table");
    let code = replay::code(&dumps[0].info, table);
    let cfg = replay::config(&dumps[0].info, Policy::Orcwalk, Mode::default());
    // The same walk with the program's text: the call-site witnesses (the instruction before
    // every return address, the callee's bounds) as a kernel runs them.
    let text = orcwalk_sim::text::ImageText::from_elf(
        &std::fs::read(root().join("tests/fixtures/user/workload-gcc-O2")).expect("program"),
    )
    .expect("text");
    let view = text.view();
    let code_text = TableCode { text: Some(&view), ..code };
    let unwinder = framehop_unwinder(&root().join("tests/fixtures/user/workload-gcc-O2"));
    // The stacks every unwinder gets exactly right, through both readers: same work for all.
    let mut cache = CacheAarch64::new();
    let mut fh = Vec::new();
    let chosen: Vec<(&Dump, Direct)> = dumps
        .iter()
        .filter(|d| d.info.truth_complete)
        .filter_map(|d| Some((d, Direct::new(d)?)))
        .filter(|(d, m)| {
            let truth = Some(d.info.truth.len());
            orcwalk_frames(d, *d, &code, &cfg) == truth
                && orcwalk_frames(d, m, &code, &cfg) == truth
                && orcwalk_frames(d, *d, &code_text, &cfg) == truth
                && fp_chain(d, *d) == d.info.truth.len()
                && fp_chain(d, m) == d.info.truth.len()
        })
        .filter(|(d, m)| {
            framehop_frames(&unwinder, &mut cache, d, m, &mut fh);
            fh == d.info.truth
        })
        .collect();
    let orcwalk_proven = dumps.iter().filter(|d| orcwalk_frames(d, *d, &code, &cfg).is_some()).count();
    let frames: usize = chosen.iter().map(|(d, _)| d.info.truth.len()).sum();
    eprintln!(
        "per_frame: {} of {} {build} stacks (orcwalk proves {orcwalk_proven}; the chain, framehop and orcwalk all exact on these), {frames} frames",
        chosen.len(),
        dumps.len()
    );

    let mut g = c.benchmark_group("per_frame");
    g.throughput(Throughput::Elements(frames as u64));
    chain_and_walks(&mut g, &chosen, &code, &cfg);
    g.bench_function("orcwalk_with_text/direct", |b| {
        b.iter(|| chosen.iter().map(|(d, m)| orcwalk_frames(d, m, &code_text, &cfg).unwrap_or(0)).sum::<usize>())
    });
    g.bench_function("framehop_cold/direct", |b| {
        let mut out = Vec::with_capacity(64);
        b.iter(|| {
            let mut n = 0;
            for (d, m) in &chosen {
                let mut cache = CacheAarch64::new();
                framehop_frames(&unwinder, &mut cache, d, m, &mut out);
                n += out.len();
            }
            n
        })
    });
    g.bench_function("framehop_warm/direct", |b| {
        let mut out = Vec::with_capacity(64);
        let mut cache = CacheAarch64::new();
        b.iter(|| {
            let mut n = 0;
            for (d, m) in &chosen {
                framehop_frames(&unwinder, &mut cache, d, m, &mut out);
                n += out.len();
            }
            n
        })
    });
    g.finish();
}

/// The 7.2 PREEMPT_RT kernel's blocked tasks, walked from their saved context against that
/// kernel's table: the chain and orcwalk, both readers, on the tasks both get exactly right.
fn kernel_blocked(c: &mut Criterion) {
    let dir = root().join("tests/corpus/kernel/7.2-rt");
    let dumps: Vec<Dump> =
        orcwalk_sim::dump::load_dir(&dir.join("blocked")).expect("kernel corpus").into_iter().map(|(_, d)| d).collect();
    let table_bytes = std::fs::read(dir.join("blocked").join(&dumps[0].info.image_path)).expect("table");
    let table = TableFile::parse(&table_bytes).expect("table");
    let code = replay::code(&dumps[0].info, table);
    let cfg = replay::config(&dumps[0].info, Policy::Orcwalk, Mode::default());
    // The kernel's chain ends at the task's final record (fp 0 inside pt_regs): one more record
    // than frames; the truth's frames are the chain's minus that one.
    let chosen: Vec<(&Dump, Direct)> = dumps
        .iter()
        .filter(|d| d.info.truth_complete && !d.info.start_regs)
        .filter_map(|d| Some((d, Direct::new(d)?)))
        .filter(|(d, m)| {
            let truth = Some(d.info.truth.clone());
            orcwalk_pcs(d, *d, &code, &cfg) == truth && orcwalk_pcs(d, m, &code, &cfg) == truth
        })
        .collect();
    let frames: usize = chosen.iter().map(|(d, _)| d.info.truth.len()).sum();
    let chain: usize = chosen.iter().map(|(d, m)| fp_chain(d, m)).sum();
    eprintln!("orcwalk_cached: {CACHE_SLOTS} slots, {} bytes", std::mem::size_of::<OrcCache<CACHE_SLOTS>>());
    eprintln!(
        "kernel_blocked: {} of {} 7.2-rt blocked tasks (orcwalk exact on these), {frames} frames; the plain chain reads {chain} records",
        chosen.len(),
        dumps.len()
    );
    let mut g = c.benchmark_group("kernel_blocked");
    g.throughput(Throughput::Elements(frames as u64));
    chain_and_walks(&mut g, &chosen, &code, &cfg);
    g.finish();
}

fn livepatch(c: &mut Criterion) {
    use orcwalk_sim::synth::{Program, Rng, blocked_task};
    let mut rng = Rng::new(6);
    let program = Program::new(&mut rng);
    let table_bytes = program.table_file();
    let table = TableFile::parse(&table_bytes).expect("table");
    let mut tasks = Vec::new();
    while tasks.len() < 1000 {
        let depth = 9 + rng.below(31) as u32;
        if let Some(d) = blocked_task(&program, &mut rng, depth)
            && (10..=40).contains(&d.info.truth.len())
        {
            tasks.push(d);
        }
    }
    let code = replay::code(&tasks[0].info, table);
    // (tasks proven, frames walked) under `policy`, over the same 1,000 tasks.
    let verdicts = |policy: Policy| {
        let (mut reliable, mut walked) = (0, 0);
        for d in &tasks {
            let i = &d.info;
            let cfg = replay::config(i, policy, Mode::default());
            let v = walk(i.start(), &cfg, d, &StackList { stacks: &i.stacks }, &code, &NoRecovery, |_: &Frame| {
                walked += 1;
                true
            });
            reliable += usize::from(v == Verdict::Reliable);
        }
        (reliable, walked)
    };
    let frames: usize = tasks.iter().map(|d| d.info.truth.len()).sum();
    let (orc, main) = (verdicts(Policy::Orcwalk), verdicts(Policy::Mainline));
    eprintln!(
        "livepatch: 1000 tasks, {frames} frames; orcwalk reliable {}, {} frames walked; mainline reliable {}, {} frames walked",
        orc.0, orc.1, main.0, main.1
    );
    // Time per 1,000 tasks; throughput per frame walked under that policy.
    let mut g = c.benchmark_group("livepatch");
    g.throughput(Throughput::Elements(orc.1 as u64));
    g.bench_function("1000_tasks/orcwalk", |b| b.iter(|| verdicts(Policy::Orcwalk)));
    g.throughput(Throughput::Elements(main.1 as u64));
    g.bench_function("1000_tasks/mainline", |b| b.iter(|| verdicts(Policy::Mainline)));
    g.finish();
}

fn generation(c: &mut Criterion) {
    let mut elves = vec![root().join("tests/fixtures/user/workload-gcc-O2")];
    if let Some(v) = std::env::var_os("ORCWALK_BENCH_VMLINUX") {
        elves.push(PathBuf::from(v));
    }
    let mut g = c.benchmark_group("generate");
    g.sample_size(10);
    for elf in elves {
        let bytes = std::fs::read(&elf).expect("ELF");
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        let name = elf.file_name().map_or("elf".into(), |n| n.to_string_lossy().into_owned());
        g.bench_function(name, |b| {
            b.iter(|| {
                let image = orc_format::generate::ElfImage::parse(bytes.as_slice()).expect("ELF");
                orc_format::generate::generate(&image).expect("table").entries.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, per_frame, kernel_blocked, livepatch, generation);
criterion_main!(benches);
