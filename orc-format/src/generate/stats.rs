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
    /// What the control-flow proof of the rows kept, cut and anchored (in instructions).
    pub proof: super::prove::Proof,
    /// Where the first cuts start (`symbol+offset`).
    pub cut_examples: Vec<String>,
    pub entries: u64,
    pub text_bytes: u64,
    pub covered_bytes: u64,
    pub functions_without_cfi: Vec<String>,
    /// Rows derived from the instructions for functions without CFI (`generate::derive`).
    pub derived: super::derive::Derived,
    pub derived_examples: Vec<String>,
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
        writeln!(
            f,
            "functions w/o CFI: {} ({} given rows derived from their instructions: {} instructions, {} left UNDEFINED)",
            self.functions_without_cfi.len(),
            self.derived.functions,
            self.derived.instructions,
            self.derived.undefined
        )?;
        for name in &self.derived_examples {
            writeln!(f, "    derived: {name}")?;
        }
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
        let p = &self.proof;
        writeln!(
            f,
            "rows proven:       {} instructions of {} judged ({} cut to UNDEFINED in {} stretches: no path proves the row); {} not judged (UNDEFINED or not a call frame)",
            p.proven,
            p.proven + p.cut,
            p.cut,
            p.cut_stretches,
            p.refused
        )?;
        for at in &self.cut_examples {
            writeln!(f, "    cut from {at}")?;
        }
        writeln!(f, "x29 CFAs anchored: {} instructions (proven rows rewritten as CFA = sp + k)", p.anchored)?;
        writeln!(
            f,
            "functions:         {} judged; {} not entered by a call (like gcc's .cold: rows cut); {} given up",
            p.functions, p.seeded_from_cfi, p.gave_up
        )?;
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
