//! Verification: is a set of images write-order consistent with the journal (SPEC §4.3)?

use super::*;

/// Which S (SPEC §4.3) to verify a set of images against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Horizon {
    /// S = the journal's last seq: a live VM must lose nothing.
    LastJournaled,
    /// S = the highest seq stamped in any image of the set (a recovered copy).
    FromImages,
}

/// One VM's disk in a verified set.
pub struct VmDisk<'a> {
    pub name: String,
    pub uuid: RawUuid,
    pub reader: &'a mut dyn BlockRead,
}

/// A verifiable set over (name, uuid, image) triples.
pub fn vm_disks(images: &mut [(String, RawUuid, ImageFile)]) -> Vec<VmDisk<'_>> {
    images
        .iter_mut()
        .map(|(name, uuid, img)| VmDisk {
            name: name.clone(),
            uuid: *uuid,
            reader: img,
        })
        .collect()
}

/// A block that does not hold what the journal says it should.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mismatch {
    pub block: u64,
    /// 0 = never written.
    pub expected_seq: u64,
    /// "zero", "torn", "seq N" or "foreign <uuid>/<block> seq N".
    pub found: String,
}

/// Verification result of one VM's disk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VmVerify {
    pub name: String,
    /// Hyphenated.
    pub uuid: String,
    /// No torn block and no mismatch.
    pub consistent: bool,
    pub blocks: u64,
    /// Blocks holding a valid stamp (of any VM).
    pub written_blocks: u64,
    pub torn_blocks: u64,
    /// Blocks that are not torn but do not hold the expected content.
    pub mismatched_blocks: u64,
    /// At most 8 bad blocks (torn or mismatched), lowest block first.
    pub examples: Vec<Mismatch>,
    /// Journaled writes of this VM with seq > S.
    pub writes_lost: u64,
    /// Highest valid stamp seq in this image (0 if none).
    pub last_seq_found: u64,
}

/// Verification result of a set of images.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SetVerify {
    pub horizon_seq: u64,
    pub consistent: bool,
    pub vms: Vec<VmVerify>,
}

const MAX_EXAMPLES: usize = 8;

/// What one block of a scanned image holds, compactly.
#[derive(Clone, Copy)]
enum Found {
    Zero,
    Torn,
    /// A valid stamp of this disk's VM and this block, with its seq.
    Own(u64),
    /// A valid stamp of another VM or another block.
    Foreign,
}

struct Scan {
    found: Vec<Found>,
    /// The first foreign stamps with their block: enough for the examples, since a foreign
    /// stamp is a mismatch whatever S is.
    foreign: Vec<(u64, Stamp)>,
    written: u64,
    torn: u64,
    max_seq: u64,
}

fn scan_disk(disk: &mut VmDisk<'_>) -> io::Result<Scan> {
    let blocks = disk.reader.block_count();
    let mut scan = Scan {
        found: Vec::with_capacity(usize::try_from(blocks).unwrap_or(0)),
        foreign: Vec::new(),
        written: 0,
        torn: 0,
        max_seq: 0,
    };
    let mut buf = [0u8; BLOCK_SIZE];
    for b in 0..blocks {
        disk.reader.read_block(b, &mut buf).map_err(|e| {
            io::Error::new(e.kind(), format!("{}: reading block {b}: {e}", disk.name))
        })?;
        let found = match inspect(&buf) {
            BlockContent::Zero => Found::Zero,
            BlockContent::Torn => {
                scan.torn += 1;
                Found::Torn
            }
            BlockContent::Stamped(s) => {
                scan.written += 1;
                scan.max_seq = scan.max_seq.max(s.seq);
                if s.uuid == disk.uuid && s.block == b {
                    Found::Own(s.seq)
                } else {
                    if scan.foreign.len() < MAX_EXAMPLES {
                        scan.foreign.push((b, s));
                    }
                    Found::Foreign
                }
            }
        };
        scan.found.push(found);
    }
    Ok(scan)
}

/// Verifies a set of images against the journal, per SPEC §4.3.
///
/// S is chosen by `horizon`. For every block b of every VM u the expected content is the last
/// journal entry (u, b) with seq <= S, or zeros if none. A block stamped (u, b) with seq ==
/// journal.last_seq + 1 is accepted as the write in flight at a crash (and with
/// [`Horizon::FromImages`] it may be what sets S). Journal entries of VMs outside the set, or
/// for blocks beyond an image's end, are ignored. Reading an image fails -> that error.
pub fn verify_set(
    disks: &mut [VmDisk<'_>],
    journal: &Journal,
    horizon: Horizon,
) -> io::Result<SetVerify> {
    // Pass 1: one sequential read of every image.
    let mut scans = Vec::with_capacity(disks.len());
    for disk in disks.iter_mut() {
        scans.push(scan_disk(disk)?);
    }
    let horizon_seq = match horizon {
        Horizon::LastJournaled => journal.last_seq,
        Horizon::FromImages => scans.iter().map(|s| s.max_seq).max().unwrap_or(0),
    };
    let in_flight = journal.last_seq.checked_add(1);

    // Pass 2: one pass over the journal, building the expected seq of every block.
    let (expected, lost) = expected_seqs(disks, &scans, journal, horizon_seq);

    // Pass 3: compare, in memory.
    let vms = disks
        .iter()
        .enumerate()
        .map(|(i, disk)| compare(disk, &scans[i], &expected[i], lost[i], in_flight))
        .collect::<Vec<_>>();
    Ok(SetVerify {
        horizon_seq,
        consistent: vms.iter().all(|v| v.consistent),
        vms,
    })
}

/// For every block of every disk, the seq of the last journal entry at or below
/// `horizon_seq` (0: none), and per disk the entries above it (writes lost).
fn expected_seqs(
    disks: &[VmDisk<'_>],
    scans: &[Scan],
    journal: &Journal,
    horizon_seq: u64,
) -> (Vec<Vec<u64>>, Vec<u64>) {
    let mut by_uuid: HashMap<RawUuid, Vec<usize>> = HashMap::new();
    for (i, disk) in disks.iter().enumerate() {
        by_uuid.entry(disk.uuid).or_default().push(i);
    }
    let mut expected: Vec<Vec<u64>> = scans.iter().map(|s| vec![0; s.found.len()]).collect();
    let mut lost = vec![0u64; disks.len()];
    for e in &journal.entries {
        let Some(indices) = by_uuid.get(&e.uuid) else {
            continue;
        };
        for &i in indices {
            if e.seq > horizon_seq {
                lost[i] += 1;
            } else if let Some(slot) = usize::try_from(e.block)
                .ok()
                .and_then(|b| expected[i].get_mut(b))
            {
                // Entries are in increasing seq order, so the last one wins; max() keeps that
                // true even for a hand-built journal out of order.
                *slot = (*slot).max(e.seq);
            }
        }
    }
    (expected, lost)
}

/// One disk's result: its scan compared with the expected seq of each block (`in_flight`:
/// the seq a crash may have left half journaled); `lost` writes beyond the horizon.
fn compare(
    disk: &VmDisk<'_>,
    scan: &Scan,
    expected: &[u64],
    lost: u64,
    in_flight: Option<u64>,
) -> VmVerify {
    let mut mismatched = 0u64;
    let mut examples = Vec::new();
    for (b, (&found, &want)) in scan.found.iter().zip(expected).enumerate() {
        let b = b as u64;
        let bad = match found {
            Found::Zero if want == 0 => None,
            Found::Zero => Some("zero".to_string()),
            Found::Torn => Some("torn".to_string()),
            Found::Own(seq) if seq == want || Some(seq) == in_flight => None,
            Found::Own(seq) => Some(format!("seq {seq}")),
            Found::Foreign => Some(match scan.foreign.iter().find(|(fb, _)| *fb == b) {
                Some((_, s)) => {
                    format!("foreign {}/{} seq {}", uuid_string(&s.uuid), s.block, s.seq)
                }
                // Unreachable for an example: the first foreign stamps are kept.
                None => "foreign".to_string(),
            }),
        };
        let Some(text) = bad else { continue };
        if !matches!(found, Found::Torn) {
            mismatched += 1;
        }
        if examples.len() < MAX_EXAMPLES {
            examples.push(Mismatch {
                block: b,
                expected_seq: want,
                found: text,
            });
        }
    }
    VmVerify {
        name: disk.name.clone(),
        uuid: uuid_string(&disk.uuid),
        consistent: scan.torn == 0 && mismatched == 0,
        blocks: scan.found.len() as u64,
        written_blocks: scan.written,
        torn_blocks: scan.torn,
        mismatched_blocks: mismatched,
        examples,
        writes_lost: lost,
        last_seq_found: scan.max_seq,
    }
}
