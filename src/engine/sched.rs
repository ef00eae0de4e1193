//! The scheduler: one event queue in time order with deterministic tie-breaks.

use super::*;

/// Index of a VM in `Engine::vms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct VmIx(pub(super) usize);

/// Index of a replication group in `Engine::groups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct GroupIx(pub(super) usize);

/// Index of a datastore in the topology's `datastores`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct DsIx(pub(super) usize);

/// Id of a swapped pair (`health`'s `SwapSaved::id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct SwapId(pub(super) u64);

/// Which of a group migration's timers fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum GroupTick {
    /// Decide now (a member stopped or finished).
    Check,
    /// The once-a-second poll while members copy.
    Poll,
}

/// Events, in the order they run at equal times: first by kind (the variants' order),
/// then by their fields in order (the index, then the generation that drops stale
/// events). Each variant carries its own typed index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Ev {
    RunDone { vm: VmIx, run_gen: u64 },
    MirrorLand { vm: VmIx },
    Publish { group: GroupIx, gen_: u64 },
    Cut { group: GroupIx, gen_: u64 },
    Metadata { gen_: u64 },
    Stretch { ds: DsIx, gen_: u64 },
    Health { swap: SwapId, gen_: u64 },
    Host { vm: VmIx, gen_: u64 },
    Group { tick: GroupTick, op: u64 },
    Placement { vm: VmIx },
    Across { op: u64, step: u64 },
    GuestWrite { vm: VmIx, gen_: u64 },
    GuestRead { vm: VmIx, gen_: u64 },
}

/// A queued event. Ordered by time, then by the event (kind, index, generation), then by
/// `seq`, the order of scheduling, which only separates identical events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Scheduled {
    pub(super) at: SimTime,
    pub(super) ev: Ev,
    pub(super) seq: u64,
}

/// The queue holds the earliest event on top.
pub(super) type Queued = Reverse<Scheduled>;

impl Ev {
    /// A guest's read or write tick.
    pub(super) fn guest(kind: OpKind, vm: VmIx, gen_: u64) -> Ev {
        match kind {
            OpKind::Write => Ev::GuestWrite { vm, gen_ },
            OpKind::Read => Ev::GuestRead { vm, gen_ },
        }
    }
}

impl Engine {
    /// Queues `ev` at `at`.
    pub(super) fn schedule(&mut self, at: SimTime, ev: Ev) {
        let seq = self.sched_seq;
        self.sched_seq += 1;
        self.queue.push(Reverse(Scheduled { at, ev, seq }));
    }

    /// Runs every event due up to and including `until`, then sets the clock to `until`.
    pub fn advance(&mut self, until: SimTime) -> Result<(), EngineError> {
        while let Some(&Reverse(Scheduled { at: t, ev, .. })) = self.queue.peek() {
            if t > until {
                break;
            }
            self.queue.pop();
            self.now = self.now.max(t);
            match ev {
                Ev::RunDone {
                    vm: VmIx(i),
                    run_gen,
                } => {
                    if run_gen == self.vms[i].run_gen
                        && self.vms[i]
                            .migration
                            .as_ref()
                            .is_some_and(|m| m.run_ends_at == Some(t))
                    {
                        self.on_run_done(i, t)?;
                    }
                }
                Ev::MirrorLand { vm: VmIx(i) } => self.on_mirror_land(i, t)?,
                Ev::Publish { group, gen_ } => self.on_publish(group.0, gen_)?,
                Ev::Cut { group, gen_ } => self.on_cut(group.0, gen_)?,
                Ev::Metadata { gen_ } => self.on_metadata(gen_)?,
                Ev::Stretch { ds, gen_ } => self.on_stretch_event(ds.0, gen_)?,
                Ev::Health { swap, gen_ } => self.on_health_event(swap, gen_)?,
                Ev::Host { vm, gen_ } => self.on_hosts_event(vm.0, gen_)?,
                Ev::Group { tick, op } => self.on_group_event(tick, op)?,
                Ev::Placement { vm } => self.on_placement_event(vm.0)?,
                Ev::Across { op, step } => self.on_across_step(op, step)?,
                Ev::GuestWrite { vm, gen_ } => self.on_guest_tick(vm, gen_, OpKind::Write, t)?,
                Ev::GuestRead { vm, gen_ } => self.on_guest_tick(vm, gen_, OpKind::Read, t)?,
            }
        }
        self.now = self.now.max(until);
        self.check_rpo_alarms();
        self.debug_check_invariants();
        Ok(())
    }

    /// A guest's next read or write fell due: queue the one after it, then issue it.
    fn on_guest_tick(
        &mut self,
        vm: VmIx,
        gen_: u64,
        kind: OpKind,
        t: SimTime,
    ) -> Result<(), EngineError> {
        let i = vm.0;
        if !self.workloads_on || gen_ != self.vms[i].guest_gen || self.vms[i].down {
            return Ok(());
        }
        let v = &self.vms[i];
        let iops = match kind {
            OpKind::Write => v.write_iops,
            OpKind::Read => v.read_iops,
        };
        let interval = (SECOND / u64::from(iops.max(1))).max(1);
        self.schedule(t + interval, Ev::guest(kind, vm, gen_));
        let block = self.next_block(i);
        self.guest_op(
            i,
            GuestOp {
                kind,
                block,
                issued: t,
            },
            t,
        )
    }

    /// The time of the next queued event, if any.
    pub fn next_event_time(&self) -> Option<SimTime> {
        self.queue.peek().map(|Reverse(s)| s.at)
    }

    /// Runs until VM `vm`'s migration has ended, or `limit` is reached.
    pub fn run_until_migrated(&mut self, vm: &str, limit: SimTime) -> Result<bool, EngineError> {
        let i = self
            .vm_index(vm)
            .ok_or_else(|| EngineError::NoSuchVm(vm.into()))?;
        while self.vms[i].migration.is_some() {
            let Some(t) = self.next_event_time() else {
                break;
            };
            if t > limit {
                break;
            }
            self.advance(t)?;
        }
        Ok(self.vms[i].migration.is_none())
    }
}
