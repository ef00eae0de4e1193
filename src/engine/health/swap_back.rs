//! The early swap-back of a resyncing pair (seed `related-ha-and-replication-abstracts.txt`,
//! "Optimized recovery in data replication environments"): while the tracked blocks are
//! copied back, the engine compares the latency recorded for the host's I/O on the replicas
//! with the latency it expects on the primaries, and redirects I/O back when their difference
//! has stayed within the faulted array's threshold (`Array(swap_back: SwapBack(latency_ms,
//! hold_s))`) for the whole hold period, in simulated time — without waiting for the resync
//! to end. The swap-back at the resync's end stays (nothing left to copy back is the best
//! case of the comparison).
//!
//! The expected latency on the primaries is their service time for a 4 KiB block plus the
//! wait for the blocks still to copy back at link bandwidth (an I/O there must not overtake
//! them). The recorded latency is the mean write latency of the pair's VMs over the last
//! simulated second (their service time if they wrote nothing). When the difference has
//! stayed within the threshold long enough, the guests are held, the few blocks left are
//! copied back (that wait is the expected latency, so the hold is at most the threshold
//! above what the guests see now), and I/O swaps back as at the resync's end.

use super::*;
use crate::engine::duration_for;

/// What the comparison sees now, for the console.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Latencies {
    /// Expected on the primaries if I/O swapped back now, µs.
    pub expected_us: u64,
    /// Recorded on the replicas, µs.
    pub recorded_us: u64,
}

impl Latencies {
    /// How much slower I/O would be on the primaries than it is on the replicas, µs.
    pub fn penalty_us(self) -> i64 {
        self.expected_us as i64 - self.recorded_us as i64
    }
}

/// Milliseconds, as settings and logs give them, to µs.
pub(super) fn ms_to_us(ms: f64) -> u64 {
    (ms * 1000.0).round().max(0.0) as u64
}

pub(super) fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Engine {
    /// The faulted array's swap-back settings for swap `k`.
    pub(super) fn swap_back_settings(&self, k: usize) -> crate::topology::SwapBack {
        let array = &self.health.swaps[k].saved.array;
        self.topology()
            .arrays
            .iter()
            .find(|a| &a.id == array)
            .map(|a| a.swap_back())
            .unwrap_or_default()
    }

    /// The latencies the early swap-back compares for swap `k` (group `g`), now.
    pub(super) fn swap_latencies(&self, k: usize, g: usize) -> Latencies {
        let s = &self.health.swaps[k];
        let spec = &self.groups[g].spec;
        let tp = |ds: &str| self.throughput.get(ds).copied().unwrap_or(400.0);
        let primary_rate = spec
            .pairs
            .iter()
            .map(|p| tp(&p.datastore))
            .fold(f64::INFINITY, f64::min);
        let primary_rate = if primary_rate.is_finite() {
            primary_rate
        } else {
            400.0
        };
        let service = duration_for(BLOCK_SIZE as u64, primary_rate);
        // Bits ÷ Mbit/s = µs.
        let left_bits = s.tracked() as f64 * BLOCK_SIZE as f64 * 8.0;
        let wait = (left_bits / spec.mbps.max(f64::MIN_POSITIVE)).ceil() as u64;
        let since = self.now.saturating_sub(SECOND);
        let vms: BTreeSet<usize> = s.vms.iter().map(|v| v.vm).collect();
        let (sum, n) = self
            .latencies
            .iter()
            .filter(|(t, i, _)| *t >= since && vms.contains(i))
            .fold((0u64, 0u64), |(sum, n), (_, _, l)| (sum + l, n + 1));
        // Nothing written in the last second: what a write would take on the replicas.
        let recorded = sum.checked_div(n).unwrap_or_else(|| {
            let replica_rate = spec
                .pairs
                .iter()
                .map(|p| tp(&p.replica))
                .fold(f64::INFINITY, f64::min);
            duration_for(
                BLOCK_SIZE as u64,
                if replica_rate.is_finite() {
                    replica_rate
                } else {
                    400.0
                },
            )
        });
        Latencies {
            expected_us: service + wait,
            recorded_us: recorded,
        }
    }

    /// One resync step of swap `k` (group `g`) has copied its batch: compare the latencies
    /// and, once the difference has stayed within the threshold for the hold period, hold
    /// the guests and let the last blocks go back before I/O swaps back.
    pub(super) fn consider_early_swap_back(
        &mut self,
        k: usize,
        g: usize,
    ) -> Result<(), EngineError> {
        if self.health.swaps[k].saved.early.is_some() || self.health.swaps[k].tracked() == 0 {
            // Under way, or nothing left: the next step swaps back at the resync's end.
            return Ok(());
        }
        let lat = self.swap_latencies(k, g);
        let sb = self.swap_back_settings(k);
        let threshold = ms_to_us(sb.latency_ms) as i64;
        let hold = (sb.hold_s * SECOND as f64).round() as SimTime;
        let now = self.now;
        let s = &mut self.health.swaps[k];
        if lat.penalty_us() > threshold {
            s.within_since = None;
            return Ok(());
        }
        let since = *s.within_since.get_or_insert(now);
        if now - since < hold {
            return Ok(());
        }
        debug_assert!(
            lat.penalty_us() <= threshold,
            "an early swap-back only starts within the threshold"
        );
        s.saved.early = Some(now);
        let left = s.tracked();
        for i in s.vms.iter().map(|v| v.vm).collect::<Vec<_>>() {
            // Held: no new write may land on the replicas while the last blocks go back.
            self.vms[i].guest_gen += 1;
        }
        let id = self.groups[g].spec.id.clone();
        let primaries = self.arrays_label(
            self.groups[g]
                .spec
                .pairs
                .iter()
                .map(|p| p.datastore.clone()),
        );
        let replicas =
            self.arrays_label(self.groups[g].spec.pairs.iter().map(|p| p.replica.clone()));
        self.info(format!(
            "Array health: {id} swaps back before its resync ends: the latency expected on {primaries} ({:.2} ms, {left} block(s) still to copy back) stayed within {} ms of the latency recorded on {replicas} ({:.2} ms) for {} s; guests held while the last block(s) go back",
            us_to_ms(lat.expected_us),
            sb.latency_ms,
            us_to_ms(lat.recorded_us),
            sb.hold_s
        ));
        self.persist_state()
    }

    /// The link went down during the last copies of an early swap-back: let the guests go
    /// on (on the replicas) and start the comparison over once the link is back.
    pub(super) fn abandon_early_swap_back(&mut self, k: usize) -> Result<(), EngineError> {
        let s = &mut self.health.swaps[k];
        if s.saved.early.take().is_none() {
            s.within_since = None;
            return Ok(());
        }
        s.within_since = None;
        let vms: Vec<usize> = s.vms.iter().map(|v| v.vm).collect();
        for &i in &vms {
            self.start_guest(i);
        }
        let label = self.group_label(&self.health.swaps[k].saved.group);
        self.push_log(
            LogLevel::Warning,
            format!(
                "Array health: {label}: the link went down while the last blocks went back; the guests go on on the replicas and the early swap-back waits for the link"
            ),
        );
        self.persist_state()
    }

    /// While an early swap-back copies the last blocks, its guests stay held
    /// ([`Engine::guest_held`]).
    pub(in crate::engine) fn early_swap_back_holds(&self, i: usize) -> bool {
        self.health
            .swaps
            .iter()
            .any(|s| s.saved.early.is_some() && s.vms.iter().any(|v| v.vm == i))
    }
}
