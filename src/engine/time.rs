//! Simulated time: microseconds since the workspace was created, and its conversions.

/// Simulated time in microseconds since the workspace was created.
pub type SimTime = u64;

pub const SECOND: SimTime = 1_000_000;

pub const MINUTE: SimTime = 60 * SECOND;

/// Simulated minutes (as scenarios write them) to `SimTime`.
pub fn from_minutes(m: f64) -> SimTime {
    (m.max(0.0) * MINUTE as f64).round() as SimTime
}

/// `SimTime` as minutes.
pub fn to_minutes(t: SimTime) -> f64 {
    t as f64 / MINUTE as f64
}

/// "mm:ss.s" for logs.
pub fn format_time(t: SimTime) -> String {
    let secs = t as f64 / SECOND as f64;
    let m = (secs / 60.0).floor();
    format!("{:02}:{:04.1}", m as u64, secs - m * 60.0)
}

/// Simulated bytes per microsecond for a rate in MiB/s.
pub(super) fn bytes_per_us(mib_s: f64) -> f64 {
    mib_s * 1024.0 * 1024.0 / SECOND as f64
}

/// Simulated time to move `bytes` at `mib_s` (at least 1 µs).
pub(super) fn duration_for(bytes: u64, mib_s: f64) -> SimTime {
    ((bytes as f64 / bytes_per_us(mib_s)).ceil() as SimTime).max(1)
}

/// A short duration for logs: "250 µs", "3.2 ms", "1.4 s".
pub fn format_duration(t: SimTime) -> String {
    if t < 1000 {
        format!("{t} µs")
    } else if t < SECOND {
        format!("{:.1} ms", t as f64 / 1000.0)
    } else {
        format!("{:.1} s", t as f64 / SECOND as f64)
    }
}
