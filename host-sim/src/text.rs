//! An image's text and function bounds, owned, for the walk's call-site witness
//! (`orcwalk::code::Text`): replaying a user dump with its program at hand lets the walk check
//! that every return address follows a call to the function it returns from, as a kernel does
//! with its own text. Kernel corpora ship no vmlinux, so their replays go without.

use object::{Object, ObjectSection, ObjectSymbol, SectionKind};

/// Text bytes from the lowest to the highest executable section (gaps zero: `udf`, never a
/// call) and the sized function symbols, sorted and without overlaps.
#[derive(Clone, Debug, Default)]
pub struct ImageText {
    pub base: u64,
    pub bytes: Vec<u8>,
    pub functions: Vec<(u64, u64)>,
}

impl ImageText {
    pub fn from_elf(data: &[u8]) -> Result<ImageText, String> {
        let file = object::File::parse(data).map_err(|e| format!("ELF: {e}"))?;
        let exec: Vec<_> = file.sections().filter(|s| s.kind() == SectionKind::Text && s.size() > 0).collect();
        let lo = exec.iter().map(|s| s.address()).min().ok_or("no executable section")?;
        let hi = exec.iter().map(|s| s.address() + s.size()).max().ok_or("no executable section")?;
        let len = usize::try_from(hi - lo).map_err(|_| "text too large")?;
        if len > 1 << 30 {
            return Err(format!("text spans {len} bytes"));
        }
        let mut bytes = vec![0u8; len];
        for s in &exec {
            let d = s.data().map_err(|e| format!("{}: {e}", s.name().unwrap_or("?")))?;
            let at = (s.address() - lo) as usize;
            bytes[at..at + d.len()].copy_from_slice(d);
        }
        let mut functions: Vec<(u64, u64)> = file
            .symbols()
            .filter(|s| s.kind() == object::SymbolKind::Text && s.size() > 0 && s.address() != 0)
            .map(|s| (s.address(), s.address() + s.size()))
            .collect();
        functions.sort_unstable();
        functions.dedup_by_key(|f| f.0);
        // Overlapping symbols (aliases of different sizes): keep the first of each run.
        let mut kept: Vec<(u64, u64)> = Vec::with_capacity(functions.len());
        for f in functions {
            if kept.last().is_none_or(|k| k.1 <= f.0) {
                kept.push(f);
            }
        }
        Ok(ImageText { base: lo, bytes, functions: kept })
    }

    pub fn view(&self) -> orcwalk::code::Text<'_> {
        orcwalk::code::Text { base: self.base, bytes: &self.bytes, functions: &self.functions }
    }
}
