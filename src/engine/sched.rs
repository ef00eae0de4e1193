//! The scheduler: one event queue in time order with deterministic tie-breaks.

use super::*;

/// Event kinds, in the order they run at equal times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Ev {
    RunDone,
    MirrorLand,
    Publish,
    Cut,
    Metadata,
    Stretch,
    Health,
    Host,
    Group,
    Placement,
    GuestWrite,
    GuestRead,
}

/// A queued event: (time, kind, vm index, generation).
pub(super) type Queued = Reverse<(SimTime, Ev, usize, u64)>;

impl Engine {
    /// Runs every event due up to and including `until`, then sets the clock to `until`.
    pub fn advance(&mut self, until: SimTime) -> Result<(), EngineError> {
        while let Some(&Reverse((t, ev, i, gen_))) = self.queue.peek() {
            if t > until {
                break;
            }
            self.queue.pop();
            self.now = self.now.max(t);
            match ev {
                Ev::RunDone => {
                    if gen_ == self.vms[i].run_gen
                        && self.vms[i]
                            .migration
                            .as_ref()
                            .is_some_and(|m| m.run_ends_at == Some(t))
                    {
                        self.on_run_done(i, t)?;
                    }
                }
                Ev::MirrorLand => self.on_mirror_land(i, t)?,
                Ev::Publish => self.on_publish(i, gen_)?,
                Ev::Cut => self.on_cut(i, gen_)?,
                Ev::Metadata => self.on_metadata(gen_)?,
                Ev::Stretch => self.on_stretch_event(i, gen_)?,
                Ev::Health => self.on_health_event(i, gen_)?,
                Ev::Host => self.on_hosts_event(i, gen_)?,
                Ev::Group => self.on_group_event(i, gen_)?,
                Ev::Placement => self.on_placement_event(i, gen_)?,
                Ev::GuestWrite | Ev::GuestRead => {
                    if !self.workloads_on || gen_ != self.vms[i].guest_gen || self.vms[i].down {
                        continue;
                    }
                    let vm = &self.vms[i];
                    let iops = if ev == Ev::GuestWrite {
                        vm.write_iops
                    } else {
                        vm.read_iops
                    };
                    let interval = (SECOND / u64::from(iops.max(1))).max(1);
                    self.queue.push(Reverse((t + interval, ev, i, gen_)));
                    let block = self.next_block(i);
                    let kind = if ev == Ev::GuestWrite {
                        OpKind::Write
                    } else {
                        OpKind::Read
                    };
                    self.guest_op(
                        i,
                        GuestOp {
                            kind,
                            block,
                            issued: t,
                        },
                        t,
                    )?;
                }
            }
        }
        self.now = self.now.max(until);
        self.check_rpo_alarms();
        Ok(())
    }

    /// The time of the next queued event, if any.
    pub fn next_event_time(&self) -> Option<SimTime> {
        self.queue.peek().map(|Reverse((t, ..))| *t)
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
