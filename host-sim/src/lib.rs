//! orcwalk-sim: the userspace harness. Stack dumps as ELF cores, replay of dumps through the
//! `orcwalk` unwinder against their ground truth, a seeded synthetic stack generator, and the
//! report that counts false-reliable verdicts (which must be zero).

pub mod capture;
pub mod dump;
pub mod lines;
pub mod replay;
pub mod report;
pub mod svg;
pub mod symbols;
pub mod synth;
pub mod text;
pub mod truth;
