//! The C ABI, shaped like the kernel's `arch_stack_walk_reliable(consume_entry, cookie, task)`.
//! Declared in `kernel-crate/include/orcwalk.h`.
//!
//! This is the crate's only `unsafe` code, and it only turns the C caller's pointers into
//! references and slices; the caller's obligations are stated on each function. Memory of the
//! walked stack is never dereferenced here: it is read through the caller's `read` callback, which
//! in a kernel wraps `copy_from_kernel_nofault`.

use core::ffi::{CStr, c_char, c_void};

use orc_format::module::ModuleTable;
use orc_format::{IndexParts, OrcTable, TableError, TableFile};

use crate::code::{CachedCode, FtraceFrame, FunctionBounds, Loaded, OrcCache, TableCode, TextInMemory};
use crate::frame::Frame;
use crate::layout::KernelLayout;
use crate::memory::Memory;
use crate::recovery::{ReturnRecovery, Trampoline};
use crate::stacks::{StackInfo, StackKind, Stacks};
use crate::verdict::{Reason, Verdict};
use crate::walk::{Config, EndRule, Policy, Start, walk};
use orc_format::OrcEntry;

/// `bool (*consume)(void *cookie, unsigned long pc)`: false stops the walk (buffer full).
pub type ConsumeFn = extern "C" fn(cookie: *mut c_void, pc: u64) -> bool;
/// Non-faulting 8-byte read: true and `*out` set on success.
pub type ReadFn = extern "C" fn(ctx: *mut c_void, addr: u64, out: *mut u64) -> bool;
/// The function `[*start, *end)` containing `pc` (a kernel's `kallsyms_lookup_size_offset`).
pub type FunctionFn = extern "C" fn(ctx: *mut c_void, pc: u64, start: *mut u64, end: *mut u64) -> bool;
/// The module whose text holds `pc`: its table (placed by [`orcwalk_place_module_table`] when it
/// loaded) and the text range it covers, kept by the caller while the module's text can be on a
/// stack (a kernel keeps it in the module); null when `pc` is in no module with a table. A
/// pointer, not a copy: the walk's stack budget.
pub type ModuleFn = extern "C" fn(ctx: *mut c_void, pc: u64) -> *const OrcwalkModuleText;
/// Where a module's section of this name (`name_len` bytes, not NUL-terminated) and size was
/// loaded: true and `*addr` set, false when it was not loaded.
pub type SectionFn = extern "C" fn(ctx: *mut c_void, name: *const u8, name_len: u32, size: u64, addr: *mut u64) -> bool;
/// Original return address for a trampoline (`which`: 0 fgraph, 1 kretprobe), keyed by fp.
pub type RecoverFn = extern "C" fn(ctx: *mut c_void, which: u32, fp: u64, pc: u64, out: *mut u64) -> bool;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OrcwalkTable {
    /// The `.orc_unwind_ip` slots in memory.
    pub ip: *const u8,
    pub orc: *const u8,
    pub num_entries: u32,
    pub lookup_blocks: u32,
    /// `lookup_blocks + 1` u32 words, or null.
    pub lookup: *const u32,
    pub lookup_base: u64,
    /// The address slot 0 stands for (`ip = ip_addr + 4 * i + slot[i]`): `ip` itself for the
    /// linked section, the table file's address plus the KASLR offset for a loaded file.
    pub ip_addr: u64,
}

/// A module's text and its table, as the `module` callback gives them.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OrcwalkModuleText {
    pub table: OrcwalkTable,
    pub text_start: u64,
    pub text_end: u64,
}

/// A table file parsed by [`orcwalk_parse_table_file`]: the table, ready for the walk, and what
/// the caller must check before using it (that the image id is the running image's).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OrcwalkTableFile {
    pub table: OrcwalkTable,
    pub image_id: [u8; 20],
    pub image_id_len: u32,
    /// 0 none, 1 GNU build-id, 2 text hash.
    pub image_id_kind: u32,
    /// 1: every row proven along control flow (pass [`FLAG_ROWS_PROVEN`] to the walk).
    pub proven: u32,
    /// Why the file was refused (`orcwalk_table_error_name`); 0 when accepted.
    pub error: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OrcwalkLayout {
    pub pt_regs_size: u64,
    pub x29: u64,
    pub x30: u64,
    pub sp: u64,
    pub pc: u64,
    pub pstate: u64,
    pub stackframe: u64,
    pub meta_records: u32,
    pub va_bits: u32,
}

impl From<OrcwalkLayout> for KernelLayout {
    fn from(l: OrcwalkLayout) -> KernelLayout {
        KernelLayout {
            pt_regs_size: l.pt_regs_size,
            x29: l.x29,
            x30: l.x30,
            sp: l.sp,
            pc: l.pc,
            pstate: l.pstate,
            stackframe: l.stackframe,
            meta_records: l.meta_records != 0,
            va_bits: l.va_bits,
        }
    }
}

impl From<KernelLayout> for OrcwalkLayout {
    fn from(l: KernelLayout) -> OrcwalkLayout {
        OrcwalkLayout {
            pt_regs_size: l.pt_regs_size,
            x29: l.x29,
            x30: l.x30,
            sp: l.sp,
            pc: l.pc,
            pstate: l.pstate,
            stackframe: l.stackframe,
            meta_records: u32::from(l.meta_records),
            va_bits: l.va_bits,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OrcwalkStack {
    pub low: u64,
    pub high: u64,
    /// 0 task, 1 irq, 2 overflow, 3 sdei normal, 4 sdei critical, 5 efi.
    pub kind: u32,
    pub pad: u32,
}

/// [`OrcwalkContext::flags`]: require two witnesses for every frame.
pub const FLAG_STRICT: u32 = 1;
/// [`OrcwalkContext::flags`]: the table's rows were proven along control flow.
pub const FLAG_ROWS_PROVEN: u32 = 2;

/// Everything the walk needs from the kernel, filled per call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OrcwalkContext {
    pub table: OrcwalkTable,
    pub layout: OrcwalkLayout,
    pub text_start: u64,
    pub text_end: u64,
    pub entry_start: u64,
    pub entry_end: u64,
    pub fgraph_return: u64,
    pub kretprobe_trampoline: u64,
    pub stacks: *const OrcwalkStack,
    pub nr_stacks: u32,
    /// 1: the walked task is blocked (only its task stack is allowed).
    pub task_stack_only: u32,
    /// Start state. `start_regs` 1: pc/sp/fp/lr are exception registers; 0: pc is a return
    /// address with the sp and fp of the function it returns into (caller or cpu_context).
    pub start_regs: u32,
    /// 1: mainline policy (no ORC, stop at exception boundaries).
    pub mainline: u32,
    pub pc: u64,
    pub sp: u64,
    pub fp: u64,
    pub lr: u64,
    pub max_frames: u32,
    /// Bit 0 ([`FLAG_STRICT`]): two witnesses for every frame. Bit 1 ([`FLAG_ROWS_PROVEN`]): the
    /// table's rows were proven along control flow by `orc-format` (it writes this mark into
    /// table files; a kernel loading tables it built itself sets it).
    pub flags: u32,
    pub read: ReadFn,
    pub recover: Option<RecoverFn>,
    pub ctx: *mut c_void,
    /// Function bounds, or null. With them every return address's call is checked against the
    /// function it returns from (`Reason::WrongCallee`), and x30 after an exception against the
    /// row's return-address slot (`Reason::LrContradictsRow`).
    pub function: Option<FunctionFn>,
    /// ftrace's trampoline frame; `callsite` 0 when the kernel has none.
    pub ftrace: OrcwalkFtrace,
    /// Module text and tables, or null: then module code is not text, and a stack through it
    /// is unreliable.
    pub module: Option<ModuleFn>,
    /// A lookup cache the caller owns (`struct orcwalk_cache`), or null. Valid for one set of
    /// tables: the caller empties it (every byte 0xff) when a table is added or removed. Used by
    /// one walk at a time.
    pub cache: *mut OrcwalkCache,
}

/// Slots of the C ABI's lookup cache (`ORCWALK_CACHE_SLOTS`).
pub const CACHE_SLOTS: usize = 512;

/// `struct orcwalk_cache`: an [`OrcCache`] C allocates (8 KiB); all bytes 0xff is empty.
pub type OrcwalkCache = OrcCache<CACHE_SLOTS>;

/// `ftrace_caller`'s frame, as C passes it (`struct orcwalk_ftrace`): the return address of its
/// call to the tracer callback (0: none), the frame's size, the first record's offset, and the
/// offsets of x29, the return address and sp in its `ftrace_regs`.
pub type OrcwalkFtrace = FtraceFrame;

/// The verdict in C: `reason` is `Reason as u32 + 1`, 0 when reliable.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct OrcwalkVerdict {
    pub reason: u32,
    pub pad: u32,
    pub pc: u64,
    pub fp: u64,
}

const EINVAL: i32 = 22;
const ENOEXEC: i32 = 8;

struct CMemory {
    read: ReadFn,
    ctx: *mut c_void,
}

impl Memory for CMemory {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        let mut out = 0u64;
        (self.read)(self.ctx, addr, &mut out).then_some(out)
    }
}

struct CRecovery {
    recover: Option<RecoverFn>,
    fgraph: u64,
    kretprobe: u64,
    ctx: *mut c_void,
}

impl ReturnRecovery for CRecovery {
    fn trampoline(&self, pc: u64) -> Option<Trampoline> {
        match pc {
            0 => None,
            _ if pc == self.fgraph => Some(Trampoline::FgraphReturn),
            _ if pc == self.kretprobe => Some(Trampoline::Kretprobe),
            _ => None,
        }
    }

    fn recover(&self, which: Trampoline, fp: u64, pc: u64) -> Option<u64> {
        let f = self.recover?;
        let mut out = 0u64;
        let which = match which {
            Trampoline::FgraphReturn => 0,
            Trampoline::Kretprobe => 1,
        };
        f(self.ctx, which, fp, pc, &mut out).then_some(out)
    }
}

struct CFunctions {
    function: Option<FunctionFn>,
    ctx: *mut c_void,
}

impl FunctionBounds for CFunctions {
    fn function(&self, pc: u64) -> Option<(u64, u64)> {
        let f = self.function?;
        let (mut start, mut end) = (0u64, 0u64);
        // A range that does not hold `pc` is no answer.
        (f(self.ctx, pc, &mut start, &mut end) && start <= pc && pc < end).then_some((start, end))
    }
}

struct CModules {
    module: Option<ModuleFn>,
    ctx: *mut c_void,
}

impl CModules {
    /// The module holding `pc`, its range checked (a range that does not hold `pc` is no
    /// answer).
    fn at(&self, pc: u64) -> Option<&OrcwalkModuleText> {
        let f = self.module?;
        // SAFETY: the callback's contract: null, or a struct that stays while the module's
        // text can be on a stack.
        let m = unsafe { f(self.ctx, pc).as_ref() }?;
        (m.text_start <= pc && pc < m.text_end).then_some(m)
    }
}

impl Loaded for CModules {
    fn is_loaded_text(&self, pc: u64) -> bool {
        self.at(pc).is_some()
    }

    /// Out of line: the table view stays off the walk's own frame (the kernel's stack budget).
    #[inline(never)]
    fn loaded_orc(&self, pc: u64) -> Option<OrcEntry> {
        let m = self.at(pc)?;
        // SAFETY: a table placed by orcwalk_place_module_table (the callback's contract).
        let (ips, orc, index) = unsafe { table_parts(&m.table) }?;
        let table = OrcTable::from_validated_parts(ips, m.table.ip_addr, orc, index)?;
        table.find_entry(pc)
    }
}

/// The caller's stack list, read in place (copying it would cost the walk's stack budget).
struct CStacks<'a>(&'a [OrcwalkStack]);

impl CStacks<'_> {
    fn all(&self) -> impl Iterator<Item = StackInfo> + '_ {
        self.0.iter().filter_map(|s| Some(StackInfo { low: s.low, high: s.high, kind: StackKind::from_code(s.kind)? }))
    }
}

impl Stacks for CStacks<'_> {
    fn find(&self, addr: u64, size: u64) -> Option<StackInfo> {
        self.all().find(|s| s.contains(addr, size))
    }

    fn task_stack(&self) -> Option<StackInfo> {
        self.all().find(|s| s.kind == StackKind::Task)
    }
}

/// # Safety
/// `t.ip` and `t.orc` point to `num_entries` 4- and 8-byte slots, `t.lookup` to
/// `lookup_blocks + 1` words or is null, all readable for the duration of the call, and `t.ip`
/// stands for `t.ip_addr`; the memory stays for `'a`, which the caller chooses.
unsafe fn table_parts<'a>(t: &OrcwalkTable) -> Option<(&'a [u8], &'a [u8], Option<IndexParts<'a>>)> {
    if t.ip.is_null() || t.orc.is_null() {
        return None;
    }
    let n = usize::try_from(t.num_entries).ok()?;
    // SAFETY: the caller guarantees the extents above.
    let ips = unsafe { core::slice::from_raw_parts(t.ip, n.checked_mul(4)?) };
    // SAFETY: as above.
    let orc = unsafe { core::slice::from_raw_parts(t.orc, n.checked_mul(8)?) };
    let index = if t.lookup.is_null() || t.lookup_blocks == 0 {
        None
    } else {
        let words = usize::try_from(t.lookup_blocks).ok()?.checked_add(1)?.checked_mul(4)?;
        // SAFETY: as above; u32 words viewed as bytes (little-endian target).
        let bytes = unsafe { core::slice::from_raw_parts(t.lookup.cast::<u8>(), words) };
        Some(IndexParts { base: t.lookup_base, words: bytes })
    };
    Some((ips, orc, index))
}

/// Validates a table once (boot, module load). 0 when usable, -EINVAL otherwise.
///
/// # Safety
/// `table` points to a valid `OrcwalkTable` whose pointers satisfy `table_parts`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn orcwalk_validate_table(table: *const OrcwalkTable) -> i32 {
    // SAFETY: the caller passes a valid pointer or null.
    let Some(t) = (unsafe { table.as_ref() }) else { return -EINVAL };
    // SAFETY: the caller's obligations are this function's.
    let Some((ips, orc, index)) = (unsafe { table_parts(t) }) else { return -EINVAL };
    match OrcTable::from_parts(ips, t.ip_addr, orc, index) {
        Ok(_) => 0,
        Err(_) => -EINVAL,
    }
}

/// Walks a stack: calls `consume(cookie, pc)` for every frame and returns 0 when the stack is
/// reliable, -EINVAL otherwise (as `arch_stack_walk_reliable`). `out`, if not null, receives
/// the reason, pc and fp.
///
/// # Safety
/// `ctx` points to a valid `OrcwalkContext` whose table was accepted by
/// `orcwalk_validate_table`, whose `stacks` points to `nr_stacks` entries, and whose callbacks are
/// safe to call with `ctx.ctx`. `out` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn orcwalk_stack_walk_reliable(
    consume: ConsumeFn,
    cookie: *mut c_void,
    ctx: *const OrcwalkContext,
    out: *mut OrcwalkVerdict,
) -> i32 {
    // SAFETY: the caller passes a valid pointer or null.
    let Some(c) = (unsafe { ctx.as_ref() }) else { return -EINVAL };
    let verdict = 'v: {
        let bad = Verdict::Unreliable { reason: Reason::BadStart, pc: c.pc, fp: c.fp };
        // SAFETY: the caller's obligations.
        let Some((ips, orc, index)) = (unsafe { table_parts(&c.table) }) else { break 'v bad };
        let Some(table) = OrcTable::from_validated_parts(ips, c.table.ip_addr, orc, index) else { break 'v bad };
        let Ok(n) = usize::try_from(c.nr_stacks) else { break 'v bad };
        if c.stacks.is_null() {
            break 'v bad;
        }
        // SAFETY: the caller guarantees `nr_stacks` readable entries.
        let given = unsafe { core::slice::from_raw_parts(c.stacks, n) };
        if given.iter().any(|s| StackKind::from_code(s.kind).is_none()) {
            break 'v bad;
        }
        let layout = KernelLayout::from(c.layout);
        let cfg = Config {
            policy: if c.mainline != 0 { Policy::Mainline } else { Policy::Orcwalk },
            end: EndRule::FinalRecord,
            layout,
            max_frames: c.max_frames,
            task_stack_only: c.task_stack_only != 0,
            strict: c.flags & FLAG_STRICT != 0,
        };
        let start = if c.start_regs != 0 {
            Start::Regs { pc: c.pc, sp: c.sp, fp: c.fp, lr: c.lr }
        } else {
            Start::Call { pc: c.pc, sp: c.sp, fp: c.fp }
        };
        let code = TableCode {
            table,
            text_start: c.text_start,
            text_end: c.text_end,
            entry_start: c.entry_start,
            entry_end: c.entry_end,
            text: None,
            proven: c.flags & FLAG_ROWS_PROVEN != 0,
            sigreturn: None,
            ftrace: Some(&c.ftrace).filter(|f| f.callsite != 0),
        };
        let mem = CMemory { read: c.read, ctx: c.ctx };
        // Instructions are read like any other kernel memory, through the caller's reader.
        let functions = CFunctions { function: c.function, ctx: c.ctx };
        let modules = CModules { module: c.module, ctx: c.ctx };
        let code = TextInMemory { code: &code, mem: &mem, functions: &functions, loaded: &modules };
        // SAFETY: the caller passes null or its cache, used by this walk alone.
        let cache = unsafe { c.cache.as_ref() };
        let code = CachedCode { code: &code, cache };
        let rec =
            CRecovery { recover: c.recover, fgraph: c.fgraph_return, kretprobe: c.kretprobe_trampoline, ctx: c.ctx };
        walk(start, &cfg, &mem, &CStacks(given), &code, &rec, |f: &Frame| consume(cookie, f.pc))
    };
    let (code, v) = match verdict {
        Verdict::Reliable => (0, OrcwalkVerdict::default()),
        Verdict::Unreliable { reason, pc, fp } => {
            (-EINVAL, OrcwalkVerdict { reason: (reason as u32).saturating_add(1), pad: 0, pc, fp })
        }
    };
    // SAFETY: the caller passes a writable pointer or null.
    if let Some(o) = unsafe { out.as_mut() } {
        *o = v;
    }
    code
}

/// The number of entries of a module's table (the `.orcwalk_module` section of its `.ko`, `len`
/// bytes at `bytes`), to size the buffers [`orcwalk_place_module_table`] fills. 0 and `*entries`
/// set when the table is well formed and its rows proven; -ENOEXEC (not such a table, or
/// another format) or -EINVAL otherwise.
///
/// # Safety
/// `bytes` points to `len` readable bytes; `entries` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn orcwalk_module_table_entries(bytes: *const u8, len: u64, entries: *mut u32) -> i32 {
    // SAFETY: the caller's obligations.
    let Some(out) = (unsafe { entries.as_mut() }) else { return -EINVAL };
    // SAFETY: as above.
    match unsafe { module_table(bytes, len) } {
        Ok(t) => {
            *out = t.len();
            0
        }
        Err(e) => e,
    }
}

/// # Safety
/// `bytes` is null or points to `len` readable bytes that outlive the result.
unsafe fn module_table<'a>(bytes: *const u8, len: u64) -> Result<ModuleTable<'a>, i32> {
    let n = usize::try_from(len).map_err(|_| -EINVAL)?;
    if bytes.is_null() {
        return Err(-EINVAL);
    }
    // SAFETY: the caller guarantees `len` readable bytes.
    let data = unsafe { core::slice::from_raw_parts(bytes, n) };
    match ModuleTable::parse(data) {
        Ok(t) if t.proven() => Ok(t),
        Ok(_) => Err(-EINVAL),
        Err(TableError::BadMagic | TableError::FormatMismatch { .. }) => Err(-ENOEXEC),
        Err(_) => Err(-EINVAL),
    }
}

/// Places a module's table once it is loaded: `section(ctx, name, name_len, size, &addr)` says
/// where each text section went; `ip` (4 bytes an entry) and `orc` (8 bytes an entry) hold
/// `capacity` entries ([`orcwalk_module_table_entries`]) and must stay while the module's text
/// can be on a stack. 0 and `*out` filled (a validated table, sections in address order) or
/// -ENOEXEC / -EINVAL, when the table is not well formed, its rows not proven, no section was
/// loaded, or the placed sections overlap or span more than 2 GiB.
///
/// # Safety
/// `bytes` points to `len` readable bytes; `ip` and `orc` to `capacity` writable entries each;
/// `out` is writable; `section` is safe to call with `ctx`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn orcwalk_place_module_table(
    bytes: *const u8,
    len: u64,
    section: SectionFn,
    ctx: *mut c_void,
    ip: *mut u8,
    orc: *mut u8,
    capacity: u32,
    out: *mut OrcwalkTable,
) -> i32 {
    // SAFETY: the caller's obligations.
    let Some(out) = (unsafe { out.as_mut() }) else { return -EINVAL };
    // SAFETY: as above.
    let t = match unsafe { module_table(bytes, len) } {
        Ok(t) => t,
        Err(e) => return e,
    };
    let Ok(n) = usize::try_from(capacity) else { return -EINVAL };
    if ip.is_null() || orc.is_null() || t.len() > capacity {
        return -EINVAL;
    }
    let (Some(ip_len), Some(orc_len)) = (n.checked_mul(4), n.checked_mul(8)) else { return -EINVAL };
    // SAFETY: the caller guarantees `capacity` writable entries in each buffer.
    let ips = unsafe { core::slice::from_raw_parts_mut(ip, ip_len) };
    // SAFETY: as above.
    let orcs = unsafe { core::slice::from_raw_parts_mut(orc, orc_len) };
    let address = |name: &[u8], size: u64| {
        let mut addr = 0u64;
        let name_len = u32::try_from(name.len()).ok()?;
        section(ctx, name.as_ptr(), name_len, size, &mut addr).then_some(addr)
    };
    let Ok(placed) = t.place(address, ips, orcs) else { return -EINVAL };
    *out = OrcwalkTable {
        ip: ip.cast_const(),
        orc: orc.cast_const(),
        num_entries: placed.len,
        lookup_blocks: 0,
        lookup: core::ptr::null(),
        lookup_base: 0,
        ip_addr: placed.ip_addr,
    };
    0
}

/// Table-file refusals, as `OrcwalkTableFile::error` numbers them.
fn table_error_code(e: &TableError) -> u32 {
    match e {
        TableError::Truncated { .. } => 1,
        TableError::BadMagic => 2,
        TableError::FormatMismatch { .. } => 3,
        TableError::BadHeader { .. } => 4,
        TableError::LengthMismatch { .. } => 5,
        TableError::Unsorted { .. } => 6,
        TableError::IpOverflow { .. } => 7,
        TableError::ReservedValue { .. } => 8,
        TableError::MissingTerminator => 9,
        TableError::BadIndex { .. } => 10,
    }
}

/// Parses and validates a table file written by `orc-format build` (`len` bytes at `bytes`) for
/// an image loaded `slide` bytes above its link address (a kernel's KASLR offset), so that a
/// kernel can load its table at run time. 0 and `*out` filled when the file is a well-formed
/// table of this format; -ENOEXEC (wrong magic or format) or -EINVAL otherwise, with
/// `out.error` saying why. The caller must still compare `out.image_id` with its own image's
/// id: a table for other code walks wrong with every check passing.
///
/// # Safety
/// `bytes` points to `len` readable bytes that stay unchanged while the table is used; `out` is
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn orcwalk_parse_table_file(
    bytes: *const u8,
    len: u64,
    slide: u64,
    out: *mut OrcwalkTableFile,
) -> i32 {
    // SAFETY: the caller passes a writable pointer or null.
    let Some(out) = (unsafe { out.as_mut() }) else { return -EINVAL };
    let empty = OrcwalkTable {
        ip: core::ptr::null(),
        orc: core::ptr::null(),
        num_entries: 0,
        lookup_blocks: 0,
        lookup: core::ptr::null(),
        lookup_base: 0,
        ip_addr: 0,
    };
    *out = OrcwalkTableFile { table: empty, image_id: [0; 20], image_id_len: 0, image_id_kind: 0, proven: 0, error: 0 };
    let Ok(n) = usize::try_from(len) else { return -EINVAL };
    if bytes.is_null() {
        out.error = 1;
        return -EINVAL;
    }
    // SAFETY: the caller guarantees `len` readable bytes.
    let data = unsafe { core::slice::from_raw_parts(bytes, n) };
    let refuse = |out: &mut OrcwalkTableFile, e: TableError| {
        out.error = table_error_code(&e);
        if matches!(e, TableError::BadMagic | TableError::FormatMismatch { .. }) { -ENOEXEC } else { -EINVAL }
    };
    let file = match TableFile::parse_at(data, slide) {
        Ok(f) => f,
        Err(e) => return refuse(out, e),
    };
    let (ips, orc) = file.table.raw_parts();
    let index = file.table.index();
    let id = file.image_id();
    let id_bytes = id.bytes();
    out.image_id.iter_mut().zip(id_bytes).for_each(|(d, s)| *d = *s);
    out.image_id_len = id_bytes.len() as u32;
    out.image_id_kind = id.kind() as u32;
    out.proven = u32::from(file.proven());
    out.table = OrcwalkTable {
        ip: ips.as_ptr(),
        orc: orc.as_ptr(),
        num_entries: file.table.len(),
        lookup_blocks: index.map_or(0, |ix| (ix.words.len() / 4).saturating_sub(1) as u32),
        lookup: index.map_or(core::ptr::null(), |ix| ix.words.as_ptr().cast::<u32>()),
        lookup_base: index.map_or(0, |ix| ix.base),
        ip_addr: file.table.ip_table_addr(),
    };
    0
}

/// The name of a table-file refusal (`OrcwalkTableFile::error`), NUL-terminated, static.
#[unsafe(no_mangle)]
pub extern "C" fn orcwalk_table_error_name(error: u32) -> *const c_char {
    let s: &'static CStr = match error {
        0 => c"accepted",
        1 => c"truncated",
        2 => c"not an orcwalk table (bad magic)",
        3 => c"another table format (version or layout)",
        4 => c"bad header field",
        5 => c"part lengths disagree with the entry count",
        6 => c"ips not strictly increasing",
        7 => c"ip overflows the address space",
        8 => c"reserved value in an entry",
        9 => c"no terminator",
        10 => c"lookup index disagrees with the ips",
        _ => c"unknown error",
    };
    s.as_ptr()
}

/// The name of a verdict's reason (`OrcwalkVerdict::reason`: 0 reliable), NUL-terminated, static.
#[unsafe(no_mangle)]
pub extern "C" fn orcwalk_reason_name(reason: u32) -> *const c_char {
    match reason.checked_sub(1).and_then(Reason::from_code) {
        Some(r) => r.as_cstr().as_ptr(),
        None if reason == 0 => c"reliable".as_ptr(),
        None => c"unknown reason".as_ptr(),
    }
}
