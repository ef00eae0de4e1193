//! The engine through the library's API, in one test binary: the file readers on bad
//! input (`bad_input`), a crash at every fault point (`faults`) and the seeded simulation
//! (`sim`). `cargo test --test engine` runs them; `cargo test --test engine sim::` only the
//! simulation.

mod testkit;

#[path = "engine/bad_input.rs"]
mod bad_input;
#[path = "engine/faults.rs"]
mod faults;
#[path = "engine/sim.rs"]
mod sim;
