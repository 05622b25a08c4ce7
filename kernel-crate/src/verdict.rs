//! The answer: reliable, or unreliable with the reason and the place.

/// Why a walk could not prove the stack. Each names one rule of the walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A frame record or stack slot address is not 8-byte aligned.
    Alignment,
    /// An object (frame record, meta record, pt_regs, saved slot) is not wholly on an allowed stack.
    OffStack,
    /// The walk came back to a stack it had left.
    StackReentered,
    /// Frame addresses did not strictly increase within one stack (covers loops).
    NotIncreasing,
    /// A memory read failed.
    ReadFault,
    /// A pc outside known text.
    UnknownText,
    /// No ORC entry covers the pc.
    MissingOrc,
    /// The ORC entry is UNDEFINED (gap, terminator, rule the generator could not express).
    OrcUndefined,
    /// ORC type the walk cannot use here (e.g. REGS from CFI, END_OF_STACK in a kernel).
    OrcUnexpected,
    /// The frame pointer is not where ORC says the function keeps its frame record (at a call
    /// site), or after an exception neither that record nor the caller's x29 saved in it.
    FpMismatch,
    /// The caller's CFA computed from ORC is below the callee's.
    CfaBelowCallee,
    /// ORC says the return address is still in x30 at a call site, which cannot be.
    LrLiveAtCall,
    /// The caller built no frame record and ORC cannot prove where its return address is.
    NoFrameRecord,
    /// A trampoline return address whose original could not be recovered.
    Trampoline,
    /// A meta record of type NONE or unknown, or FINAL anywhere but `task_pt_regs->stackframe`.
    BadMetaRecord,
    /// An exception boundary under the mainline policy (which does not cross them).
    ExceptionBoundary,
    /// An interrupted pc whose ORC comes from CFI that is only valid at call sites.
    SyncOnlyCfi,
    /// The caller's CFA hangs off x29: nothing anchors it to the stack pointer, so a saved fp
    /// aimed at another valid record would skip frames unnoticed (refused unless
    /// in strict mode or from unproven rows: `Config::strict`).
    FpBasedCfa,
    /// The start of the walk is unusable (e.g. a blocked task whose saved sp is off its stack).
    BadStart,
    /// More frames than the limit, or the consumer stopped the walk (its buffer is full).
    FrameLimit,
    /// The instruction before a return address is not a call (`bl`, `blr`).
    NotACallSite,
    /// The call before a return address names a function that is not the one it returns from
    /// and cannot tail-call into it: the address was read from the wrong slot.
    WrongCallee,
    /// After an exception x30 still holds the interrupted function's own return address, but
    /// the slot its ORC row names holds another: the row does not describe this moment.
    LrContradictsRow,
    /// A return address into the signal-return trampoline, but the trampoline is not
    /// `mov x8, #139; svc #0`, or the signal frame is not exactly where the handler's CFA and
    /// x29 say (frame record not the sigframe's, its {fp, lr} not the saved x29/x30, the saved
    /// sp not right above it, the saved pstate not EL0 AArch64).
    BadSigframe,
}

impl Reason {
    /// The reason's name for C callers (`orcwalk_reason_name`).
    pub const fn as_cstr(self) -> &'static core::ffi::CStr {
        match self {
            Reason::Alignment => c"bad alignment",
            Reason::OffStack => c"object off the allowed stacks",
            Reason::StackReentered => c"stack re-entered",
            Reason::NotIncreasing => c"frame addresses not increasing (loop)",
            Reason::ReadFault => c"memory read failed",
            Reason::UnknownText => c"pc not in known text",
            Reason::MissingOrc => c"no ORC entry",
            Reason::OrcUndefined => c"ORC entry undefined",
            Reason::OrcUnexpected => c"ORC type not usable here",
            Reason::FpMismatch => c"frame pointer disagrees with ORC",
            Reason::CfaBelowCallee => c"caller CFA below callee CFA",
            Reason::LrLiveAtCall => c"ORC says LR live at a call site",
            Reason::NoFrameRecord => c"caller has no frame record",
            Reason::Trampoline => c"unrecoverable trampoline",
            Reason::BadMetaRecord => c"bad meta frame record",
            Reason::ExceptionBoundary => c"exception boundary (mainline policy)",
            Reason::SyncOnlyCfi => c"interrupted pc in call-site-only CFI",
            Reason::FpBasedCfa => c"CFA on x29, unanchored",
            Reason::BadStart => c"unusable start state",
            Reason::FrameLimit => c"frame limit or consumer full",
            Reason::NotACallSite => c"return address does not follow a call",
            Reason::WrongCallee => c"return address's call leads elsewhere",
            Reason::LrContradictsRow => c"x30 contradicts the row's return-address slot",
            Reason::BadSigframe => c"bad signal frame",
        }
    }

    pub fn as_str(self) -> &'static str {
        self.as_cstr().to_str().unwrap_or("?")
    }

    /// Every reason, in discriminant order (`Reason::ALL[r as usize] == r`).
    pub const ALL: [Reason; 24] = [
        Reason::Alignment,
        Reason::OffStack,
        Reason::StackReentered,
        Reason::NotIncreasing,
        Reason::ReadFault,
        Reason::UnknownText,
        Reason::MissingOrc,
        Reason::OrcUndefined,
        Reason::OrcUnexpected,
        Reason::FpMismatch,
        Reason::CfaBelowCallee,
        Reason::LrLiveAtCall,
        Reason::NoFrameRecord,
        Reason::Trampoline,
        Reason::BadMetaRecord,
        Reason::ExceptionBoundary,
        Reason::SyncOnlyCfi,
        Reason::FpBasedCfa,
        Reason::BadStart,
        Reason::FrameLimit,
        Reason::NotACallSite,
        Reason::WrongCallee,
        Reason::LrContradictsRow,
        Reason::BadSigframe,
    ];

    /// The reason with this discriminant (C's `reason - 1`).
    pub fn from_code(code: u32) -> Option<Reason> {
        Reason::ALL.get(usize::try_from(code).ok()?).copied()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every frame was proven and the walk ended at the expected end of the stack.
    Reliable,
    /// Proof failed: why, at which pc, with which frame pointer.
    Unreliable { reason: Reason, pc: u64, fp: u64 },
}

impl Verdict {
    pub fn is_reliable(&self) -> bool {
        matches!(self, Verdict::Reliable)
    }
}
