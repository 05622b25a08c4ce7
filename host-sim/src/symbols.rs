//! Function symbols for reading verdicts: `name+0xoff/0xsize` instead of a bare address.
//!
//! User corpora ship their program (`program.elf`); kernel corpora ship no vmlinux, so their
//! capture keeps `vmlinux.syms` beside the table: the function symbols of every text address any
//! of the corpus's dumps holds (registers, truth, every 8-byte word of its stacks), which covers
//! every pc a walk of those dumps can report.

use std::collections::BTreeSet;

use crate::dump::Dump;

/// Functions `(start, size, name)`, sorted by start.
#[derive(Clone, Debug, Default)]
pub struct Symbols {
    functions: Vec<(u64, u64, String)>,
}

impl Symbols {
    /// Every named code symbol of an ELF: functions and the assembly labels of executable
    /// sections (a kernel's entry code and vectors are `SYM_CODE`, no function type).
    pub fn from_elf(data: &[u8]) -> Result<Symbols, String> {
        use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};
        let file = object::File::parse(data).map_err(|e| e.to_string())?;
        let mut functions = Vec::new();
        for sym in file.symbols() {
            let exec = sym
                .section_index()
                .and_then(|i| file.section_by_index(i).ok())
                .is_some_and(|s| s.kind() == SectionKind::Text);
            let Ok(name) = sym.name() else { continue };
            let label = matches!(sym.kind(), SymbolKind::Text | SymbolKind::Unknown | SymbolKind::Label);
            // Mapping symbols ($x, $d) and local labels name no code.
            if exec
                && label
                && sym.is_definition()
                && !name.is_empty()
                && !name.starts_with('$')
                && !name.starts_with(".L")
            {
                functions.push((sym.address(), sym.size(), name.to_string()));
            }
        }
        // Aliases (one address, several names) are all kept; a lookup names one of them.
        functions.sort();
        functions.dedup();
        Ok(Symbols { functions })
    }

    /// Parses `vmlinux.syms`: one `start size name` per line, hex addresses and sizes.
    pub fn parse(text: &str) -> Result<Symbols, String> {
        let mut functions = Vec::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let bad = || format!("line {}: expected `start size name`: {line}", n + 1);
            let mut f = line.split_whitespace();
            let start = u64::from_str_radix(f.next().ok_or_else(bad)?, 16).map_err(|_| bad())?;
            let size = u64::from_str_radix(f.next().ok_or_else(bad)?, 16).map_err(|_| bad())?;
            let name = f.next().ok_or_else(bad)?.to_string();
            functions.push((start, size, name));
        }
        functions.sort();
        Ok(Symbols { functions })
    }

    pub fn to_text(&self) -> String {
        self.functions.iter().map(|(s, z, n)| format!("{s:016x} {z:x} {n}\n")).collect()
    }

    fn find(&self, pc: u64) -> Option<&(u64, u64, String)> {
        let k = self.functions.partition_point(|f| f.0 <= pc);
        self.functions.get(k.checked_sub(1)?).filter(|f| pc < f.0.saturating_add(f.1.max(1)))
    }

    /// `name+0xoff/0xsize`, as the kernel prints `%pS`; `None` outside every function.
    pub fn symbolize(&self, pc: u64) -> Option<String> {
        self.find(pc).map(|(s, z, n)| format!("{n}+{:#x}/{z:#x}", pc - s))
    }

    /// Only the functions holding some text address of `dumps` (see the module doc).
    pub fn needed_by<'a>(&self, dumps: impl Iterator<Item = &'a Dump>) -> Symbols {
        let mut keep = BTreeSet::new();
        for d in dumps {
            let words = d
                .regions
                .iter()
                .flat_map(|r| r.data.chunks_exact(8).map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8]))));
            let pcs =
                d.info.truth.iter().copied().chain([d.info.pc, d.info.lr]).chain(d.regs.iter().copied()).chain(words);
            for pc in pcs {
                // PAC bits off: kernel addresses keep the top byte set, user ones clear.
                for a in [pc, pc | 0xff80_0000_0000_0000, pc & 0x007f_ffff_ffff_ffff] {
                    if let Some(f) = self.find(a) {
                        keep.insert(f.0);
                    }
                }
            }
        }
        Symbols { functions: self.functions.iter().filter(|f| keep.contains(&f.0)).cloned().collect() }
    }

    /// Where function `name` starts (the first of that name).
    pub fn address_of(&self, name: &str) -> Option<u64> {
        self.functions.iter().find(|f| f.2 == name).map(|f| f.0)
    }

    pub fn len(&self) -> usize {
        self.functions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolizes_like_percent_ps_and_reads_back() {
        let s = Symbols::parse("ffff800080010000 40 a\nffff800080010040 20 b\n").unwrap();
        assert_eq!(s.symbolize(0xffff_8000_8001_0044).as_deref(), Some("b+0x4/0x20"));
        assert_eq!(s.symbolize(0xffff_8000_8001_0060), None);
        assert_eq!(Symbols::parse(&s.to_text()).unwrap().to_text(), s.to_text());
        assert!(Symbols::parse("zz 1 a").is_err());
    }
}
