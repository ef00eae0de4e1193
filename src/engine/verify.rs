//! Verification of a VM against its write history in the journals.

use super::*;

/// VM `uuid`'s write history: its entries in its site's journal, after (for a recovered VM)
/// those of its old site up to the recovered images' horizon. Entries of other VMs are left
/// out; the result's `last_seq` is the site's.
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

pub(super) fn history(
    journals: &BTreeMap<String, SiteJournal>,
    site: &str,
    recovered: Option<&RecoveredVm>,
    uuid: &RawUuid,
) -> Journal {
    let mut out = Journal::default();
    if let Some(r) = recovered
        && let Some(j) = journals.get(&r.from_site)
    {
        out.entries
            .extend(j.of(uuid).iter().filter(|e| e.seq <= r.horizon).cloned());
    }
    if let Some(j) = journals.get(site) {
        out.entries.extend(j.of(uuid).iter().cloned());
        out.last_seq = j.last_seq;
    }
    if let Some(last) = out.entries.last() {
        out.last_seq = out.last_seq.max(last.seq);
    }
    out
}

impl Engine {
    /// Verifies VM `vm` as its guest sees it (through the copy's read path while it
    /// migrates) against the journal, with S = the last journaled write (SPEC §4.3).
    pub fn verify_vm(&self, vm: &str) -> Result<VmVerify, EngineError> {
        let i = self
            .vm_index(vm)
            .ok_or_else(|| EngineError::NoSuchVm(vm.into()))?;
        let v = &self.vms[i];
        let mut journals = BTreeMap::new();
        for site in [Some(&v.site), v.recovered.as_ref().map(|r| &r.from_site)]
            .into_iter()
            .flatten()
        {
            journals.insert(
                site.clone(),
                SiteJournal::new(disk::read_journal(&self.ws.journal_path(site))?),
            );
        }
        let journal = history(&journals, &v.site, v.recovered.as_ref(), &v.uuid);
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
        // A recovered VM's history stops at its recovered images; what the failover lost
        // stays lost.
        out.writes_lost += v.recovered.as_ref().map_or(0, |r| r.writes_lost);
        Ok(out)
    }
}
