//! One reported frame.

/// How a frame's pc was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// The starting pc (caller, blocked task, or interrupted pc taken from registers).
    Start,
    /// A return address read from a frame record or from the stack slot ORC names.
    Return,
    /// A return address a trampoline had replaced, recovered through `ReturnRecovery`.
    Recovered,
    /// The pc saved in a `pt_regs` at an exception boundary.
    Exception,
    /// A return address still in x30 right after an exception (leaf or prologue interrupted).
    LinkRegister,
}

/// What proved the step that found a frame (DESIGN §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Witness {
    /// The start of the walk: given, not found.
    Given,
    /// Two independent witnesses agree: the CFA from sp through a proven ORC row and the frame
    /// record where x29 points; or an exception's saved registers where the meta record, the
    /// stack layout and the interrupted pc's row agree.
    Two,
    /// One: the CFA can only hang off x29 (alloca, dynamic frames), so the frame-pointer chain
    /// is the witness, as mainline and x86 ORC trust it. Only from a proven row.
    FramePointer,
    /// One: a caller that built no frame record, found through its proven ORC row alone.
    Orc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub pc: u64,
    /// The frame pointer in effect for this frame (0 where the function has no record yet).
    pub fp: u64,
    pub kind: FrameKind,
    pub witness: Witness,
}
