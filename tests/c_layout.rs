//! Our layouts against what a C compiler makes of the repo's headers (bindgen over libclang,
//! target aarch64-linux-gnu): sizes, offsets, bitfield positions and constants.

use orc_format::{FormatId, Kind, OrcEntry, Reg};
use orcwalk_suite::c_orc;
use quickcheck::quickcheck;

#[test]
fn orc_entry_size_and_offsets() {
    assert_eq!(std::mem::size_of::<c_orc::orc_entry>(), orc_format::ENTRY_SIZE);
    assert_eq!(std::mem::align_of::<c_orc::orc_entry>(), 1, "packed");
    assert_eq!(std::mem::offset_of!(c_orc::orc_entry, sp_offset), 0);
    assert_eq!(std::mem::offset_of!(c_orc::orc_entry, fp_offset), 2);
    assert_eq!(std::mem::offset_of!(c_orc::orc_entry, ra_offset), 4);
}

#[test]
fn constants_agree() {
    assert_eq!(c_orc::ORC_REG_UNDEFINED as u8, Reg::UNDEFINED);
    assert_eq!(c_orc::ORC_REG_PREV_SP as u8, Reg::PREV_SP);
    assert_eq!(c_orc::ORC_REG_SP as u8, Reg::SP);
    assert_eq!(c_orc::ORC_REG_FP as u8, Reg::FP);
    assert_eq!(c_orc::ORC_TYPE_UNDEFINED as u8, Kind::UNDEFINED);
    assert_eq!(c_orc::ORC_TYPE_END_OF_STACK as u8, Kind::END_OF_STACK);
    assert_eq!(c_orc::ORC_TYPE_CALL as u8, Kind::CALL);
    assert_eq!(c_orc::ORC_TYPE_REGS as u8, Kind::REGS);
    assert_eq!(c_orc::ORC_TYPE_REGS_PARTIAL as u8, Kind::REGS_PARTIAL);
    assert_eq!(c_orc::ORCWALK_ORC_FORMAT_VERSION, FormatId::CURRENT.version);
    assert_eq!(c_orc::ORCWALK_ORC_LAYOUT_HASH as u64, FormatId::CURRENT.layout_hash, "update include/orc_entry.h");
    assert_eq!(u64::from(c_orc::ORC_LOOKUP_BLOCK_SIZE), orc_format::index::BLOCK_SIZE);
}

/// The bytes of a C entry: its three shorts, then the 16-bit bitfield unit as libclang laid it out.
fn c_bytes(c: &c_orc::orc_entry) -> [u8; 8] {
    let (s, f, r) = (c.sp_offset, c.fp_offset, c.ra_offset);
    let bits = c._bitfield_1.get(0, 16) as u16;
    let mut out = [0u8; 8];
    out[0..2].copy_from_slice(&s.to_le_bytes());
    out[2..4].copy_from_slice(&f.to_le_bytes());
    out[4..6].copy_from_slice(&r.to_le_bytes());
    out[6..8].copy_from_slice(&bits.to_le_bytes());
    out
}

quickcheck! {
    /// Encode the same values with C's bitfield setters and with our `OrcEntry::new`: identical bytes;
    /// and our decoder reads back what C stored.
    fn bitfields_agree_with_c(sp: i16, fp: i16, ra: i16, regs: (u8, u8, u8), kind: u8, signal: bool) -> bool {
        let (sr, fr, rr) = (regs.0 % 4, regs.1 % 4, regs.2 % 4);
        let kind = kind % 5;
        let mut c = c_orc::orc_entry { sp_offset: sp, fp_offset: fp, ra_offset: ra, ..Default::default() };
        c.set_sp_reg(sr.into());
        c.set_fp_reg(fr.into());
        c.set_ra_reg(rr.into());
        c.set_type(kind.into());
        c.set_signal(signal.into());
        let ours = OrcEntry::new(
            Kind::from_bits(kind).unwrap(), Reg::from_bits(sr).unwrap(), sp,
            Reg::from_bits(fr).unwrap(), fp, Reg::from_bits(rr).unwrap(), ra, signal,
        );
        let back = OrcEntry::from_bytes(c_bytes(&c));
        c_bytes(&c) == ours.to_bytes()
            && back.sp_reg() == Reg::from_bits(c.sp_reg() as u8)
            && back.fp_reg() == Reg::from_bits(c.fp_reg() as u8)
            && back.ra_reg() == Reg::from_bits(c.ra_reg() as u8)
            && back.kind() == Kind::from_bits(c.type_() as u8)
            && back.signal() == (c.signal() != 0)
    }
}

mod kernel_layouts {
    use std::mem::{offset_of, size_of};

    use orcwalk::KernelLayout;
    use orcwalk_suite::c_kernel as k;

    fn check(layout: KernelLayout, size: usize, x: [usize; 6], meta: bool) {
        assert_eq!(layout.pt_regs_size as usize, size);
        let [x29, x30, sp, pc, pstate, stackframe] = x;
        assert_eq!(layout.x29 as usize, x29, "x29");
        assert_eq!(layout.x30 as usize, x30, "x30");
        assert_eq!(layout.sp as usize, sp, "sp");
        assert_eq!(layout.pc as usize, pc, "pc");
        assert_eq!(layout.pstate as usize, pstate, "pstate");
        assert_eq!(layout.stackframe as usize, stackframe, "stackframe");
        assert_eq!(layout.meta_records, meta);
    }

    macro_rules! offsets {
        ($t:ty) => {
            [
                offset_of!($t, __bindgen_anon_1) + 29 * 8,
                offset_of!($t, __bindgen_anon_1) + 30 * 8,
                offset_of!(k::user_pt_regs, sp),
                offset_of!(k::user_pt_regs, pc),
                offset_of!(k::user_pt_regs, pstate),
                offset_of!($t, stackframe),
            ]
        };
    }

    #[test]
    fn pt_regs_per_kernel_version() {
        check(KernelLayout::V6_12, size_of::<k::pt_regs_v6_12>(), offsets!(k::pt_regs_v6_12), false);
        check(KernelLayout::V6_13, size_of::<k::pt_regs_v6_13>(), offsets!(k::pt_regs_v6_13), true);
        check(
            KernelLayout::GENERIC_ENTRY,
            size_of::<k::pt_regs_generic_entry>(),
            offsets!(k::pt_regs_generic_entry),
            true,
        );
        assert_eq!(size_of::<k::pt_regs_v6_13>(), 336);
        assert_eq!(size_of::<k::pt_regs_generic_entry>(), 320);
    }

    #[test]
    fn meta_record_and_cpu_context() {
        assert_eq!(offset_of!(k::frame_record_meta, type_), 16);
        assert_eq!(k::FRAME_META_TYPE_NONE as u64, orcwalk::layout::META_NONE);
        assert_eq!(k::FRAME_META_TYPE_FINAL as u64, orcwalk::layout::META_FINAL);
        assert_eq!(k::FRAME_META_TYPE_PT_REGS as u64, orcwalk::layout::META_PT_REGS);
        // DESIGN §4: cpu_context fp @80, sp @88, pc @96.
        assert_eq!(
            (offset_of!(k::cpu_context, fp), offset_of!(k::cpu_context, sp), offset_of!(k::cpu_context, pc)),
            (80, 88, 96)
        );
    }
}

mod abi {
    use std::mem::{offset_of, size_of};

    use orcwalk::ffi as r;
    use orcwalk_suite::c_abi as c;

    macro_rules! same {
        ($c:ty, $r:ty, [$($f:ident),*]) => {
            assert_eq!(size_of::<$c>(), size_of::<$r>(), stringify!($c));
            $( assert_eq!(offset_of!($c, $f), offset_of!($r, $f), concat!(stringify!($c), ".", stringify!($f))); )*
        };
    }

    #[test]
    fn structs_match_the_header() {
        same!(c::orcwalk_table, r::OrcwalkTable, [ip, orc, num_entries, lookup_blocks, lookup, lookup_base, ip_addr]);
        same!(
            c::orcwalk_table_file,
            r::OrcwalkTableFile,
            [table, image_id, image_id_len, image_id_kind, proven, error]
        );
        same!(
            c::orcwalk_layout,
            r::OrcwalkLayout,
            [pt_regs_size, x29, x30, sp, pc, pstate, stackframe, meta_records, va_bits]
        );
        same!(c::orcwalk_stack, r::OrcwalkStack, [low, high, kind, pad]);
        same!(c::orcwalk_ftrace, r::OrcwalkFtrace, [callsite, size, record, fp, lr, sp]);
        same!(c::orcwalk_module_text, r::OrcwalkModuleText, [table, text_start, text_end]);
        same!(c::orcwalk_verdict, r::OrcwalkVerdict, [reason, pad, pc, fp]);
        same!(
            c::orcwalk_context,
            r::OrcwalkContext,
            [
                table,
                layout,
                text_start,
                text_end,
                entry_start,
                entry_end,
                fgraph_return,
                kretprobe_trampoline,
                stacks,
                nr_stacks,
                task_stack_only,
                start_regs,
                mainline,
                pc,
                sp,
                fp,
                lr,
                max_frames,
                flags,
                read,
                recover,
                ctx,
                function,
                ftrace,
                module,
                cache
            ]
        );
        assert_eq!(c::orcwalk_stack_kind_ORCWALK_STACK_EFI, 5);
        assert_eq!(c::ORCWALK_CACHE_SLOTS as usize, r::CACHE_SLOTS);
        assert_eq!(size_of::<c::orcwalk_cache>(), size_of::<r::OrcwalkCache>());
        assert_eq!(align_of::<c::orcwalk_cache>(), align_of::<r::OrcwalkCache>());
    }
}
