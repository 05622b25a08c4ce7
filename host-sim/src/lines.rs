//! Source lines for symbolized frames, where the debug info is at hand: `program.elf` beside a
//! user corpus's table, `--elf`, or a kernel's debug vmlinux given with `--vmlinux`.
//!
//! The `addr2line` crate reads the DWARF (`.debug_info`, `.debug_line`, ...). A frame's pc is
//! looked up as a debugger does: an interrupted pc (the start from exception registers, a pc
//! saved in `pt_regs` or a signal frame) as it is; a return address at `pc - 4`, the call
//! instruction (arm64 instructions are 4 bytes), so that a caller's line is that of its call and
//! not of whatever follows it.

use std::sync::Arc;

use gimli::Reader as _;
use orcwalk::FrameKind;
use serde::{Deserialize, Serialize};

type Reader = gimli::EndianArcSlice<gimli::RunTimeEndian>;

/// Where in the source an instruction lies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceLine {
    /// The file as the DWARF names it, relative to its compilation directory when it lies there
    /// (`arch/arm64/kernel/syscall.c`, `workload.c`), else absolute (`/usr/include/...`).
    pub file: String,
    /// 0 when the line table gives none.
    pub line: u32,
    /// When the instruction lies in inlined code: the inlined functions, innermost first, each
    /// with the place it was called from (in the next one out, the last in the frame's own
    /// function). `file` and `line` above are then inside the innermost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inlined: Vec<InlinedCall>,
}

/// An inlined function and where it was inlined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlinedCall {
    pub function: String,
    /// The call site, as [`SourceLine::file`] and [`SourceLine::line`].
    pub file: String,
    pub line: u32,
}

impl std::fmt::Display for SourceLine {
    /// `file.c:49`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// The line tables and inlining of one ELF.
pub struct Lines {
    ctx: addr2line::Context<Reader>,
}

impl std::fmt::Debug for Lines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lines { .. }")
    }
}

impl Lines {
    /// The DWARF of an ELF; `Ok(None)` when it has no line table (a stripped program).
    pub fn from_elf(data: Vec<u8>) -> Result<Option<Lines>, String> {
        use object::{Object, ObjectSection};
        let bytes: Arc<[u8]> = Arc::from(data);
        let file = object::File::parse(&*bytes).map_err(|e| e.to_string())?;
        if file.section_by_name(".debug_line").is_none() {
            return Ok(None);
        }
        let endian = if file.is_little_endian() { gimli::RunTimeEndian::Little } else { gimli::RunTimeEndian::Big };
        let whole = gimli::EndianArcSlice::new(bytes.clone(), endian);
        let load = |id: gimli::SectionId| -> Result<Reader, String> {
            let Some(s) = file.section_by_name(id.name()) else {
                return Ok(whole.range(0..0));
            };
            // Uncompressed in the file: a view of the bytes already read; compressed: its own copy.
            match (s.compressed_file_range(), s.file_range()) {
                (Ok(c), Some((off, size))) if c.format == object::CompressionFormat::None => {
                    let (off, size) = (off as usize, size as usize);
                    if off.checked_add(size).is_none_or(|end| end > bytes.len()) {
                        return Err(format!("{}: past the end of the file", id.name()));
                    }
                    Ok(whole.range(off..off + size))
                }
                _ => {
                    let data = s.uncompressed_data().map_err(|e| format!("{}: {e}", id.name()))?;
                    Ok(gimli::EndianArcSlice::new(Arc::from(&*data), endian))
                }
            }
        };
        let dwarf = gimli::Dwarf::load(load)?;
        let ctx = addr2line::Context::from_dwarf(dwarf).map_err(|e| format!("DWARF: {e}"))?;
        drop(file);
        Ok(Some(Lines { ctx }))
    }

    /// The source line of the instruction at `pc` (see the module doc for which address a frame
    /// passes); `None` where the DWARF says nothing of it.
    pub fn locate(&self, pc: u64) -> Option<SourceLine> {
        let comp_dir = self
            .ctx
            .find_dwarf_and_unit(pc)
            .skip_all_loads()
            .and_then(|u| u.comp_dir.as_ref().and_then(|d| d.to_string_lossy().ok().map(|s| s.into_owned())));
        let short = |file: Option<&str>| short_path(file.unwrap_or("??"), comp_dir.as_deref());
        let mut frames = self.ctx.find_frames(pc).skip_all_loads().ok()?;
        // Innermost first: each frame's location is where the pc is in it (the first) or where
        // it calls the one before (the rest, inlined calls).
        let mut chain = Vec::new();
        while let Ok(Some(f)) = frames.next() {
            let name = f
                .function
                .as_ref()
                .and_then(|n| n.raw_name().ok().map(|s| s.into_owned()))
                .unwrap_or_else(|| "??".to_string());
            chain.push((name, f.location));
        }
        let (_, first) = chain.first()?;
        let first = first.as_ref()?;
        let mut line = SourceLine { file: short(first.file), line: first.line.unwrap_or(0), inlined: Vec::new() };
        // Frame k (k ≥ 1) holds the call of frame k-1's function.
        for pair in chain.windows(2) {
            let [(callee, _), (_, at)] = pair else { continue };
            let at = at.as_ref();
            line.inlined.push(InlinedCall {
                function: callee.clone(),
                file: short(at.and_then(|l| l.file)),
                line: at.and_then(|l| l.line).unwrap_or(0),
            });
        }
        Some(line)
    }
}

/// The address whose line a frame shows: `pc` when it was interrupted (the start from exception
/// registers, a pc read from `pt_regs` or a signal frame), else `pc - 4`, the call instruction
/// of a return address (a frame record's, a trampoline's, x30's, or a start at a call site).
pub fn lookup_pc(pc: u64, kind: FrameKind, start_regs: bool) -> u64 {
    let interrupted = match kind {
        FrameKind::Start => start_regs,
        FrameKind::Exception => true,
        FrameKind::Return | FrameKind::Recovered | FrameKind::LinkRegister => false,
    };
    if interrupted { pc } else { pc.saturating_sub(4) }
}

/// `file` relative to `comp_dir` when it lies below it, without a leading `./`.
fn short_path(file: &str, comp_dir: Option<&str>) -> String {
    let rel = comp_dir
        .map(|d| d.trim_end_matches('/'))
        .filter(|d| !d.is_empty())
        .and_then(|d| file.strip_prefix(d))
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(file);
    let mut rel = rel;
    while let Some(r) = rel.strip_prefix("./") {
        rel = r;
    }
    rel.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_shortened_to_the_comp_dir() {
        let d = Some("/build/linux");
        assert_eq!(short_path("/build/linux/arch/arm64/kernel/syscall.c", d), "arch/arm64/kernel/syscall.c");
        assert_eq!(short_path("/build/linux/./include/linux/sched.h", d), "include/linux/sched.h");
        assert_eq!(short_path("/build/linuxfoo/x.c", d), "/build/linuxfoo/x.c");
        assert_eq!(short_path("/usr/include/stdio.h", d), "/usr/include/stdio.h");
        assert_eq!(short_path("workload.c", None), "workload.c");
    }
}
