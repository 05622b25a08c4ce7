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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub pc: u64,
    /// The frame pointer in effect for this frame (0 where the function has no record yet).
    pub fp: u64,
    pub kind: FrameKind,
}
