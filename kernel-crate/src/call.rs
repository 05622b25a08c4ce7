//! The second witness of a return address: the instruction before it.
//!
//! ORC says where a function keeps its return address; the text says whether the value found
//! there can be one. A return address follows a call (`bl`, `blr` and its PAC forms), and a direct
//! `bl` names its callee: the function the address returns from must be that callee, or be
//! reached from it by tail calls. A stale return address read from the wrong slot (a row that no
//! longer describes the code, a table for another build) is usually a real return address of
//! some other call, which the first check passes and the second refuses.
//!
//! Tail calls make the second check one-sided: `a` calls `b`, `b` ends in `b c`, `c` is the
//! function interrupted, and the return address names `b`. So a mismatch is refused only when the
//! named callee cannot tail-call at all: no branch leaves its bounds and it has no indirect jump.
//! Where the callee is not a known function (a PLT stub, a module veneer) nothing is refused.

use orc_format::a64::{call_target, flow, is_indirect_call};

use crate::code::CodeInfo;

/// The most instructions a callee is scanned for tail calls; a longer one is given the benefit
/// of the doubt (it is assumed to tail-call), so the bound costs coverage of nothing.
const SCAN_LIMIT: u64 = 16_384;

/// True when the function `[start, end)` may leave by a tail call (or cannot be read).
fn may_tail_call<C: CodeInfo>(code: &C, start: u64, end: u64) -> bool {
    let mut pc = start;
    let mut n = 0u64;
    while pc < end {
        if n >= SCAN_LIMIT {
            return true;
        }
        let Some(i) = code.insn(pc) else { return true };
        let f = flow(pc, i);
        if f.indirect || f.target.is_some_and(|t| t < start || t >= end) {
            return true;
        }
        n = n.saturating_add(1);
        pc = match pc.checked_add(4) {
            Some(p) => p,
            None => return true,
        };
    }
    false
}

/// What the text says about return address `ra` of a frame whose function contains `callee_pc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallSite {
    /// The text agrees (or cannot be read here).
    Consistent,
    /// The instruction before `ra` is not a call.
    NotACall,
    /// A direct call to a function that is not `callee_pc`'s and cannot tail-call into it.
    WrongCallee,
}

/// True when `ra` can only be the return address of the current invocation of the function
/// holding `pc`: the instruction before it is a `bl` into that function, from another function.
/// (From the same function it may as well be the return address of a recursive call this
/// invocation made and returned from.) Needs text and function bounds; `false` without them.
pub fn returns_from<C: CodeInfo>(code: &C, ra: u64, pc: u64) -> bool {
    let Some(at) = ra.checked_sub(4) else { return false };
    let (Some(i), Some((start, end))) = (code.insn(at), code.function(pc)) else { return false };
    let inside = |a: u64| start <= a && a < end;
    !inside(at) && call_target(at, i).is_some_and(inside)
}

/// The call before `ra`, taken at its word: a direct call whose target is not in the function
/// holding `callee_pc` is `WrongCallee` here, tail calls not considered (where none can
/// intervene, as for ftrace's trampoline entered from a function's patched entry). Returns the
/// target's function with it, for [`check`] to ask whether it can tail-call.
// Inlined into both callers: outlined, its frame deepened the kernel build's stack budget.
#[inline(always)]
pub fn direct<C: CodeInfo>(code: &C, ra: u64, callee_pc: u64) -> (CallSite, Option<(u64, u64)>) {
    let Some(at) = ra.checked_sub(4) else { return (CallSite::NotACall, None) };
    let Some(i) = code.insn(at) else { return (CallSite::Consistent, None) };
    if is_indirect_call(i) {
        return (CallSite::Consistent, None);
    }
    let Some(target) = call_target(at, i) else { return (CallSite::NotACall, None) };
    let Some((start, end)) = code.function(callee_pc) else { return (CallSite::Consistent, None) };
    // Called at its start, or at an inner entry point of the same function (assembly).
    if start <= target && target < end {
        return (CallSite::Consistent, None);
    }
    match code.function(target) {
        Some(f) => (CallSite::WrongCallee, Some(f)),
        None => (CallSite::Consistent, None),
    }
}

pub fn check<C: CodeInfo>(code: &C, ra: u64, callee_pc: u64) -> CallSite {
    match direct(code, ra, callee_pc) {
        (CallSite::WrongCallee, Some((ts, te))) if may_tail_call(code, ts, te) => CallSite::Consistent,
        (verdict, _) => verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orc_format::OrcEntry;

    /// Three functions: `f` at 0x100 (bl g at 0x104), `g` at 0x200 (tail-calls h), `h` at 0x300,
    /// `k` at 0x400 (plain leaf: ret).
    struct Img;
    impl CodeInfo for Img {
        fn is_text(&self, _: u64) -> bool {
            true
        }
        fn orc(&self, _: u64) -> Option<OrcEntry> {
            None
        }
        fn insn(&self, pc: u64) -> Option<u32> {
            Some(match pc {
                0x104 => 0x9400_003f, // bl 0x200
                0x108 => 0xd63f_0020, // blr x1
                0x10c => 0x9400_00bd, // bl 0x400
                0x110 => 0xd503_201f, // nop
                0x200 => 0x1400_0040, // b 0x300
                0x400 => 0xd65f_03c0, // ret
                _ => 0xd503_201f,
            })
        }
        fn function(&self, pc: u64) -> Option<(u64, u64)> {
            [(0x100, 0x180), (0x200, 0x204), (0x300, 0x380), (0x400, 0x404)].into_iter().find(|f| f.0 <= pc && pc < f.1)
        }
    }

    #[test]
    fn calls_and_their_callees() {
        assert_eq!(call_target(0x104, 0x9400_003f), Some(0x200));
        assert_eq!(call_target(0x104, 0x97ff_ffff), Some(0x100));
        // g called directly, g interrupted.
        assert_eq!(check(&Img, 0x108, 0x200), CallSite::Consistent);
        // g called, h interrupted: g tail-calls.
        assert_eq!(check(&Img, 0x108, 0x310), CallSite::Consistent);
        // blr: any callee.
        assert_eq!(check(&Img, 0x10c, 0x310), CallSite::Consistent);
        // k called, h interrupted: k cannot lead to h.
        assert_eq!(check(&Img, 0x110, 0x310), CallSite::WrongCallee);
        // Not after a call.
        assert_eq!(check(&Img, 0x114, 0x310), CallSite::NotACall);
        assert_eq!(check(&Img, 0, 0x310), CallSite::NotACall);
    }
}
