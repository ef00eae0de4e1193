//! Guest I/O: seeded workloads writing stamped blocks and reading them back, and the
//! sites' journals.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OpKind {
    Write,
    Read,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct GuestOp {
    pub(super) kind: OpKind,
    pub(super) block: u64,
    pub(super) issued: SimTime,
}

/// How many recent write latencies the snapshot carries.
pub(super) const LATENCY_SAMPLES: usize = 2048;

/// Read mismatches logged per VM before going quiet.
pub(super) const READ_ERRORS_LOGGED: u64 = 3;

pub(super) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(super) fn seed_for(seed: u64, uuid: &RawUuid) -> u64 {
    let mut s = seed;
    for chunk in uuid.chunks(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        s ^= u64::from_le_bytes(b);
        splitmix(&mut s);
    }
    s
}

impl Engine {
    pub(super) fn start_workloads(&mut self) {
        if self.workloads_on {
            return;
        }
        self.workloads_on = true;
        for i in 0..self.vms.len() {
            self.start_guest(i);
        }
        self.info("Guests started".into());
    }

    /// Starts VM `i`'s guest I/O if workloads are on, the VM is up and its guest is not
    /// held ([`Engine::guest_held`]: the holder starts it when the hold ends).
    pub(super) fn start_guest(&mut self, i: usize) {
        if !self.workloads_on || self.vms[i].down || self.guest_held(i) {
            return;
        }
        let now = self.now;
        let vm = &mut self.vms[i];
        vm.guest_gen += 1;
        let gen_ = vm.guest_gen;
        // A random phase so guests do not all fire at once.
        for (iops, kind) in [(vm.write_iops, OpKind::Write), (vm.read_iops, OpKind::Read)] {
            if iops > 0 {
                let interval = SECOND / u64::from(iops);
                let phase = splitmix(&mut self.vms[i].rng) % interval.max(1);
                self.schedule(now + phase, Ev::guest(kind, VmIx(i), gen_));
            }
        }
    }

    /// Is VM `i`'s guest held, issuing no I/O: its distributed datastore is polarizing
    /// (no write is acknowledged until a side wins), its group's early swap-back is copying
    /// the last blocks back, or it pauses for its switch in a cross-site move one VM at a
    /// time. Starting the workloads again, or a reopen, leaves a held guest alone.
    pub(super) fn guest_held(&self, i: usize) -> bool {
        self.polarization_holds(i) || self.early_swap_back_holds(i) || self.across_pauses(i)
    }

    pub(super) fn stop_workloads(&mut self) {
        if !self.workloads_on {
            return;
        }
        self.workloads_on = false;
        for vm in &mut self.vms {
            vm.guest_gen += 1;
        }
        self.info("Guests stopped".into());
    }

    pub(super) fn next_block(&mut self, i: usize) -> u64 {
        let vm = &mut self.vms[i];
        splitmix(&mut vm.rng) % vm.blocks.max(1)
    }

    /// One guest I/O at time `t` (`op.issued` <= `t`).
    pub(super) fn guest_op(
        &mut self,
        i: usize,
        op: GuestOp,
        t: SimTime,
    ) -> Result<(), EngineError> {
        match op.kind {
            OpKind::Write => self.guest_write(i, op, t),
            OpKind::Read => self.guest_read(i, op, t),
        }
    }

    pub(super) fn guest_write(
        &mut self,
        i: usize,
        op: GuestOp,
        t: SimTime,
    ) -> Result<(), EngineError> {
        let cap = self.opts.mirror_max_pending;
        let svc = duration_for(BLOCK_SIZE as u64, self.copy_rate(i));
        // A CG moving across sites acknowledges a write once it also crossed the link.
        let sync = self.across_write_cost(i);
        // A CG moving one VM at a time records a source block before its first overwrite.
        let record = self.across_before_write(i, op.block)?;
        // A copied VM held for its group's switch keeps mirroring instead of waiting.
        let held = self.group_keeps_mirroring(i);
        let vm = &mut self.vms[i];
        let block = op.block;
        enum Target {
            Image,
            Src,
            Dst,
            SrcMirror,
        }
        let mut clear_after = false;
        let target = match vm.migration.as_mut() {
            None => Target::Image,
            Some(m) => {
                let was_set = m.core.bits.get(block);
                let back = m.core.direction == Direction::Back;
                // A mirrored write waits while more than the cap are pending, and once the
                // copy is done every write waits for the switch-over (the mirror drains, then
                // the VM moves; without this a guest faster than the target never converges).
                let in_flight = m
                    .core
                    .in_flight
                    .as_ref()
                    .is_some_and(|r| r.contains(&block));
                let route = if m.mode() == CopyMode::Mirror
                    && !in_flight
                    && ((block < m.core.cursor
                        && copy::mirror_must_wait(m.mirror_pending.len(), cap))
                        || (m.core.done() && !held))
                {
                    vm.waiting.push_back(op);
                    return Ok(());
                } else {
                    m.core.route_write(block)
                };
                // A newly set bit is persisted before the data lands on the destination; a
                // bit cleared by a roll-back write after the data lands on the source.
                // Recovery compares stamps where a crash fell in between.
                let now_set = m.core.bits.get(block);
                if now_set && !was_set {
                    alive()?;
                    m.persist_bit(block)
                        .map_err(io_err("writing the migration bitmap"))?;
                    fault_point("copy.bit-written")?;
                }
                clear_after = back && was_set && !now_set;
                match route {
                    WriteRoute::Wait => {
                        vm.waiting.push_back(op);
                        return Ok(());
                    }
                    WriteRoute::Source => Target::Src,
                    WriteRoute::Destination => Target::Dst,
                    WriteRoute::SourceAndMirror => Target::SrcMirror,
                }
            }
        };
        let io = self
            .sites
            .get_mut(&vm.site)
            .ok_or_else(|| EngineError::State {
                file: "journal".into(),
                message: format!("site {:?} has no journal", vm.site),
            })?;
        let seq = self.next_seq;
        let mut buf: Block = [0; BLOCK_SIZE];
        disk::stamp_block(&vm.uuid, block, seq, &mut buf);
        let img = match (&target, vm.migration.as_ref()) {
            (Target::Image, _) | (_, None) => &vm.image,
            (Target::Dst, Some(m)) => &m.dst,
            (_, Some(m)) => &m.src,
        };
        alive()?;
        img.write_block(block, &buf)
            .map_err(io_err_at(img.path()))?;
        fault_point("guest.data-written")?;
        if clear_after && let Some(m) = vm.migration.as_ref() {
            m.persist_bit(block)
                .map_err(io_err("writing the migration bitmap"))?;
            fault_point("copy.bit-cleared")?;
        }
        io.journal
            .append(&JournalEntry {
                seq,
                uuid: vm.uuid,
                block,
            })
            .map_err(io_err("appending to the journal"))?;
        self.next_seq += 1;
        vm.last_seq[block as usize] = seq;
        vm.writes += 1;
        if let (Target::SrcMirror, Some(m)) = (&target, vm.migration.as_mut()) {
            let lands = t.max(m.dst_busy_until) + svc;
            m.dst_busy_until = lands;
            m.mirror_pending.push_back((lands, block, seq));
            self.schedule(lands, Ev::MirrorLand { vm: VmIx(i) });
        }
        // Acknowledged when its first copy lands.
        let latency = t - op.issued + svc + sync + record;
        if self.latencies.len() == LATENCY_SAMPLES {
            self.latencies.pop_front();
        }
        self.latencies.push_back((t, i, latency));
        self.after_guest_write(i, block, &buf)
    }

    pub(super) fn guest_read(
        &mut self,
        i: usize,
        op: GuestOp,
        _t: SimTime,
    ) -> Result<(), EngineError> {
        let vm = &mut self.vms[i];
        let block = op.block;
        let mut buf: Block = [0; BLOCK_SIZE];
        match vm.migration.as_ref() {
            Some(m) => {
                if m.core.route_read(block) == copy::ReadRoute::Wait {
                    vm.waiting.push_back(op);
                    return Ok(());
                }
                m.read_routed(block, &mut buf)
                    .map_err(io_err("guest read"))?;
            }
            None => vm
                .image
                .read_block_at(block, &mut buf)
                .map_err(io_err_at(vm.image.path()))?,
        }
        vm.reads += 1;
        let want = vm.last_seq[block as usize];
        let ok = match disk::inspect(&buf) {
            BlockContent::Zero => want == 0,
            BlockContent::Stamped(s) => s.seq == want && s.uuid == vm.uuid && s.block == block,
            BlockContent::Torn => false,
        };
        if !ok {
            vm.read_errors += 1;
            if vm.read_errors <= READ_ERRORS_LOGGED {
                let msg = format!(
                    "VM {}: read of block {block} did not return its last write (seq {want})",
                    vm.id
                );
                self.push_log(LogLevel::Error, msg);
            }
        }
        Ok(())
    }

    /// Opens the journal of `site` for writing if it is not open yet.
    pub(super) fn ensure_site_journal(&mut self, site: &str) -> Result<(), EngineError> {
        if !self.sites.contains_key(site) {
            let journal = JournalWriter::open(&self.ws.journal_path(site))?;
            self.sites.insert(site.to_string(), SiteIo { journal });
        }
        Ok(())
    }
}
