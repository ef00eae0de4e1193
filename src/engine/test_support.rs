//! Helpers shared by the engine's test modules.

use super::{Engine, SimTime, format_time};

/// Runs one event at a time until `stop` holds (fails after `limit`, naming `what`).
pub(super) fn run_until(
    e: &mut Engine,
    limit: SimTime,
    what: &str,
    stop: impl Fn(&Engine) -> bool,
) {
    while !stop(e) {
        let t = e.next_event_time().expect("events queued");
        assert!(t <= limit, "not reached by {}: {what}", format_time(limit));
        e.advance(t).unwrap();
    }
}
