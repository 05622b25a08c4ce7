//! What the walk knows about code: which addresses are text, and the ORC rule for each.

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
}

/// The common case: one validated table and one text range.
#[derive(Clone, Copy, Debug)]
pub struct TableCode<'a> {
    pub table: OrcTable<'a>,
    pub text_start: u64,
    pub text_end: u64,
    pub entry_start: u64,
    pub entry_end: u64,
}

impl CodeInfo for TableCode<'_> {
    fn is_text(&self, pc: u64) -> bool {
        self.text_start <= pc && pc < self.text_end
    }

    fn orc(&self, pc: u64) -> Option<OrcEntry> {
        self.table.find(pc).map(|(_, e)| e)
    }

    fn is_entry_text(&self, pc: u64) -> bool {
        self.entry_start <= pc && pc < self.entry_end
    }
}
