//! Named fault points at the engine's persistence steps, for crash tests.
//!
//! Every step that changes what is on disk calls [`point`] with a name
//! (`"publish.commit-written"`). Unarmed, a point costs one thread-local load and a branch.
//! A test arms this thread ([`arm`]) to fail the n-th pass of one point with an injected
//! [`io::Error`] ("injected fault at <name>"), and from then on every later point and every
//! [`alive`] check on the thread fails too: the process is "dead", so nothing after the
//! crash reaches the disk, even where the engine would catch the first error and go on.
//! [`record`] lists the points a run passes instead. [`fail_next`] injects a transient I/O
//! error instead of a crash: the one pass fails and the thread lives on, as after a disk's
//! passing error. The state is per thread, so tests that run in parallel threads do not see
//! each other's faults.

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
    /// The armed fault ends the process with SIGKILL instead of returning an error.
    kill: bool,
    seen: u64,
    tripped: Option<String>,
    /// A transient error: the n-th pass of the point fails once, nothing else does.
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
        // The armed crash counts every pass first, so a transient error on the same point
        // does not shift which pass crashes.
        if let Some((armed, nth)) = s.armed.clone()
            && armed == name
        {
            s.seen += 1;
            if s.seen == nth {
                if s.kill {
                    sigkill_self();
                }
                let at = format!("{name}#{nth}");
                s.tripped = Some(at.clone());
                return Err(injected(&at));
            }
        }
        if let Some((point, nth)) = s.transient.clone()
            && point == name
        {
            s.transient_seen += 1;
            if s.transient_seen == nth {
                s.transient = None;
                return Err(injected(&format!("{name}#{nth} (transient)")));
            }
        }
        Ok(())
    })
}

/// Whether this thread records or injects faults: work that would spread over helper
/// threads stays on this one then, so that every step passes its points here.
pub fn active() -> bool {
    ON.with(Cell::get)
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
        let mut s = s.borrow_mut();
        // A pending transient error stays, as [`fail_next`] keeps an arming.
        let transient = s.transient.take();
        let transient_seen = s.transient_seen;
        *s = State {
            armed: Some((name.to_string(), nth)),
            transient,
            transient_seen,
            ..State::default()
        }
    });
    ON.with(|o| o.set(true));
}

/// Arms this thread to end the whole process with SIGKILL at the `nth` pass (from 1) of
/// point `name` (right after the step it names): a real crash at a chosen moment, for tests
/// that kill a child process where a sleep would only guess when to.
pub fn arm_kill(name: &str, nth: u64) {
    arm(name, nth);
    STATE.with(|s| s.borrow_mut().kill = true);
}

/// The environment variable the binary reads at start ([`arm_from_env`]): `<point>#<n>`.
pub const KILL_AT_ENV: &str = "DRCONSOLE_KILL_AT";

/// Arms [`arm_kill`] on this thread from `DRCONSOLE_KILL_AT=<point>#<n>` if it is set.
/// A malformed value is an error naming the variable and the form it takes.
pub fn arm_from_env() -> Result<(), String> {
    let Ok(v) = std::env::var(KILL_AT_ENV) else {
        return Ok(());
    };
    let (name, n) = parse_kill_at(&v)?;
    arm_kill(name, n);
    Ok(())
}

/// `<point>#<n>` (n from 1) as the point and the pass; an error naming the variable if not.
fn parse_kill_at(v: &str) -> Result<(&str, u64), String> {
    v.rsplit_once('#')
        .and_then(|(name, n)| Some((name, n.parse::<u64>().ok()?)))
        .filter(|(name, n)| !name.is_empty() && *n >= 1)
        .ok_or_else(|| {
            format!(
                "{KILL_AT_ENV}={v:?}: expected <fault point>#<n>, n from 1 (e.g. publish.commit-written#2)"
            )
        })
}

/// SIGKILL to this process: no destructor, no buffered write and no later step runs.
fn sigkill_self() -> ! {
    // SAFETY: getpid and kill have no preconditions; SIGKILL cannot be caught.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    // SIGKILL to oneself is delivered before kill returns to user space; never reached.
    std::process::abort()
}

/// Makes the `nth` pass (from 1) of point `name` on this thread fail once with an injected
/// I/O error, without the crash state: later points and [`alive`] keep passing, so the
/// engine's own error handling runs (a transient I/O error, not a dead process). Keeps any
/// recording; replaces an earlier transient error not yet fired.
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
    fn a_kill_point_from_the_environment_must_name_a_point_and_a_pass() {
        assert_eq!(
            parse_kill_at("publish.commit-written#2"),
            Ok(("publish.commit-written", 2))
        );
        for bad in [
            "copy.run-landed",
            "#3",
            "copy.run-landed#0",
            "copy.run-landed#x",
        ] {
            let e = parse_kill_at(bad).unwrap_err();
            assert!(
                e.contains(KILL_AT_ENV) && e.contains("<fault point>#<n>"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_transient_error_fails_one_pass_and_the_thread_lives_on() {
        disarm();
        fail_next("io", 2);
        point("io").unwrap();
        point("other").unwrap();
        let e = point("io").unwrap_err();
        assert!(is_injected(&e));
        assert_eq!(e.to_string(), "injected fault at io#2 (transient)");
        assert!(point("io").is_ok() && point("other").is_ok() && alive().is_ok());
        assert_eq!(tripped(), None);
        disarm();
    }

    #[test]
    fn a_transient_error_and_an_armed_crash_on_one_point_keep_their_own_passes() {
        fail_next("a", 1);
        arm("a", 2);
        let first = point("a").unwrap_err();
        assert_eq!(first.to_string(), "injected fault at a#1 (transient)");
        assert_eq!(tripped(), None);
        assert_eq!(point("a").unwrap_err().to_string(), "injected fault at a#2");
        assert_eq!(tripped().as_deref(), Some("a#2"));
        disarm();
    }
}
