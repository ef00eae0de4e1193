//! drconsole: a disaster-recovery-aware storage migration console.
//!
//! The library holds everything but the window: the topology model, DR tags and impact
//! ratings, the DR report and the command line. The GUI lives in [`gui`].

pub mod bench;
pub mod cli;
pub mod disk;
pub mod dr;
pub mod engine;
pub mod fault;
pub mod fsutil;
pub mod generate;
pub mod gui;
#[cfg(test)]
mod layers_tests;
pub mod recovery;
pub mod replica;
pub mod report;
pub mod scenario;
pub mod topology;
pub mod workspace;
