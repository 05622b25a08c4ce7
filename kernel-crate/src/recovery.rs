//! Return addresses that trampolines replaced.

/// A return trampoline that can stand in a frame record instead of the real return address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trampoline {
    /// ftrace's function-graph `return_to_handler`.
    FgraphReturn,
    /// The kretprobe trampoline.
    Kretprobe,
}

/// Recognises trampolines and gives back the address they replaced, keyed by the frame pointer
/// of the frame whose record holds the trampoline (as `ftrace_graph_ret_addr` and
/// `kretprobe_find_ret_addr` are). `None` from `recover` makes the stack unreliable.
pub trait ReturnRecovery {
    fn trampoline(&self, pc: u64) -> Option<Trampoline>;
    fn recover(&self, which: Trampoline, fp: u64, pc: u64) -> Option<u64>;
}

/// No tracing active: no address is a trampoline.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRecovery;

impl ReturnRecovery for NoRecovery {
    fn trampoline(&self, _pc: u64) -> Option<Trampoline> {
        None
    }

    fn recover(&self, _which: Trampoline, _fp: u64, _pc: u64) -> Option<u64> {
        None
    }
}
