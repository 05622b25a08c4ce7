//! What the walk knows about code: which addresses are text, and the ORC rule for each.

use core::cell::Cell;

use orc_format::{OrcEntry, OrcTable};

pub trait CodeInfo {
    /// True when `pc` is in kernel or module text (or program text, in the simulator).
    fn is_text(&self, pc: u64) -> bool;
    /// The ORC entry covering `pc`, `None` when no table covers it.
    fn orc(&self, pc: u64) -> Option<OrcEntry>;
    /// True when `pc` is in exception-entry code (entry.S), whose frames are described by
    /// `pt_regs` rather than by CFI. Used to recognise exception boundaries on kernels without
    /// meta frame records (<= v6.12).
    fn is_entry_text(&self, _pc: u64) -> bool {
        false
    }
    /// False when the table's rows for `pc` are right only at call sites: clang before 16 emits
    /// aarch64 CFI after the whole prologue and none for epilogues, so a row at an interrupted
    /// pc in a prologue or epilogue is stale, and following it can skip a frame silently. The
    /// walk then refuses to cross an exception boundary at such a pc.
    fn exact_pc_proven(&self, _pc: u64) -> bool {
        true
    }
    /// True when every row was proven along control flow by the generator (the table file's
    /// provenance mark). Single-witness frames are accepted only from such rows: a CFA on x29
    /// or a record-less caller is exactly as good as the row that describes it. "Proven" rests
    /// on the generator's stated assumptions too: rows derived for assembly without CFI assume
    /// its entry points (start, inner `bl` targets, BTI pads); a function part not entered by a
    /// call (gcc's `.cold`) has its rows cut (see `generate::prove`).
    fn rows_proven(&self) -> bool {
        false
    }
    /// The instruction word at `pc`, or `None` where text cannot be read here (a dump replayed
    /// without its image). With it the walk checks the second witness of every return address:
    /// the instruction before it must be a call, and a direct call must lead to the function
    /// the address returns from. A kernel can always read its text.
    fn insn(&self, _pc: u64) -> Option<u32> {
        None
    }
    /// The function `[start, end)` containing `pc`, from a symbol table, when one is at hand.
    fn function(&self, _pc: u64) -> Option<(u64, u64)> {
        None
    }
    /// When `pc` is the return address of ftrace's trampoline (`ftrace_caller`) from its call to a
    /// tracer callback, the layout of the frame the trampoline built. `None` (the default)
    /// everywhere else.
    fn ftrace(&self, _pc: u64) -> Option<FtraceFrame> {
        None
    }
    /// When `pc` is the signal-return trampoline a user program's signal handlers return to
    /// (the vDSO's `__kernel_rt_sigreturn`), its first two instruction words, which the walk
    /// checks are `mov x8, #139; svc #0` before it crosses the signal frame. `None` (the
    /// default) everywhere else: no address is then a trampoline.
    fn sigreturn(&self, _pc: u64) -> Option<[u32; 2]> {
        None
    }
}

/// The frame arm64's `ftrace_caller` (arch/arm64/kernel/entry-ftrace.S) builds before it calls a
/// tracer callback: an `ftrace_regs` at its sp holding the traced function's entry state (x29, its
/// return address, sp, the pc to resume at), then two frame records, {x29 of the next, the traced
/// function's pc} at `record` and {the traced function's x29, its return address} right above;
/// `size` bytes in all. Offsets from the kernel (`FREGS_*` in asm-offsets).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FtraceFrame {
    /// The return address of `ftrace_caller`'s call to the callback.
    pub callsite: u64,
    pub size: u64,
    pub record: u64,
    pub fp: u64,
    pub lr: u64,
    pub sp: u64,
}

/// An image's text and function bounds, for [`CodeInfo::insn`] and [`CodeInfo::function`].
#[derive(Clone, Copy, Debug)]
pub struct Text<'a> {
    /// Address of `bytes[0]`.
    pub base: u64,
    pub bytes: &'a [u8],
    /// Functions `(start, end)`, sorted by start, not overlapping.
    pub functions: &'a [(u64, u64)],
}

impl Text<'_> {
    pub fn insn(&self, pc: u64) -> Option<u32> {
        if !pc.is_multiple_of(4) {
            return None;
        }
        let at = usize::try_from(pc.checked_sub(self.base)?).ok()?;
        let b = self.bytes.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([*b.first()?, *b.get(1)?, *b.get(2)?, *b.get(3)?]))
    }

    pub fn function(&self, pc: u64) -> Option<(u64, u64)> {
        let k = self.functions.partition_point(|f| f.0 <= pc);
        let f = *self.functions.get(k.checked_sub(1)?)?;
        (pc < f.1).then_some(f)
    }
}

/// The common case: one validated table and one text range.
#[derive(Clone, Copy, Debug)]
pub struct TableCode<'a> {
    pub table: OrcTable<'a>,
    pub text_start: u64,
    pub text_end: u64,
    pub entry_start: u64,
    pub entry_end: u64,
    /// The image's text, where the walker can see it (the simulator with the image at hand).
    /// By reference, as the two below: a kernel's walk holds this struct in its frame, and the
    /// fields it never uses cost it stack (scripts/check-kernel-crate).
    pub text: Option<&'a Text<'a>>,
    /// The table's rows were proven along control flow (`TableFile::proven`).
    pub proven: bool,
    /// The signal-return trampoline's address and first two instruction words (user programs).
    pub sigreturn: Option<&'a (u64, [u32; 2])>,
    /// ftrace's trampoline frame (kernels with ftrace).
    pub ftrace: Option<&'a FtraceFrame>,
}

impl CodeInfo for TableCode<'_> {
    #[inline]
    fn is_text(&self, pc: u64) -> bool {
        self.text_start <= pc && pc < self.text_end
    }

    #[inline]
    fn orc(&self, pc: u64) -> Option<OrcEntry> {
        self.table.find_entry(pc)
    }

    #[inline]
    fn is_entry_text(&self, pc: u64) -> bool {
        self.entry_start <= pc && pc < self.entry_end
    }

    #[inline]
    fn rows_proven(&self) -> bool {
        self.proven
    }

    /// Unproven rows (the compiler's, as written) are trusted at call sites only: at an
    /// interrupted pc they may be stale (an epilogue the CFI does not describe, a frameless
    /// block laid out inside the body's row).
    fn exact_pc_proven(&self, _pc: u64) -> bool {
        self.proven
    }

    #[inline]
    fn insn(&self, pc: u64) -> Option<u32> {
        self.text?.insn(pc)
    }

    fn function(&self, pc: u64) -> Option<(u64, u64)> {
        self.text?.function(pc)
    }

    #[inline]
    fn sigreturn(&self, pc: u64) -> Option<[u32; 2]> {
        self.sigreturn.filter(|s| s.0 == pc).map(|s| s.1)
    }

    #[inline]
    fn ftrace(&self, pc: u64) -> Option<FtraceFrame> {
        self.ftrace.filter(|f| f.callsite == pc).copied()
    }
}

/// Function bounds kept outside the table: a kernel's kallsyms (the C ABI's `function` callback).
pub trait FunctionBounds {
    /// The function `[start, end)` containing `pc`.
    fn function(&self, pc: u64) -> Option<(u64, u64)>;
}

/// No bounds at hand.
impl FunctionBounds for () {
    fn function(&self, _pc: u64) -> Option<(u64, u64)> {
        None
    }
}

/// Code loaded after the image (a kernel's modules), each part with its own table and text
/// range: the C ABI's `module` callback. Only tables whose rows were proven along control flow
/// are given: a loaded table is held to the same standard as the image's. Answers come per pc,
/// so that no table view is kept on the walk's frame (the kernel's stack budget).
pub trait Loaded {
    /// True when `pc` is in loaded text that has a table.
    fn is_loaded_text(&self, pc: u64) -> bool;
    /// The entry covering `pc` in its loaded code's table (`None`: no loaded code with a table
    /// holds `pc`, or its table has no entry there).
    fn loaded_orc(&self, pc: u64) -> Option<OrcEntry>;
}

/// Nothing loaded.
impl Loaded for () {
    fn is_loaded_text(&self, _pc: u64) -> bool {
        false
    }
    fn loaded_orc(&self, _pc: u64) -> Option<OrcEntry> {
        None
    }
}

/// `code` with its instructions read through `mem`: in a kernel, text is ordinary readable
/// memory, so the walk's own reader serves (the C ABI's read callback); function bounds come
/// from `functions` where it knows them, and text outside the image from `loaded` (modules),
/// each with its own table.
#[derive(Debug)]
pub struct TextInMemory<'a, C, M, F = (), L = ()> {
    pub code: &'a C,
    pub mem: &'a M,
    pub functions: &'a F,
    pub loaded: &'a L,
}

impl<C: CodeInfo, M: crate::memory::Memory, F: FunctionBounds, L: Loaded> CodeInfo for TextInMemory<'_, C, M, F, L> {
    fn is_text(&self, pc: u64) -> bool {
        self.code.is_text(pc) || self.loaded.is_loaded_text(pc)
    }
    fn orc(&self, pc: u64) -> Option<OrcEntry> {
        if self.code.is_text(pc) {
            return self.code.orc(pc);
        }
        self.loaded.loaded_orc(pc)
    }
    fn is_entry_text(&self, pc: u64) -> bool {
        self.code.is_entry_text(pc)
    }
    /// Loaded code's rows are proven (see [`LoadedCode`]).
    fn exact_pc_proven(&self, pc: u64) -> bool {
        !self.code.is_text(pc) || self.code.exact_pc_proven(pc)
    }
    fn rows_proven(&self) -> bool {
        self.code.rows_proven()
    }
    fn insn(&self, pc: u64) -> Option<u32> {
        if !pc.is_multiple_of(4) || !self.is_text(pc) {
            return None;
        }
        let word = self.mem.read_u64(pc & !7)?;
        let shift = if pc & 4 == 0 { 0 } else { 32 };
        Some((word >> shift) as u32)
    }
    fn function(&self, pc: u64) -> Option<(u64, u64)> {
        self.functions.function(pc).or_else(|| self.code.function(pc))
    }
    fn sigreturn(&self, pc: u64) -> Option<[u32; 2]> {
        self.code.sigreturn(pc)
    }
    fn ftrace(&self, pc: u64) -> Option<FtraceFrame> {
        self.code.ftrace(pc)
    }
}

/// A cache of ORC lookups owned by the caller (framehop's trick): `N` direct-mapped slots keyed
/// by pc, each the pc and what the table answered for it. No allocation, bounded by `N`, kept
/// across walks (a livepatch transition walks thousands of tasks with one). Valid for one set
/// of tables: [`OrcCache::clear`] it when a table is added or removed (a module loaded or
/// unloaded). With the same tables the walk's answers, and so its verdicts, are the same with
/// or without it: a slot only ever repeats what the table said for exactly that pc.
#[derive(Debug)]
#[repr(transparent)] // C allocates it (`struct orcwalk_cache`): its slots and nothing else
pub struct OrcCache<const N: usize> {
    slots: [Slot; N],
}

/// A pc and the table's answer for it, in one 16-byte cell: a hit is one load and a compare.
/// `[EMPTY, _]` while empty; the answer is the entry's 8 bytes, or [`NO_ENTRY`] for "none".
type Slot = Cell<[u64; 2]>;

/// The key of an empty slot: no lookup is cached under it (that pc goes to the table).
const EMPTY: u64 = u64::MAX;

/// The answer "no entry": an UNDEFINED-register entry of reserved type 7, which a validated
/// table never holds. An entry whose bytes are exactly these is not cached (the cache would
/// give `None` back for it), so an unvalidated table is answered as without the cache too.
const NO_ENTRY: u64 = u64::MAX;

impl<const N: usize> Default for OrcCache<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> OrcCache<N> {
    /// A power of two, so that a slot is picked with a mask.
    const SLOTS: () = assert!(N.is_power_of_two(), "OrcCache<N>: N must be a power of two");

    pub const fn new() -> Self {
        let () = Self::SLOTS;
        OrcCache { slots: [const { Cell::new([EMPTY, 0]) }; N] }
    }

    /// Forgets every answer.
    pub fn clear(&self) {
        for s in &self.slots {
            s.set([EMPTY, 0]);
        }
    }

    #[inline(always)]
    fn slot(&self, pc: u64) -> Option<&Slot> {
        // Instructions are 4 bytes; fold higher bits in so that pcs a cache size apart differ.
        let h = (pc >> 2) ^ (pc >> 13);
        self.slots.get((h as usize) & N.wrapping_sub(1))
    }
}

/// The answer `slot` holds for `pc`, if it holds one.
#[inline(always)]
fn cached(slot: &Slot, pc: u64) -> Option<Option<OrcEntry>> {
    let [key, value] = slot.get();
    if key != pc || pc == EMPTY {
        return None;
    }
    Some((value != NO_ENTRY).then(|| OrcEntry::from_bytes(value.to_le_bytes())))
}

/// Keeps `e` as the answer for `pc` in `slot`, unless it cannot be told from an empty slot or
/// from "no entry".
#[inline(always)]
fn keep(slot: &Slot, pc: u64, e: Option<OrcEntry>) {
    let value = e.map_or(NO_ENTRY, |e| u64::from_le_bytes(e.to_bytes()));
    if pc != EMPTY && (e.is_none() || value != NO_ENTRY) {
        slot.set([pc, value]);
    }
}

/// `code` with its ORC lookups answered from `cache` where it has them; every other answer is
/// `code`'s. The cache's effect is measured separately (`cargo bench --bench unwind`,
/// `orcwalk_cached`).
#[derive(Debug)]
pub struct CachedCode<'a, C, const N: usize> {
    pub code: &'a C,
    /// `None`: every lookup is the table's (one type for a caller that may have no cache).
    pub cache: Option<&'a OrcCache<N>>,
}

impl<C: CodeInfo, const N: usize> CodeInfo for CachedCode<'_, C, N> {
    #[inline]
    fn is_text(&self, pc: u64) -> bool {
        self.code.is_text(pc)
    }
    #[inline]
    fn orc(&self, pc: u64) -> Option<OrcEntry> {
        // The slot is picked once for the lookup and for keeping its answer.
        let Some(slot) = self.cache.and_then(|c| c.slot(pc)) else { return self.code.orc(pc) };
        if let Some(e) = cached(slot, pc) {
            return e;
        }
        let e = self.code.orc(pc);
        keep(slot, pc, e);
        e
    }
    #[inline]
    fn is_entry_text(&self, pc: u64) -> bool {
        self.code.is_entry_text(pc)
    }
    #[inline]
    fn exact_pc_proven(&self, pc: u64) -> bool {
        self.code.exact_pc_proven(pc)
    }
    #[inline]
    fn rows_proven(&self) -> bool {
        self.code.rows_proven()
    }
    #[inline]
    fn insn(&self, pc: u64) -> Option<u32> {
        self.code.insn(pc)
    }
    #[inline]
    fn function(&self, pc: u64) -> Option<(u64, u64)> {
        self.code.function(pc)
    }
    #[inline]
    fn ftrace(&self, pc: u64) -> Option<FtraceFrame> {
        self.code.ftrace(pc)
    }
    #[inline]
    fn sigreturn(&self, pc: u64) -> Option<[u32; 2]> {
        self.code.sigreturn(pc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    /// Answers `entry` for every pc and counts the lookups that reach it.
    struct Fixed {
        entry: Option<OrcEntry>,
        lookups: Cell<u32>,
    }

    impl CodeInfo for Fixed {
        fn is_text(&self, _pc: u64) -> bool {
            true
        }
        fn orc(&self, _pc: u64) -> Option<OrcEntry> {
            self.lookups.set(self.lookups.get() + 1);
            self.entry
        }
    }

    fn twice<const N: usize>(code: &Fixed, cache: &OrcCache<N>, pc: u64) -> [Option<OrcEntry>; 2] {
        let cached = CachedCode { code, cache: Some(cache) };
        [cached.orc(pc), cached.orc(pc)]
    }

    #[test]
    fn the_cache_repeats_every_answer_exactly() {
        let row = OrcEntry::from_bytes([1, 0, 2, 0, 3, 0, 0x11, 0x21]);
        // The entry whose bytes spell "no entry" in a slot (reserved type 7: only an unvalidated
        // table holds it) must come back as itself, never as `None`.
        let no_entry_bytes = OrcEntry::from_bytes(u64::MAX.to_le_bytes());
        for entry in [Some(row), None, Some(OrcEntry::UNDEFINED), Some(no_entry_bytes)] {
            let code = Fixed { entry, lookups: Cell::new(0) };
            let cache = OrcCache::<4>::new();
            assert_eq!(twice(&code, &cache, 0x1000), [entry; 2]);
            let expected_lookups = if entry == Some(no_entry_bytes) { 2 } else { 1 };
            assert_eq!(code.lookups.get(), expected_lookups, "{entry:?}: second answer from the cache");
        }
    }

    #[test]
    fn an_empty_slot_answers_no_pc() {
        // An empty slot's key is u64::MAX: that pc always goes to the table.
        let code = Fixed { entry: None, lookups: Cell::new(0) };
        let cache = OrcCache::<4>::new();
        assert_eq!(twice(&code, &cache, u64::MAX), [None; 2]);
        assert_eq!(code.lookups.get(), 2);
    }

    #[test]
    fn colliding_pcs_and_clear_go_back_to_the_table() {
        let row = OrcEntry::from_bytes([1, 0, 2, 0, 3, 0, 0x11, 0x21]);
        let code = Fixed { entry: Some(row), lookups: Cell::new(0) };
        let cache = OrcCache::<1>::new();
        let cached = CachedCode { code: &code, cache: Some(&cache) };
        for pc in [0x1000, 0x2000, 0x1000] {
            assert_eq!(cached.orc(pc), Some(row));
        }
        assert_eq!(code.lookups.get(), 3, "one slot: each pc evicted the other");
        cache.clear();
        assert_eq!(cached.orc(0x1000), Some(row));
        assert_eq!(code.lookups.get(), 4);
    }
}
