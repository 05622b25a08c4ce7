//! orcwalk: a reliable stack unwinder for arm64 Linux.
//!
//! It walks the frame-pointer chain the way mainline arm64 does, and proves every frame against an
//! ORC table generated from the compiler's CFI: the frame record must sit exactly where ORC says
//! the function keeps it. Where mainline gives up (an exception boundary) it continues from the
//! saved registers, as far as the ORC entry at the interrupted pc proves the way.
//!
//! Everything the walk reads goes through traits ([`Memory`], [`Stacks`], [`CodeInfo`],
//! [`ReturnRecovery`]), so the same code runs in a kernel and in the simulator. No allocation, no
//! recursion, no floating point, bounded work, and no panicking operation outside tests.
#![no_std]
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented,
        clippy::float_arithmetic
    )
)]

pub mod call;
pub mod code;
#[allow(unsafe_code)] // the one module allowed raw pointers; see its header
pub mod ffi;
pub mod frame;
pub mod layout;
pub mod memory;
pub mod pac;
pub mod recovery;
pub mod stacks;
pub mod verdict;
pub mod walk;

/// For standalone builds (the link-time panic check); a kernel provides its own handler.
#[cfg(feature = "panic-handler")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[cfg(test)]
#[allow(unsafe_code)]
mod ffi_tests;
/// Executes calls, prologues, exceptions and stack switches to build kernel-shaped stacks with
/// known truth: the unit tests' and the simulator's synthetic generator. Host only (std).
#[cfg(any(test, feature = "testkit"))]
#[allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::expect_used
)]
pub mod testkit;
#[cfg(test)]
mod walk_tests;

pub use code::{CachedCode, CodeInfo, OrcCache, TableCode};
pub use frame::{Frame, FrameKind};
pub use layout::KernelLayout;
pub use memory::Memory;
pub use recovery::{NoRecovery, ReturnRecovery, Trampoline};
pub use stacks::{StackInfo, StackKind, StackList, Stacks};
pub use verdict::{Reason, Verdict};
pub use walk::{Config, EndRule, Policy, Start, walk};
