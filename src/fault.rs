//! Named fault points at the engine's persistence steps, for crash tests.
//!
//! Every step that changes what is on disk calls [`point`] with a name
//! (`"publish.commit-written"`). Unarmed, a point costs one thread-local load and a branch.
//! A test arms this thread ([`arm`]) to fail the n-th pass of one point with an injected
//! [`io::Error`] ("injected fault at <name>"), and from then on every later point and every
//! [`alive`] check on the thread fails too: the process is "dead", so nothing after the
//! crash reaches the disk, even where the engine would catch the first error and go on.
//! [`record`] lists the points a run passes instead. [`fail_next`] injects a transient error
//! instead of a crash: one pass of one point fails and the thread lives on (a full disk, a
//! flaky path), so the engine's handling of an ordinary I/O error can be tested. The state
//! is per thread, so tests that run in parallel threads do not see each other's faults.

use std::cell::{Cell, RefCell};
use std::io;

thread_local! {
    /// Whether this thread records or injects at all (the one branch of the fast path).
    static ON: Cell<bool> = const { Cell::new(false) };
    static STATE: RefCell<State> = RefCell::new(State::default());
}

#[derive(Default)]
struct State {
    recording: bool,
    /// Points passed, in the order first seen, with how often.
    hits: Vec<(&'static str, u64)>,
    armed: Option<(String, u64)>,
    seen: u64,
    tripped: Option<String>,
    /// A transient error: the n-th pass of this point fails, nothing after it does.
    transient: Option<(String, u64)>,
    transient_seen: u64,
}

/// The payload of an injected error.
#[derive(Debug)]
struct Injected(String);

impl std::fmt::Display for Injected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "injected fault at {}", self.0)
    }
}

impl std::error::Error for Injected {}

fn injected(at: &str) -> io::Error {
    io::Error::other(Injected(at.to_string()))
}

/// A persistence step named `name`: fails when armed for this pass, or after a fault fired.
#[inline]
pub fn point(name: &'static str) -> io::Result<()> {
    if !ON.with(Cell::get) {
        return Ok(());
    }
    slow(Some(name))
}

/// Fails once a fault has fired on this thread (a dead process writes nothing more); for
/// the writes between named points (guest data, journal lines, removals).
#[inline]
pub fn alive() -> io::Result<()> {
    if !ON.with(Cell::get) {
        return Ok(());
    }
    slow(None)
}

#[cold]
fn slow(name: Option<&'static str>) -> io::Result<()> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if let Some(at) = &s.tripped {
            return Err(injected(&format!("{at} (already crashed)")));
        }
        let Some(name) = name else {
            return Ok(());
        };
        if s.recording {
            match s.hits.iter_mut().find(|(n, _)| *n == name) {
                Some((_, c)) => *c += 1,
                None => s.hits.push((name, 1)),
            }
        }
        if let Some((point, nth)) = s.transient.clone()
            && point == name
        {
            s.transient_seen += 1;
            if s.transient_seen == nth {
                s.transient = None;
                return Err(injected(&format!("{name}#{nth} (transient I/O error)")));
            }
        }
        if let Some((armed, nth)) = s.armed.clone()
            && armed == name
        {
            s.seen += 1;
            if s.seen == nth {
                let at = format!("{name}#{nth}");
                s.tripped = Some(at.clone());
                return Err(injected(&at));
            }
        }
        Ok(())
    })
}

/// Starts recording, on this thread, which points are passed (and clears any arming).
pub fn record() {
    STATE.with(|s| {
        *s.borrow_mut() = State {
            recording: true,
            ..State::default()
        }
    });
    ON.with(|o| o.set(true));
}

/// Arms this thread: the `nth` pass (from 1) of point `name` fails, and everything after.
pub fn arm(name: &str, nth: u64) {
    STATE.with(|s| {
        *s.borrow_mut() = State {
            armed: Some((name.to_string(), nth)),
            ..State::default()
        }
    });
    ON.with(|o| o.set(true));
}

/// Makes the `nth` pass (from 1, counted from this call) of point `name` on this thread
/// fail with an injected [`io::Error`], once, *without* crashing: later points and
/// [`alive`] checks pass. Keeps any arming or recording in place; [`arm`], [`record`] and
/// [`disarm`] clear it.
pub fn fail_next(name: &str, nth: u64) {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.transient = Some((name.to_string(), nth));
        s.transient_seen = 0;
    });
    ON.with(|o| o.set(true));
}

/// The points passed since [`record`], in first-seen order, with their pass counts.
pub fn hits() -> Vec<(&'static str, u64)> {
    STATE.with(|s| s.borrow().hits.clone())
}

/// The fault that fired on this thread (`"<name>#<n>"`), if one did.
pub fn tripped() -> Option<String> {
    STATE.with(|s| s.borrow().tripped.clone())
}

/// Turns everything off on this thread.
pub fn disarm() {
    ON.with(|o| o.set(false));
    STATE.with(|s| *s.borrow_mut() = State::default());
}

/// Whether `e` is (or wraps) an injected fault.
pub fn is_injected(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Injected>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unarmed_points_pass_and_record_nothing() {
        disarm();
        assert!(point("x").is_ok() && alive().is_ok());
        assert!(hits().is_empty() && tripped().is_none());
    }

    #[test]
    fn records_counts_in_first_seen_order() {
        record();
        for name in ["b", "a", "b"] {
            point(name).unwrap();
        }
        assert_eq!(hits(), vec![("b", 2), ("a", 1)]);
        disarm();
    }

    #[test]
    fn the_nth_pass_fails_and_everything_after_it() {
        arm("a", 2);
        point("a").unwrap();
        point("b").unwrap();
        alive().unwrap();
        let e = point("a").unwrap_err();
        assert!(is_injected(&e));
        assert_eq!(e.to_string(), "injected fault at a#2");
        assert!(point("b").is_err() && alive().is_err());
        assert_eq!(tripped().as_deref(), Some("a#2"));
        disarm();
        assert!(point("a").is_ok());
    }

    #[test]
    fn fail_next_fails_one_pass_and_the_thread_lives_on() {
        disarm();
        fail_next("a", 2);
        point("a").unwrap();
        let e = point("a").unwrap_err();
        assert!(is_injected(&e));
        assert_eq!(e.to_string(), "injected fault at a#2 (transient I/O error)");
        assert!(point("a").is_ok() && point("b").is_ok() && alive().is_ok());
        assert_eq!(tripped(), None, "not a crash");
        disarm();
    }
}
