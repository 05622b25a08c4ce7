//! The `ORCWALK` note: what an ELF core lacks for replaying a stack walk.
//!
//! Version 1, all integers little-endian:
//! ```text
//!   u32 version (1)          u32 flags: 1 kernel (else user program), 2 start from exception
//!                                       registers, 4 task stack only, 8 ground truth complete,
//!                                       16 the image id is a text hash (else a build-id)
//!   KernelLayout: u64 pt_regs_size, x29, x30, sp, pc, pstate, stackframe; u32 meta_records; u32 va_bits
//!   u64 text_start, text_end, entry_start, entry_end
//!   u64 start pc, sp, fp, lr  (pc of a `Call` start is a return address)
//!   u64 fgraph_return, kretprobe_trampoline
//!   u32 n_stacks, n_truth, n_recover, image_id_len, image_path_len
//!   n_stacks  x { u64 low, u64 high, u32 kind (0 task, 1 irq, 2 overflow, 3/4 sdei, 5 efi), u32 0 }
//!   n_truth   x u64 pc (innermost first)
//!   n_recover x { u64 fp, u64 original return address }   (trampoline recovery, keyed by fp)
//!   image_id_len bytes: id of the image the ORC table describes (`orc_format::ImageId`: its
//!                       GNU build-id, or with flag 16 the hash of its text; none when empty)
//! ```
//! Flag 16 came after the first dumps: those have it clear and, as tables from then, a build-id
//! or nothing, so they read the same as before.
//! ```text
//!   image_path_len bytes: UTF-8 path of that table or ELF, relative to the dump
//! ```
//! Flag 32 (user programs, added with signal-frame crossing; older dumps have it clear) says a
//! trailer follows: the signal-return trampoline the program's handlers return to (the vDSO's
//! `__kernel_rt_sigreturn`, read from the target at capture) and its first two instructions:
//! ```text
//!   u64 sigreturn address   u32 insn[2]
//! ```

use orc_format::{IdKind, ImageId};
use orcwalk::{KernelLayout, StackInfo, StackKind, Start};

use super::DumpError;

pub const NOTE_NAME: &str = "ORCWALK";
pub const NOTE_TYPE: u32 = 1;
pub const VERSION: u32 = 1;

const KERNEL: u32 = 1;
const START_REGS: u32 = 2;
const TASK_ONLY: u32 = 4;
const TRUTH_COMPLETE: u32 = 8;
const ID_TEXT_HASH: u32 = 16;
const SIGRETURN: u32 = 32;

/// Everything about a sample that is not memory or registers.
#[derive(Clone, Debug)]
pub struct SampleInfo {
    pub kernel: bool,
    pub start_regs: bool,
    pub task_stack_only: bool,
    pub layout: KernelLayout,
    pub text: (u64, u64),
    pub entry: (u64, u64),
    pub pc: u64,
    pub sp: u64,
    pub fp: u64,
    pub lr: u64,
    pub fgraph_return: u64,
    pub kretprobe_trampoline: u64,
    pub stacks: Vec<StackInfo>,
    /// Ground truth, innermost first; `truth_complete` false when the truth itself stops early.
    pub truth: Vec<u64>,
    pub truth_complete: bool,
    pub recover: Vec<(u64, u64)>,
    /// The image the sample was taken from; replay only pairs it with a table that matches.
    pub image_id: ImageId,
    pub image_path: String,
    /// The signal-return trampoline and its first two instruction words, where known.
    pub sigreturn: Option<(u64, [u32; 2])>,
}

/// Field by field, the image id by kind and bytes: this is "the same note" (round trips), not
/// "the same image" (that is `ImageId::matches`, which no empty id passes).
impl PartialEq for SampleInfo {
    fn eq(&self, o: &SampleInfo) -> bool {
        let SampleInfo {
            kernel,
            start_regs,
            task_stack_only,
            layout,
            text,
            entry,
            pc,
            sp,
            fp,
            lr,
            fgraph_return,
            kretprobe_trampoline,
            stacks,
            truth,
            truth_complete,
            recover,
            image_id,
            image_path,
            sigreturn,
        } = self;
        (kernel, start_regs, task_stack_only, layout, text, entry, pc, sp, fp, lr)
            == (&o.kernel, &o.start_regs, &o.task_stack_only, &o.layout, &o.text, &o.entry, &o.pc, &o.sp, &o.fp, &o.lr)
            && (fgraph_return, kretprobe_trampoline, stacks, truth, truth_complete, recover, image_path)
                == (
                    &o.fgraph_return,
                    &o.kretprobe_trampoline,
                    &o.stacks,
                    &o.truth,
                    &o.truth_complete,
                    &o.recover,
                    &o.image_path,
                )
            && (image_id.kind(), image_id.bytes()) == (o.image_id.kind(), o.image_id.bytes())
            && sigreturn == &o.sigreturn
    }
}

impl Eq for SampleInfo {}

impl SampleInfo {
    /// A kernel sample starting at `start` on `stacks`, its truth still to be filled in and no
    /// trampolines (the caller sets those it has).
    pub fn kernel(
        layout: KernelLayout,
        text: (u64, u64),
        entry: (u64, u64),
        start: Start,
        stacks: Vec<StackInfo>,
        image_id: ImageId,
        image_path: String,
    ) -> SampleInfo {
        let (pc, sp, fp, lr, start_regs) = match start {
            Start::Regs { pc, sp, fp, lr } => (pc, sp, fp, lr, true),
            Start::Call { pc, sp, fp } => (pc, sp, fp, 0, false),
        };
        SampleInfo {
            kernel: true,
            start_regs,
            task_stack_only: false,
            layout,
            text,
            entry,
            pc,
            sp,
            fp,
            lr,
            fgraph_return: 0,
            kretprobe_trampoline: 0,
            stacks,
            truth: Vec::new(),
            truth_complete: false,
            recover: Vec::new(),
            image_id,
            image_path,
            sigreturn: None,
        }
    }

    /// Where the walk of this sample starts.
    pub fn start(&self) -> Start {
        if self.start_regs {
            Start::Regs { pc: self.pc, sp: self.sp, fp: self.fp, lr: self.lr }
        } else {
            Start::Call { pc: self.pc, sp: self.sp, fp: self.fp }
        }
    }

    /// A user program interrupted with `regs` (x0..x30, sp, pc, pstate), its stack
    /// `[low, high)` the only one, its truth still to be filled in.
    pub fn user(
        regs: &[u64; 34],
        text: (u64, u64),
        stack: (u64, u64),
        image_id: ImageId,
        image_path: String,
    ) -> SampleInfo {
        SampleInfo {
            kernel: false,
            start_regs: true,
            task_stack_only: true,
            // Only va_bits (PAC stripping) matters for a user stack.
            layout: KernelLayout::V6_12,
            text,
            entry: (0, 0),
            pc: regs[32],
            sp: regs[31],
            fp: regs[29],
            lr: regs[30],
            fgraph_return: 0,
            kretprobe_trampoline: 0,
            stacks: vec![StackInfo { low: stack.0, high: stack.1, kind: StackKind::Task }],
            truth: Vec::new(),
            truth_complete: false,
            recover: Vec::new(),
            image_id,
            image_path,
            sigreturn: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::new();
        let u32_ = |o: &mut Vec<u8>, v: u32| o.extend_from_slice(&v.to_le_bytes());
        let u64_ = |o: &mut Vec<u8>, v: u64| o.extend_from_slice(&v.to_le_bytes());
        let flag = |on: bool, bit: u32| if on { bit } else { 0 };
        let flags = flag(self.kernel, KERNEL)
            | flag(self.start_regs, START_REGS)
            | flag(self.task_stack_only, TASK_ONLY)
            | flag(self.truth_complete, TRUTH_COMPLETE)
            | flag(self.image_id.is_some() && self.image_id.kind() == IdKind::TextHash, ID_TEXT_HASH)
            | flag(self.sigreturn.is_some(), SIGRETURN);
        u32_(&mut o, VERSION);
        u32_(&mut o, flags);
        let l = self.layout;
        for v in [l.pt_regs_size, l.x29, l.x30, l.sp, l.pc, l.pstate, l.stackframe] {
            u64_(&mut o, v);
        }
        u32_(&mut o, l.meta_records as u32);
        u32_(&mut o, l.va_bits);
        for v in [self.text.0, self.text.1, self.entry.0, self.entry.1, self.pc, self.sp, self.fp, self.lr] {
            u64_(&mut o, v);
        }
        u64_(&mut o, self.fgraph_return);
        u64_(&mut o, self.kretprobe_trampoline);
        for n in [
            self.stacks.len(),
            self.truth.len(),
            self.recover.len(),
            self.image_id.bytes().len(),
            self.image_path.len(),
        ] {
            u32_(&mut o, n as u32);
        }
        for s in &self.stacks {
            u64_(&mut o, s.low);
            u64_(&mut o, s.high);
            u32_(&mut o, s.kind.code());
            u32_(&mut o, 0);
        }
        for &pc in &self.truth {
            u64_(&mut o, pc);
        }
        for &(fp, ra) in &self.recover {
            u64_(&mut o, fp);
            u64_(&mut o, ra);
        }
        o.extend_from_slice(self.image_id.bytes());
        o.extend_from_slice(self.image_path.as_bytes());
        if let Some((at, insns)) = self.sigreturn {
            u64_(&mut o, at);
            u32_(&mut o, insns[0]);
            u32_(&mut o, insns[1]);
        }
        o
    }

    pub fn decode(b: &[u8]) -> Result<SampleInfo, DumpError> {
        let mut r = Reader { b, at: 0 };
        let version = r.u32()?;
        if version != VERSION {
            return Err(DumpError::NoteVersion(version));
        }
        let flags = r.u32()?;
        let mut l = [0u64; 7];
        for v in &mut l {
            *v = r.u64()?;
        }
        let meta = r.u32()?;
        let va_bits = r.u32()?;
        let layout = KernelLayout {
            pt_regs_size: l[0],
            x29: l[1],
            x30: l[2],
            sp: l[3],
            pc: l[4],
            pstate: l[5],
            stackframe: l[6],
            meta_records: meta != 0,
            va_bits,
        };
        let text = (r.u64()?, r.u64()?);
        let entry = (r.u64()?, r.u64()?);
        let (pc, sp, fp, lr) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
        let (fgraph_return, kretprobe_trampoline) = (r.u64()?, r.u64()?);
        let counts = [r.u32()?, r.u32()?, r.u32()?, r.u32()?, r.u32()?];
        // Every count is bounded by what is left: a garbage count cannot make us allocate.
        let left = b.len() as u64;
        if counts.iter().map(|&c| u64::from(c)).sum::<u64>() > left {
            return Err(DumpError::Note("counts larger than the note"));
        }
        let mut stacks = Vec::new();
        for _ in 0..counts[0] {
            let (low, high, kind, _) = (r.u64()?, r.u64()?, r.u32()?, r.u32()?);
            stacks.push(StackInfo {
                low,
                high,
                kind: StackKind::from_code(kind).ok_or(DumpError::Note("unknown stack kind"))?,
            });
        }
        let truth = (0..counts[1]).map(|_| r.u64()).collect::<Result<_, _>>()?;
        let recover = (0..counts[2]).map(|_| Ok((r.u64()?, r.u64()?))).collect::<Result<_, DumpError>>()?;
        let id = r.bytes(counts[3] as usize)?;
        let kind = match (id.is_empty(), flags & ID_TEXT_HASH != 0) {
            (true, false) => IdKind::None,
            (false, false) => IdKind::BuildId,
            (_, true) => IdKind::TextHash,
        };
        let image_id = ImageId::from_parts(kind, id).ok_or(DumpError::Note("image id does not fit its kind"))?;
        let image_path = String::from_utf8(r.bytes(counts[4] as usize)?.to_vec())
            .map_err(|_| DumpError::Note("image path is not UTF-8"))?;
        let sigreturn = if flags & SIGRETURN != 0 { Some((r.u64()?, [r.u32()?, r.u32()?])) } else { None };
        Ok(SampleInfo {
            kernel: flags & KERNEL != 0,
            start_regs: flags & START_REGS != 0,
            task_stack_only: flags & TASK_ONLY != 0,
            truth_complete: flags & TRUTH_COMPLETE != 0,
            layout,
            text,
            entry,
            pc,
            sp,
            fp,
            lr,
            fgraph_return,
            kretprobe_trampoline,
            stacks,
            truth,
            recover,
            image_id,
            image_path,
            sigreturn,
        })
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DumpError> {
        let end = self.at.checked_add(n).ok_or(DumpError::Note("truncated"))?;
        let s = self.b.get(self.at..end).ok_or(DumpError::Note("truncated"))?;
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, DumpError> {
        Ok(u32::from_le_bytes(self.bytes(4)?.try_into().map_err(|_| DumpError::Note("truncated"))?))
    }
    fn u64(&mut self) -> Result<u64, DumpError> {
        Ok(u64::from_le_bytes(self.bytes(8)?.try_into().map_err(|_| DumpError::Note("truncated"))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: ImageId) -> SampleInfo {
        SampleInfo::user(&[0; 34], (0x1000, 0x2000), (0x7000, 0x8000), id, "program.orc".into())
    }

    #[test]
    fn image_id_kinds_survive_the_note() {
        for id in [ImageId::build_id(&[1, 2, 3]), ImageId::text_hash([9; 20]), ImageId::NONE] {
            let back = SampleInfo::decode(&info(id).encode()).unwrap();
            assert_eq!((back.image_id.kind(), back.image_id.bytes()), (id.kind(), id.bytes()));
            assert_eq!(back, info(id));
        }
        // Notes from before flag 16: an id is a build-id.
        let old = info(ImageId::build_id(&[9; 20])).encode();
        assert!(SampleInfo::decode(&old).unwrap().image_id.matches(&ImageId::build_id(&[9; 20])));
        assert!(!SampleInfo::decode(&old).unwrap().image_id.matches(&ImageId::text_hash([9; 20])));
        // A text-hash flag on bytes that are no text hash is refused.
        let mut bad = info(ImageId::build_id(&[1, 2, 3])).encode();
        bad[4] |= ID_TEXT_HASH as u8;
        assert!(SampleInfo::decode(&bad).is_err());
    }
}
