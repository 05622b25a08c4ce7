//! Writing and reading the ELF core container.

use object::Endianness;
use object::elf::FileHeader64;
use object::read::elf::{FileHeader, ProgramHeader};

use super::DumpError;
use super::note::{NOTE_NAME, NOTE_TYPE, SampleInfo};

/// `struct elf_prstatus` on aarch64: 392 bytes, `pr_reg` (x0..x30, sp, pc, pstate) at 112.
const PRSTATUS_SIZE: usize = 392;
const PR_REG: usize = 112;
const NT_PRSTATUS: u32 = 1;
const ET_CORE: u16 = 4;
const EM_AARCH64: u16 = 183;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;

/// One memory region: stack (read-write) or text (read-execute).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    pub vaddr: u64,
    pub data: Vec<u8>,
    pub exec: bool,
}

/// A recorded sample: registers, memory, and the ORCWALK note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dump {
    /// x0..x30, sp, pc, pstate as in `user_pt_regs`.
    pub regs: [u64; 34],
    pub info: SampleInfo,
    pub regions: Vec<Region>,
}

fn note(out: &mut Vec<u8>, name: &str, ty: u32, desc: &[u8]) {
    let namesz = name.len() + 1;
    out.extend_from_slice(&(namesz as u32).to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend_from_slice(desc);
    out.resize(out.len().next_multiple_of(4), 0);
}

impl Dump {
    pub fn write(&self) -> Vec<u8> {
        let mut notes = Vec::new();
        let mut prstatus = vec![0u8; PRSTATUS_SIZE];
        for (i, r) in self.regs.iter().enumerate() {
            prstatus[PR_REG + 8 * i..PR_REG + 8 * i + 8].copy_from_slice(&r.to_le_bytes());
        }
        prstatus[32..36].copy_from_slice(&1u32.to_le_bytes()); // pr_pid
        note(&mut notes, "CORE", NT_PRSTATUS, &prstatus);
        note(&mut notes, NOTE_NAME, NOTE_TYPE, &self.info.encode());

        let phnum = 1 + self.regions.len();
        let mut at = 64 + 56 * phnum;
        let mut out = Vec::new();
        // ELF header
        out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&ET_CORE.to_le_bytes());
        out.extend_from_slice(&EM_AARCH64.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes()); // e_version
        out.extend_from_slice(&0u64.to_le_bytes()); // e_entry
        out.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
        out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
        out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        for v in [64u16, 56, phnum as u16, 64, 0, 0] {
            out.extend_from_slice(&v.to_le_bytes()); // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
        }
        let phdr = |out: &mut Vec<u8>, ty: u32, flags: u32, off: usize, vaddr: u64, size: usize, align: u64| {
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&flags.to_le_bytes());
            for v in [off as u64, vaddr, 0, size as u64, size as u64, align] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        };
        phdr(&mut out, PT_NOTE, 4, at, 0, notes.len(), 4);
        at += notes.len();
        for r in &self.regions {
            phdr(&mut out, PT_LOAD, if r.exec { 5 } else { 6 }, at, r.vaddr, r.data.len(), 1);
            at += r.data.len();
        }
        out.extend_from_slice(&notes);
        for r in &self.regions {
            out.extend_from_slice(&r.data);
        }
        out
    }

    pub fn parse(data: &[u8]) -> Result<Dump, DumpError> {
        if !data.starts_with(b"\x7fELF") {
            return Err(DumpError::NotElf);
        }
        let header = FileHeader64::<Endianness>::parse(data)?;
        let endian = header.endian()?;
        let (e_type, e_machine) = (header.e_type(endian).0, header.e_machine(endian).0);
        if e_type != ET_CORE || e_machine != EM_AARCH64 || endian != Endianness::Little {
            return Err(DumpError::NotAarch64Core { e_type, e_machine });
        }
        let mut regs = None;
        let mut info = None;
        let mut regions = Vec::new();
        for ph in header.program_headers(endian, data)? {
            match ph.p_type(endian).0 {
                PT_NOTE => {
                    let Some(mut notes) = ph.notes(endian, data)? else { continue };
                    while let Some(n) = notes.next()? {
                        match (n.name(), n.n_type(endian).0) {
                            (b"CORE", NT_PRSTATUS) => {
                                let d = n.desc();
                                if d.len() != PRSTATUS_SIZE {
                                    return Err(DumpError::BadPrstatus(d.len()));
                                }
                                let mut r = [0u64; 34];
                                for (i, v) in r.iter_mut().enumerate() {
                                    let at = PR_REG + 8 * i;
                                    *v = u64::from_le_bytes(
                                        d[at..at + 8].try_into().map_err(|_| DumpError::BadPrstatus(d.len()))?,
                                    );
                                }
                                regs = Some(r);
                            }
                            (name, NOTE_TYPE) if name == NOTE_NAME.as_bytes() => {
                                info = Some(SampleInfo::decode(n.desc())?)
                            }
                            _ => {}
                        }
                    }
                }
                PT_LOAD => {
                    let bytes = ph.data(endian, data).map_err(|()| DumpError::Note("PT_LOAD outside the file"))?;
                    regions.push(Region {
                        vaddr: ph.p_vaddr(endian),
                        data: bytes.to_vec(),
                        exec: ph.p_flags(endian).0 & 1 != 0,
                    });
                }
                _ => {}
            }
        }
        Ok(Dump { regs: regs.ok_or(DumpError::NoRegisters)?, info: info.ok_or(DumpError::NoNote)?, regions })
    }

    /// An 8-byte read from the dumped memory; `None` outside every region.
    pub fn read_u64(&self, addr: u64) -> Option<u64> {
        self.regions.iter().find_map(|r| {
            let off = usize::try_from(addr.checked_sub(r.vaddr)?).ok()?;
            let b = r.data.get(off..off.checked_add(8)?)?;
            Some(u64::from_le_bytes(b.try_into().ok()?))
        })
    }
}

/// Dumped memory is what the unwinder reads when a dump is replayed.
impl orcwalk::Memory for Dump {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        Dump::read_u64(self, addr)
    }
}
