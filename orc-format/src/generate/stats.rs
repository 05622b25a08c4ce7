//! What a generation run covered and what it could not express: the numbers `stats` prints, so
//! that missing coverage is visible instead of silently turning into "unreliable" at run time.

use std::collections::BTreeMap;
use std::fmt;

use super::rules::Unsupported;

#[derive(Debug, Default)]
pub struct Stats {
    pub fdes_total: u64,
    pub fdes_used: u64,
    pub fdes_outside_text: u64,
    pub fdes_duplicate: u64,
    pub fdes_conflicting: u64,
    pub rows: u64,
    pub unsupported: BTreeMap<Unsupported, u64>,
    /// Stale stretches of rows (an instruction changed what the row relies on) made UNDEFINED.
    pub stale_rows_cut: u64,
    pub stale_bytes_cut: u64,
    /// x29-based rows rewritten as sp-based where the code proves the frame fixed.
    pub anchors: super::anchor::Anchors,
    pub anchor_left_examples: Vec<String>,
    /// Where the first cuts start (`symbol+offset`).
    pub stale_examples: Vec<String>,
    pub entries: u64,
    pub text_bytes: u64,
    pub covered_bytes: u64,
    pub functions_without_cfi: Vec<String>,
    pub table_bytes: u64,
    pub eh_frame_bytes: u64,
    pub debug_frame_bytes: u64,
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 * 100.0 / whole as f64 }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cfi = self.eh_frame_bytes + self.debug_frame_bytes;
        writeln!(
            f,
            "FDEs:              {} used of {} ({} outside text, {} duplicate, {} conflicting)",
            self.fdes_used, self.fdes_total, self.fdes_outside_text, self.fdes_duplicate, self.fdes_conflicting
        )?;
        writeln!(
            f,
            "text covered:      {} of {} bytes ({:.1}%)",
            self.covered_bytes,
            self.text_bytes,
            pct(self.covered_bytes, self.text_bytes)
        )?;
        writeln!(f, "functions w/o CFI: {}", self.functions_without_cfi.len())?;
        for name in self.functions_without_cfi.iter().take(20) {
            writeln!(f, "    {name}")?;
        }
        if self.functions_without_cfi.len() > 20 {
            writeln!(f, "    ... and {} more", self.functions_without_cfi.len() - 20)?;
        }
        writeln!(f, "CFI rows:          {}", self.rows)?;
        let unsupported: u64 = self.unsupported.values().sum();
        writeln!(f, "unsupported rows:  {unsupported} (emitted as UNDEFINED)")?;
        for (why, n) in &self.unsupported {
            writeln!(f, "    {n:>8}  {}", why.describe())?;
        }
        writeln!(
            f,
            "stale rows cut:    {} ({} bytes of text made UNDEFINED: an instruction changed the CFA register, x29 or x30 under the row)",
            self.stale_rows_cut, self.stale_bytes_cut
        )?;
        for at in &self.stale_examples {
            writeln!(f, "    from {at}")?;
        }
        writeln!(
            f,
            "x29 CFAs anchored: {} rows in {} functions (fixed frames: CFA = sp + k); {} functions keep x29 CFAs",
            self.anchors.rows, self.anchors.functions, self.anchors.left
        )?;
        for at in &self.anchor_left_examples {
            writeln!(f, "    kept: {at}")?;
        }
        writeln!(f, "ORC entries:       {}", self.entries)?;
        writeln!(
            f,
            "table size:        {} bytes; CFI size {} bytes (.eh_frame {}, .debug_frame {}); ratio {:.2}",
            self.table_bytes,
            cfi,
            self.eh_frame_bytes,
            self.debug_frame_bytes,
            if cfi == 0 { 0.0 } else { self.table_bytes as f64 / cfi as f64 }
        )
    }
}
