//! Verification of a VM against its write history in the journals.

use super::*;

/// A site's journal split by VM (each VM's entries in journal order), and its last seq.
pub(super) struct SiteJournal {
    by_uuid: HashMap<RawUuid, Vec<JournalEntry>>,
    last_seq: u64,
}

impl SiteJournal {
    pub(super) fn new(j: Journal) -> SiteJournal {
        let mut by_uuid: HashMap<RawUuid, Vec<JournalEntry>> = HashMap::new();
        for e in j.entries {
            by_uuid.entry(e.uuid).or_default().push(e);
        }
        SiteJournal {
            by_uuid,
            last_seq: j.last_seq,
        }
    }

    pub(super) fn of(&self, uuid: &RawUuid) -> &[JournalEntry] {
        self.by_uuid.get(uuid).map_or(&[], |v| &v[..])
    }
}

/// VM `uuid`'s write history: each hop's entries in its site's journal up to the horizon
/// of the images it left with, then its entries at its current `site` since it arrived.
/// Entries of other VMs are left out; the result's `last_seq` is the site's.
pub(super) fn history(
    journals: &BTreeMap<String, SiteJournal>,
    site: &str,
    hist: &VmHistory,
    uuid: &RawUuid,
) -> Journal {
    let mut out = Journal::default();
    for hop in &hist.hops {
        if let Some(j) = journals.get(&hop.site) {
            out.entries.extend(
                j.of(uuid)
                    .iter()
                    .filter(|e| e.seq > hop.after && e.seq <= hop.horizon)
                    .cloned(),
            );
        }
    }
    if let Some(j) = journals.get(site) {
        out.entries
            .extend(j.of(uuid).iter().filter(|e| e.seq > hist.since).cloned());
        out.last_seq = j.last_seq;
    }
    if let Some(last) = out.entries.last() {
        out.last_seq = out.last_seq.max(last.seq);
    }
    debug_assert!(
        out.entries.windows(2).all(|w| w[0].seq < w[1].seq),
        "a VM's history across hops is in seq order"
    );
    out
}

/// The journals of `sites`, split by VM.
pub(super) fn site_journals<'a>(
    ws: &Workspace,
    sites: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeMap<String, SiteJournal>, EngineError> {
    let mut out = BTreeMap::new();
    for site in sites {
        out.insert(
            site.to_string(),
            SiteJournal::new(disk::read_journal(&ws.journal_path(site))?),
        );
    }
    Ok(out)
}

impl Engine {
    /// Verifies VM `vm` as its guest sees it (through the copy's read path while it
    /// migrates) against the journal, with S = the last journaled write (SPEC §4.3).
    pub fn verify_vm(&self, vm: &str) -> Result<VmVerify, EngineError> {
        let i = self
            .vm_index(vm)
            .ok_or_else(|| EngineError::NoSuchVm(vm.into()))?;
        let v = &self.vms[i];
        let journals = site_journals(&self.ws, v.history.sites(&v.site))?;
        let journal = history(&journals, &v.site, &v.history, &v.uuid);
        let mut plain;
        let mut routed;
        let reader: &mut dyn BlockRead = match v.migration.as_deref() {
            Some(m) => {
                routed = RoutedReader { migration: m };
                &mut routed
            }
            None => {
                plain = ImageFile::open_read_only(v.image.path())?.without_readahead();
                &mut plain
            }
        };
        let mut disks = [VmDisk {
            name: v.id.clone(),
            uuid: v.uuid,
            reader,
        }];
        let report = disk::verify_set(&mut disks, &journal, Horizon::LastJournaled)
            .map_err(io_err(format!("verifying {vm}")))?;
        let mut out = report
            .vms
            .into_iter()
            .next()
            .expect("one disk in, one report out");
        // Each hop's history stops at the images it left with; what its failover lost
        // stays lost.
        out.writes_lost += v.history.writes_lost;
        Ok(out)
    }
}
