//! The unwinder over arbitrary stack memory and start registers, with the synthetic program's
//! ORC table: never panics, at most 100 frames, a bounded number of reads.
#![no_main]
use std::cell::Cell;

use libfuzzer_sys::fuzz_target;
use orcwalk::testkit::{self as tk, Graph};
use orcwalk::{Config, KernelLayout, Memory, StackList, Start, walk};
use orcwalk_sim::synth::{Program, Rng};

struct Bytes<'a> {
    data: &'a [u8],
    reads: Cell<u32>,
}

impl Memory for Bytes<'_> {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        self.reads.set(self.reads.get() + 1);
        // The task stack's top 4 KiB is the fuzz input (repeated), other addresses fault.
        let off = addr.checked_sub(tk::TASK_HIGH - 0x1000)?;
        if off >= 0x1000 || self.data.len() < 8 {
            return None;
        }
        let i = (off as usize) % (self.data.len() - 7);
        Some(u64::from_le_bytes(self.data[i..i + 8].try_into().ok()?))
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 40 {
        return;
    }
    let word = |i: usize| u64::from_le_bytes(data[i..i + 8].try_into().unwrap());
    static TABLE: std::sync::OnceLock<&'static [u8]> = std::sync::OnceLock::new();
    let bytes = TABLE.get_or_init(|| Box::leak(Program::new(&mut Rng::new(7)).table_file().into_boxed_slice()));
    let file = orc_format::TableFile::parse(bytes).unwrap();
    // The table's rows are trusted as proven only when the file says so and the input agrees.
    let code = tk::Code { table: tk::OwnedTable::from(&file.table), sync_only: None, proven: file.proven() && data[1] & 2 == 0 };
    let layout = [KernelLayout::V6_12, KernelLayout::V6_13, KernelLayout::GENERIC_ENTRY][(data[0] % 3) as usize];
    let cfg = Config { strict: data[1] & 1 != 0, ..Config::kernel(layout) };
    let pc = tk::TEXT + word(8) % 0x3000;
    let sp = tk::TASK_HIGH - 0x1000 + word(16) % 0x1000;
    let fp = tk::TASK_HIGH - 0x1000 + word(24) % 0x1000;
    let start = if data[2] & 1 != 0 {
        Start::Regs { pc, sp, fp, lr: tk::TEXT + word(32) % 0x3000 }
    } else {
        Start::Call { pc, sp, fp }
    };
    let mem = Bytes { data: &data[40..], reads: Cell::new(0) };
    let mut frames = 0u32;
    let _ = walk(start, &cfg, &mem, &StackList { stacks: &tk::stacks() }, &code, &Graph::default(), |_| {
        frames += 1;
        true
    });
    assert!(frames <= 100);
    assert!(mem.reads.get() <= 16 * 101);
});
