use super::*;
use tempfile::TempDir;

/// zlib.crc32(bytes(4088)), computed with Python.
const ZLIB_CRC_OF_4088_ZEROS: u32 = 2763427718;

const U0: &str = "8f0c6f4e-3c1a-4f7e-9a51-0d2f6b7c9e11";
const U1: &str = "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed";
const U2: &str = "00000000-0000-4000-8000-0000000000ff";

fn uuid(s: &str) -> RawUuid {
    raw_uuid(s).expect("test uuid")
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// A simulated guest: VMs with image files in a temp dir and one site journal.
struct Guest {
    dir: TempDir,
    uuids: Vec<RawUuid>,
    images: Vec<ImageFile>,
    journal: JournalWriter,
    seq: u64,
    /// Writes with a seq above this are journaled but not applied to the images
    /// (the images are a replica frozen at that point).
    apply_upto: u64,
    rng: Lcg,
}

impl Guest {
    fn new(uuids: &[&str], blocks: u64, seed: u64) -> Guest {
        let dir = tempfile::tempdir().expect("tempdir");
        let uuids: Vec<RawUuid> = uuids.iter().map(|s| uuid(s)).collect();
        let images = (0..uuids.len())
            .map(|i| {
                ImageFile::create(&dir.path().join(format!("vm{i}.img")), blocks)
                    .expect("create image")
            })
            .collect();
        let journal = JournalWriter::open(&dir.path().join("site.log")).expect("journal");
        Guest {
            dir,
            uuids,
            images,
            journal,
            seq: 0,
            apply_upto: u64::MAX,
            rng: Lcg(seed),
        }
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.path().join("site.log")
    }

    /// One guest write: take the seq, stamp the block, journal it. Returns the seq.
    fn write(&mut self, vm: usize, block: u64) -> u64 {
        self.seq += 1;
        let seq = self.seq;
        if seq <= self.apply_upto {
            self.stamp(vm, vm, block, block, seq);
        }
        self.journal
            .append(&JournalEntry {
                seq,
                uuid: self.uuids[vm],
                block,
            })
            .expect("append");
        seq
    }

    fn random_writes(&mut self, n: u64) {
        let blocks = self.images[0].block_count();
        for _ in 0..n {
            let vm = (self.rng.next() % self.uuids.len() as u64) as usize;
            let block = self.rng.next() % blocks;
            self.write(vm, block);
        }
    }

    /// Writes into image `image` at `at` the stamp of (uuid of `vm`, `block`, `seq`),
    /// without journaling anything.
    fn stamp(&self, image: usize, vm: usize, at: u64, block: u64, seq: u64) {
        let mut buf = [0u8; BLOCK_SIZE];
        stamp_block(&self.uuids[vm], block, seq, &mut buf);
        self.images[image].write_block(at, &buf).expect("write");
    }

    fn verify(&mut self, horizon: Horizon) -> SetVerify {
        let journal = read_journal(&self.journal_path()).expect("read journal");
        let uuids = self.uuids.clone();
        let mut disks: Vec<VmDisk<'_>> = self
            .images
            .iter_mut()
            .enumerate()
            .map(|(i, img)| VmDisk {
                name: format!("vm{i}"),
                uuid: uuids[i],
                reader: img,
            })
            .collect();
        verify_set(&mut disks, &journal, horizon).expect("verify")
    }
}

// ---- stamps ----

#[test]
fn stamp_round_trip() {
    let u = uuid(U0);
    let mut buf = [0u8; BLOCK_SIZE];
    stamp_block(&u, 12345, 678, &mut buf);
    assert_eq!(&buf[..8], MAGIC);
    assert_eq!(&buf[8..24], &u);
    assert_eq!(le_u64(&buf, 24), 12345);
    assert_eq!(le_u64(&buf, 32), 678);
    assert_eq!(&buf[4092..], &[0, 0, 0, 0]);
    assert_eq!(
        inspect(&buf),
        BlockContent::Stamped(Stamp {
            uuid: u,
            block: 12345,
            seq: 678
        })
    );
    assert!(payload_is_genuine(&buf));
}

#[test]
fn stamp_crc_is_zlib_crc32_of_first_4088_bytes() {
    let mut buf = [0u8; BLOCK_SIZE];
    stamp_block(&uuid(U1), 7, 1, &mut buf);
    let stored = u32::from_le_bytes([buf[4088], buf[4089], buf[4090], buf[4091]]);
    assert_eq!(stored, crc32fast::hash(&buf[..4088]));
    // crc32fast is the same CRC as zlib's crc32: check against a value computed by zlib.
    assert_eq!(crc32fast::hash(&[0u8; 4088]), ZLIB_CRC_OF_4088_ZEROS);
}

#[test]
fn payload_is_deterministic_and_depends_on_every_input() {
    let (u0, u1) = (uuid(U0), uuid(U1));
    let stamp = |u: &RawUuid, b, s| {
        let mut buf = [0u8; BLOCK_SIZE];
        stamp_block(u, b, s, &mut buf);
        buf
    };
    let a = stamp(&u0, 3, 9);
    assert_eq!(a, stamp(&u0, 3, 9));
    // Stamping over garbage gives the same bytes.
    let mut dirty = [0xAAu8; BLOCK_SIZE];
    stamp_block(&u0, 3, 9, &mut dirty);
    assert_eq!(a, dirty);
    for other in [stamp(&u1, 3, 9), stamp(&u0, 4, 9), stamp(&u0, 3, 10)] {
        assert_ne!(a[40..4088], other[40..4088]);
    }
    // The payload is not trivially zero or repetitive.
    assert!(a[40..4088].iter().filter(|&&b| b == 0).count() < 100);
    assert_ne!(a[40..48], a[48..56]);
}

#[test]
fn flipped_byte_anywhere_is_torn() {
    let mut good = [0u8; BLOCK_SIZE];
    stamp_block(&uuid(U0), 42, 99, &mut good);
    for i in 0..BLOCK_SIZE {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut bad = good;
            bad[i] ^= flip;
            assert_eq!(inspect(&bad), BlockContent::Torn, "byte {i} ^ {flip:#x}");
        }
    }
}

#[test]
fn zero_block_is_zero_and_partial_blocks_are_torn() {
    let zero = [0u8; BLOCK_SIZE];
    assert_eq!(inspect(&zero), BlockContent::Zero);
    let mut one = zero;
    one[4095] = 1;
    assert_eq!(inspect(&one), BlockContent::Torn);
    // A write cut after the first sector: stamp head, zero rest.
    let mut good = [0u8; BLOCK_SIZE];
    stamp_block(&uuid(U0), 1, 1, &mut good);
    let mut half = [0u8; BLOCK_SIZE];
    half[..512].copy_from_slice(&good[..512]);
    assert_eq!(inspect(&half), BlockContent::Torn);
    assert!(!payload_is_genuine(&half));
}

#[test]
fn seq_zero_stamp_is_torn() {
    let mut buf = [0u8; BLOCK_SIZE];
    stamp_block(&uuid(U0), 1, 0, &mut buf);
    assert_eq!(inspect(&buf), BlockContent::Torn);
}

#[test]
fn uuid_helpers() {
    let u = uuid(U0);
    assert_eq!(uuid_string(&u), U0);
    assert_eq!(raw_uuid(&U0.to_uppercase()), Some(u));
    assert_eq!(raw_uuid("8f0c6f4e3c1a4f7e9a510d2f6b7c9e11"), None);
    assert_eq!(raw_uuid("{8f0c6f4e-3c1a-4f7e-9a51-0d2f6b7c9e11}"), None);
    assert_eq!(raw_uuid("8f0c6f4e-3c1a-4f7e-9a51-0d2f6b7c9e1x"), None);
    assert_eq!(raw_uuid(""), None);
}

// ---- image files ----

#[test]
fn image_create_write_read_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("disk0.img");
    let img = ImageFile::create(&path, 16).expect("create");
    assert_eq!(img.block_count(), 16);
    assert_eq!(img.path(), path.as_path());
    assert_eq!(std::fs::metadata(&path).expect("meta").len(), 16 * 4096);
    let mut buf = [0u8; BLOCK_SIZE];
    img.read_block_at(15, &mut buf).expect("read");
    assert_eq!(inspect(&buf), BlockContent::Zero);
    stamp_block(&uuid(U0), 5, 3, &mut buf);
    img.write_block(5, &buf).expect("write");
    img.sync().expect("sync");
    drop(img);

    let mut ro = ImageFile::open_read_only(&path).expect("open ro");
    assert_eq!(BlockRead::block_count(&ro), 16);
    let mut back = [0u8; BLOCK_SIZE];
    ro.read_block(5, &mut back).expect("read");
    assert_eq!(back, buf);
    assert!(
        ro.write_block(5, &buf).is_err(),
        "read-only image accepts writes"
    );

    let rw = ImageFile::open(&path).expect("open");
    let mut run = vec![0u8; 3 * BLOCK_SIZE];
    rw.read_at(4 * 4096, &mut run).expect("read_at");
    assert_eq!(run[4096..8192], buf[..]);
    run.fill(7);
    rw.write_at(10 * 4096 + 100, &run).expect("write_at");
    let mut check = [0u8; 10];
    rw.read_at(10 * 4096 + 95, &mut check).expect("read_at");
    assert_eq!(check, [0, 0, 0, 0, 0, 7, 7, 7, 7, 7]);
}

/// An image whose descriptor the cache closed opens its file again on its next read,
/// write or sync, with the same access: data written before and after the close is there,
/// and a read-only image stays read-only.
#[test]
fn image_reopens_its_file_after_the_cache_closed_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("disk0.img");
    let rw = ImageFile::create(&path, 8)
        .expect("create")
        .without_readahead();
    let mut buf = [0u8; BLOCK_SIZE];
    stamp_block(&uuid(U0), 2, 9, &mut buf);
    rw.write_block(2, &buf).expect("write");
    let ro = ImageFile::open_read_only(&path).expect("open ro");
    close_idle_images();
    let mut back = [0u8; BLOCK_SIZE];
    ro.read_block_at(2, &mut back).expect("read after close");
    assert_eq!(back, buf);
    close_idle_images();
    assert!(
        ro.write_block(3, &buf).is_err(),
        "a reopened read-only image accepts writes"
    );
    close_idle_images();
    rw.write_block(3, &buf).expect("write after close");
    close_idle_images();
    rw.sync().expect("sync after close");
    assert_eq!(
        rw.data_ranges(),
        vec![2 * 4096..4 * 4096],
        "holes seen through the reopened file"
    );
    ro.read_block_at(3, &mut back).expect("read");
    assert_eq!(back, buf);
}

/// An image never reads or writes through another file that took its path while its
/// descriptor was closed: it fails, naming the path, and the new file is untouched.
#[test]
fn image_refuses_a_file_that_replaced_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("disk0.img");
    let img = ImageFile::create(&path, 4).expect("create");
    close_idle_images();
    let other = dir.path().join("other.img");
    std::fs::write(&other, vec![5u8; 4 * BLOCK_SIZE]).expect("write other");
    std::fs::rename(&other, &path).expect("replace");
    let mut buf = [0u8; BLOCK_SIZE];
    let err = img
        .read_block_at(0, &mut buf)
        .expect_err("read of a replaced image");
    let msg = err.to_string();
    assert!(
        msg.contains("disk0.img") && msg.contains("replaced"),
        "{msg}"
    );
    assert!(img.write_block(0, &[0u8; BLOCK_SIZE]).is_err());
    assert_eq!(
        std::fs::read(&path).expect("read"),
        vec![5u8; 4 * BLOCK_SIZE]
    );
    std::fs::remove_file(&path).expect("remove");
    let err = img.sync().expect_err("sync of a removed image");
    assert!(err.to_string().contains("disk0.img"), "{err}");
}

/// The cache holds at most its capacity of descriptors, closes the least recently used
/// one to make room, and forgets a dropped image's.
#[test]
fn the_descriptor_cache_is_bounded_and_least_recently_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = |name: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, b"x").expect("write");
        std::fs::File::open(&p).expect("open")
    };
    let cache = handles::Handles::new(std::num::NonZeroUsize::new(2).expect("2"));
    let (a, _) = cache.insert(open("a"));
    let (b, _) = cache.insert(open("b"));
    assert!(cache.get(a).is_some(), "a is now the most recent");
    let (c, in_use) = cache.insert(open("c"));
    assert_eq!(cache.len(), 2);
    assert!(
        cache.get(b).is_none(),
        "the least recently used one was closed"
    );
    assert!(cache.get(a).is_some() && cache.get(c).is_some());
    cache.remove(c);
    assert!(cache.get(c).is_none());
    assert_eq!(cache.len(), 1);
    // A descriptor in use outlives its eviction.
    assert_eq!(std::sync::Arc::strong_count(&in_use), 1);
    cache.clear();
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.capacity().get(), 2);
}

#[test]
fn image_out_of_range_is_an_error_and_never_grows_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("d.img");
    let img = ImageFile::create(&path, 4).expect("create");
    let mut buf = [0u8; BLOCK_SIZE];
    assert!(img.read_block_at(4, &mut buf).is_err());
    assert!(img.write_block(4, &buf).is_err());
    assert!(img.read_block_at(u64::MAX, &mut buf).is_err());
    assert!(img.write_at(3 * 4096 + 1, &buf).is_err());
    assert!(img.write_at(u64::MAX - 10, &buf).is_err());
    let mut big = vec![0u8; 5 * 4096];
    assert!(img.read_at(0, &mut big).is_err());
    assert_eq!(std::fs::metadata(&path).expect("meta").len(), 4 * 4096);
}

#[test]
fn image_create_existing_and_truncated_and_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("d.img");
    ImageFile::create(&path, 1).expect("create");
    let err = ImageFile::create(&path, 1).expect_err("exists");
    assert!(matches!(err, DiskError::Exists { .. }), "{err}");
    assert!(err.to_string().contains("d.img: already exists"), "{err}");

    let odd = dir.path().join("odd.img");
    std::fs::write(&odd, vec![0u8; 4096 + 10]).expect("write");
    let err = ImageFile::open(&odd).expect_err("truncated");
    assert!(
        matches!(err, DiskError::Truncated { len: 4106, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("odd.img") && msg.contains("truncated image"),
        "{msg}"
    );

    let err = ImageFile::open_read_only(&dir.path().join("none.img")).expect_err("missing");
    assert!(matches!(err, DiskError::Io { .. }), "{err}");
    assert!(err.to_string().contains("none.img"), "{err}");
}

// ---- dirty tracking ----

#[test]
fn tracker_marks_counts_and_take_clears_ascending() {
    let t = DirtyTracker::new(200);
    assert_eq!(t.blocks(), 200);
    assert_eq!(t.count(), 0);
    assert!(t.take().is_empty());
    for b in [130, 5, 63, 64, 5, 199, 200, u64::MAX] {
        t.mark(b);
    }
    assert_eq!(t.count(), 5);
    assert_eq!(t.take(), vec![5, 63, 64, 130, 199]);
    assert_eq!(t.count(), 0);
    assert!(t.take().is_empty());

    t.mark_range(60, 70);
    assert_eq!(t.take(), (60..130).collect::<Vec<_>>());
    t.mark_range(0, 64);
    t.mark_range(190, 1000);
    t.mark_range(u64::MAX - 1, 5);
    t.mark_range(3, 0);
    let mut expected: Vec<u64> = (0..64).collect();
    expected.extend(190..200);
    assert_eq!(t.count(), 74);
    assert_eq!(t.take(), expected);

    t.mark(7);
    t.mark_all(&[150, 2, 7, 500]);
    assert_eq!(t.take(), vec![2, 7, 150]);
    let dbg = format!("{t:?}");
    assert!(
        dbg.contains("blocks: 200") && dbg.contains("dirty: 0"),
        "{dbg}"
    );
}

#[test]
fn tracker_concurrent_marks_are_never_lost() {
    let t = Arc::new(DirtyTracker::new(4096));
    let mut taken = Vec::new();
    std::thread::scope(|s| {
        for id in 0..2u64 {
            let t = &t;
            s.spawn(move || {
                for b in (id..4096).step_by(2) {
                    t.mark(b);
                }
            });
        }
        for _ in 0..50 {
            taken.extend(t.take());
        }
    });
    taken.extend(t.take());
    taken.sort_unstable();
    assert_eq!(taken, (0..4096).collect::<Vec<_>>());
}

#[test]
fn image_writes_mark_the_tracker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut img = ImageFile::create(&dir.path().join("d.img"), 32).expect("create");
    assert!(img.tracker().is_none());
    let buf = [1u8; BLOCK_SIZE];
    img.write_block(1, &buf).expect("untracked write");
    let t = Arc::new(DirtyTracker::new(32));
    img.set_tracker(Some(Arc::clone(&t)));
    assert!(Arc::ptr_eq(img.tracker().expect("tracker"), &t));
    img.write_block(3, &buf).expect("write");
    // Bytes 4096*10 - 1 ..= 4096*12: blocks 9, 10, 11 and 12.
    img.write_at(10 * 4096 - 1, &vec![2u8; 2 * 4096 + 2])
        .expect("write_at");
    // Exactly one block.
    img.write_at(20 * 4096, &buf).expect("write_at");
    img.write_at(25 * 4096, &[]).expect("empty write");
    // Failed writes mark nothing.
    assert!(img.write_block(32, &buf).is_err());
    assert!(img.write_at(31 * 4096 + 1, &buf).is_err());
    assert_eq!(t.take(), vec![3, 9, 10, 11, 12, 20]);
    // Reads do not mark.
    let mut back = [0u8; BLOCK_SIZE];
    img.read_block_at(3, &mut back).expect("read");
    assert_eq!(t.count(), 0);
    img.set_tracker(None);
    img.write_block(4, &buf).expect("write");
    assert_eq!(t.count(), 0);
    assert!(format!("{img:?}").contains("tracker: None"));
}

// ---- journal ----

#[test]
fn journal_writer_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pa.log");
    let entries = [
        JournalEntry {
            seq: 1,
            uuid: uuid(U0),
            block: 0,
        },
        JournalEntry {
            seq: 2,
            uuid: uuid(U1),
            block: 262_143,
        },
        JournalEntry {
            seq: u64::MAX,
            uuid: uuid(U2),
            block: u64::MAX,
        },
    ];
    {
        let mut w = JournalWriter::open(&path).expect("open");
        w.append(&entries[0]).expect("append");
        w.sync().expect("sync");
    }
    // Reopening appends.
    let mut w = JournalWriter::open(&path).expect("reopen");
    assert_eq!(w.path(), path.as_path());
    w.append(&entries[1]).expect("append");
    w.append(&entries[2]).expect("append");
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(
        text,
        format!("1 {U0} 0\n2 {U1} 262143\n18446744073709551615 {U2} 18446744073709551615\n")
    );
    let j = read_journal(&path).expect("parse");
    assert_eq!(j.entries, entries);
    assert_eq!(j.last_seq, u64::MAX);
}

#[test]
fn journal_cut_short_last_line_is_ignored() {
    for tail in [
        "",
        "3",
        "3 ",
        "3 8f0c6f4e-3c1a",
        &format!("3 {U0} 1"),
        "garbage \u{1}",
    ] {
        let text = format!("1 {U0} 5\n2 {U1} 6\n{tail}");
        let j = parse_journal(text.as_bytes(), "mem").expect("parse");
        assert_eq!(j.entries.len(), 2, "tail {tail:?}");
        assert_eq!(j.last_seq, 2);
        assert_eq!(
            j.entries[1],
            JournalEntry {
                seq: 2,
                uuid: uuid(U1),
                block: 6
            }
        );
    }
    let j = parse_journal(b"", "empty").expect("empty");
    assert!(j.entries.is_empty());
    assert_eq!(j.last_seq, 0);
    let j = parse_journal(b"1 abc", "cut").expect("only cut line");
    assert!(j.entries.is_empty());
}

#[test]
fn journal_bad_middle_line_names_the_line() {
    let bad_lines = [
        format!("x {U1} 6"),
        format!("3 {U1}"),
        format!("3 {U1} 6 7"),
        format!("3  {U1} 6"),
        format!("3 {U1} 6 "),
        format!("3 {U1} -6"),
        "3 8f0c6f4e3c1a4f7e9a510d2f6b7c9e11 6".to_string(),
        format!("3 {U1} 99999999999999999999999"),
        String::new(),
        format!("3 {U1} 6\r"),
    ];
    for bad in &bad_lines {
        let text = format!("1 {U0} 5\n2 {U0} 5\n{bad}\n4 {U0} 1\n");
        let err = parse_journal(text.as_bytes(), "journal/pa.log").expect_err(bad);
        match &err {
            DiskError::Journal { path, line, .. } => {
                assert_eq!(path, "journal/pa.log");
                assert_eq!(*line, 3, "{bad:?}: {err}");
            }
            other => panic!("{bad:?}: unexpected error {other}"),
        }
        assert!(err.to_string().starts_with("journal/pa.log:3: "), "{err}");
    }
}

#[test]
fn journal_seq_must_increase() {
    let text = format!("1 {U0} 5\n2 {U0} 5\n2 {U1} 1\n");
    let err = parse_journal(text.as_bytes(), "j").expect_err("repeat");
    assert!(matches!(err, DiskError::Journal { line: 3, .. }), "{err}");
    assert!(
        err.to_string()
            .contains("not greater than the previous seq 2"),
        "{err}"
    );

    let text = format!("5 {U0} 5\n4 {U0} 5\n");
    let err = parse_journal(text.as_bytes(), "j").expect_err("decrease");
    assert!(matches!(err, DiskError::Journal { line: 2, .. }), "{err}");

    let text = format!("0 {U0} 5\n");
    let err = parse_journal(text.as_bytes(), "j").expect_err("zero");
    assert!(matches!(err, DiskError::Journal { line: 1, .. }), "{err}");

    // Gaps are fine (other sites' numbering is not ours to check).
    let text = format!("3 {U0} 5\n10 {U0} 5\n");
    assert_eq!(
        parse_journal(text.as_bytes(), "j").expect("gaps").last_seq,
        10
    );
}

#[test]
fn read_journal_missing_file_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = read_journal(&dir.path().join("nope.log")).expect_err("missing");
    assert!(matches!(err, DiskError::Io { .. }), "{err}");
    assert!(err.to_string().contains("nope.log"), "{err}");
}

#[test]
fn read_journal_error_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pa.log");
    std::fs::write(&path, format!("1 {U0} 5\nbad\n")).expect("write");
    let err = read_journal(&path).expect_err("bad");
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2: expected \"<seq> <uuid> <block>\" (three fields separated by single spaces), found \"bad\"",
            path.display()
        )
    );
}

// ---- verification ----

#[test]
fn verify_consistent_set() {
    let mut g = Guest::new(&[U0, U1, U2], 64, 1);
    g.random_writes(500);
    for horizon in [Horizon::LastJournaled, Horizon::FromImages] {
        let v = g.verify(horizon);
        assert!(v.consistent, "{v:#?}");
        assert_eq!(v.horizon_seq, 500);
        assert_eq!(v.vms.len(), 3);
        for (i, vm) in v.vms.iter().enumerate() {
            assert!(vm.consistent);
            assert_eq!(vm.name, format!("vm{i}"));
            assert_eq!(vm.uuid, [U0, U1, U2][i]);
            assert_eq!(vm.blocks, 64);
            assert!(vm.written_blocks > 30 && vm.written_blocks <= 64, "{vm:?}");
            assert_eq!(vm.torn_blocks, 0);
            assert_eq!(vm.mismatched_blocks, 0);
            assert!(vm.examples.is_empty());
            assert_eq!(vm.writes_lost, 0);
        }
        assert_eq!(v.vms.iter().map(|vm| vm.last_seq_found).max(), Some(500));
    }
}

#[test]
fn verify_empty_journal_and_zero_images_is_consistent() {
    let mut g = Guest::new(&[U0], 8, 1);
    let v = g.verify(Horizon::FromImages);
    assert!(v.consistent);
    assert_eq!(v.horizon_seq, 0);
    assert_eq!(v.vms[0].written_blocks, 0);
}

#[test]
fn verify_older_seq_than_journaled_is_a_mismatch() {
    let mut g = Guest::new(&[U0, U1], 32, 2);
    g.random_writes(100);
    let old = g.write(0, 5);
    g.random_writes(10);
    let new = g.write(0, 5);
    g.random_writes(10);
    // The block goes back to the older write: a lost write.
    g.stamp(0, 0, 5, 5, old);
    let v = g.verify(Horizon::LastJournaled);
    assert!(!v.consistent);
    assert!(!v.vms[0].consistent);
    assert!(v.vms[1].consistent);
    assert_eq!(v.vms[0].mismatched_blocks, 1);
    assert_eq!(v.vms[0].torn_blocks, 0);
    assert_eq!(
        v.vms[0].examples,
        vec![Mismatch {
            block: 5,
            expected_seq: new,
            found: format!("seq {old}"),
        }]
    );
}

#[test]
fn verify_unexpected_zero_and_unexpected_write() {
    let mut g = Guest::new(&[U0], 32, 3);
    let s = g.write(0, 2);
    g.images[0]
        .write_block(2, &[0u8; BLOCK_SIZE])
        .expect("zero");
    // A stamp that was never journaled (and is not the in-flight one).
    g.stamp(0, 0, 9, 9, s + 5);
    let v = g.verify(Horizon::LastJournaled);
    assert!(!v.consistent);
    assert_eq!(
        v.vms[0].examples,
        vec![
            Mismatch {
                block: 2,
                expected_seq: s,
                found: "zero".into()
            },
            Mismatch {
                block: 9,
                expected_seq: 0,
                found: format!("seq {}", s + 5)
            },
        ]
    );
}

#[test]
fn verify_torn_block() {
    let mut g = Guest::new(&[U0, U1], 32, 4);
    g.random_writes(200);
    let s = g.write(1, 7);
    let mut buf = [0u8; BLOCK_SIZE];
    g.images[1].read_block_at(7, &mut buf).expect("read");
    buf[2000] ^= 0x10;
    g.images[1].write_block(7, &buf).expect("write");
    let v = g.verify(Horizon::LastJournaled);
    assert!(!v.consistent);
    assert!(v.vms[0].consistent);
    let vm = &v.vms[1];
    assert!(!vm.consistent);
    assert_eq!(vm.torn_blocks, 1);
    assert_eq!(vm.mismatched_blocks, 0);
    assert_eq!(
        vm.examples,
        vec![Mismatch {
            block: 7,
            expected_seq: s,
            found: "torn".into()
        }]
    );
}

#[test]
fn verify_prefix_image_counts_writes_lost_from_images() {
    let mut g = Guest::new(&[U0, U1], 16, 5);
    g.apply_upto = 50;
    g.random_writes(100);
    let journal = read_journal(&g.journal_path()).expect("journal");
    let lost_of = |u: &str| {
        journal
            .entries
            .iter()
            .filter(|e| e.seq > 50 && e.uuid == uuid(u))
            .count() as u64
    };

    // A recovered copy frozen at seq 50 is consistent and lost the rest.
    let v = g.verify(Horizon::FromImages);
    assert!(v.consistent, "{v:#?}");
    assert_eq!(v.horizon_seq, 50);
    assert_eq!(v.vms[0].writes_lost, lost_of(U0));
    assert_eq!(v.vms[1].writes_lost, lost_of(U1));
    assert_eq!(v.vms[0].writes_lost + v.vms[1].writes_lost, 50);

    // As a live VM, the same images lose writes: inconsistent.
    let v = g.verify(Horizon::LastJournaled);
    assert!(!v.consistent);
    assert_eq!(v.horizon_seq, 100);
    assert!(v.vms.iter().all(|vm| vm.writes_lost == 0));
    for vm in &v.vms {
        assert!(vm.examples.len() <= 8);
        assert!(vm.examples.windows(2).all(|w| w[0].block < w[1].block));
        assert!(vm.examples.iter().all(|m| m.expected_seq > 50));
        assert!(vm.mismatched_blocks >= vm.examples.len() as u64);
    }
    assert!(v.vms.iter().any(|vm| vm.mismatched_blocks > 0));
}

#[test]
fn verify_examples_are_capped_at_eight_lowest_first() {
    let mut g = Guest::new(&[U0], 32, 6);
    g.apply_upto = 0;
    for b in 0..20 {
        g.write(0, b);
    }
    let v = g.verify(Horizon::LastJournaled);
    let vm = &v.vms[0];
    assert_eq!(vm.mismatched_blocks, 20);
    let blocks: Vec<u64> = vm.examples.iter().map(|m| m.block).collect();
    assert_eq!(blocks, (0..8).collect::<Vec<_>>());
    assert!(vm.examples.iter().all(|m| m.found == "zero"));
    // Nothing stamped: S = 0 and every write is lost.
    let v = g.verify(Horizon::FromImages);
    assert!(v.consistent);
    assert_eq!(v.vms[0].writes_lost, 20);
}

#[test]
fn verify_in_flight_write_is_accepted() {
    let mut g = Guest::new(&[U0, U1], 32, 7);
    g.random_writes(300);
    // Crash: write 301 landed on the disk, its journal line was cut short.
    g.stamp(1, 1, 11, 11, 301);
    {
        let mut f = OpenOptions::new()
            .append(true)
            .open(g.journal_path())
            .expect("open");
        f.write_all(format!("301 {U1} 1").as_bytes())
            .expect("write");
    }
    let v = g.verify(Horizon::LastJournaled);
    assert!(v.consistent, "{v:#?}");
    assert_eq!(v.horizon_seq, 300);
    let v = g.verify(Horizon::FromImages);
    assert!(v.consistent, "{v:#?}");
    assert_eq!(v.horizon_seq, 301);
    assert_eq!(v.vms[1].last_seq_found, 301);
    assert!(v.vms.iter().all(|vm| vm.writes_lost == 0));

    // But not a stamp two past the journal.
    g.stamp(0, 0, 12, 12, 302);
    let v = g.verify(Horizon::LastJournaled);
    assert!(!v.consistent);
    assert_eq!(v.vms[0].examples[0].found, "seq 302");
    assert!(v.vms[1].consistent);
}

#[test]
fn verify_foreign_stamp_is_a_mismatch() {
    let mut g = Guest::new(&[U0, U1], 32, 8);
    g.random_writes(100);
    let s = g.write(1, 2);
    let expected = g.write(0, 2);
    // vm1's block 2 lands in vm0's image: a write to the wrong disk.
    g.stamp(0, 1, 2, 2, s);
    // vm0's own stamp of block 9 lands at block 20.
    let s9 = g.write(0, 9);
    g.images[0]
        .write_block(20, &{
            let mut b = [0u8; BLOCK_SIZE];
            stamp_block(&uuid(U0), 9, s9, &mut b);
            b
        })
        .expect("write");
    let v = g.verify(Horizon::LastJournaled);
    assert!(!v.consistent);
    let vm = &v.vms[0];
    assert_eq!(vm.examples[0].block, 2);
    assert_eq!(vm.examples[0].expected_seq, expected);
    assert_eq!(vm.examples[0].found, format!("foreign {U1}/2 seq {s}"));
    let at20 = vm
        .examples
        .iter()
        .find(|m| m.block == 20)
        .expect("block 20");
    assert_eq!(at20.found, format!("foreign {U0}/9 seq {s9}"));
    assert!(vm.written_blocks >= 2);
    assert!(v.vms[1].consistent);
}

/// An in-memory disk, to check that any BlockRead works and read errors surface.
struct MemDisk {
    blocks: Vec<Block>,
    fail_at: Option<u64>,
}

impl BlockRead for MemDisk {
    fn block_count(&self) -> u64 {
        self.blocks.len() as u64
    }
    fn read_block(&mut self, index: u64, buf: &mut Block) -> io::Result<()> {
        if self.fail_at == Some(index) {
            return Err(io::Error::other("injected failure"));
        }
        *buf = self.blocks[index as usize];
        Ok(())
    }
}

#[test]
fn verify_through_any_block_reader_and_read_errors_surface() {
    let u = uuid(U2);
    let mut disk = MemDisk {
        blocks: vec![[0u8; BLOCK_SIZE]; 4],
        fail_at: None,
    };
    stamp_block(&u, 1, 1, &mut disk.blocks[1]);
    let journal = parse_journal(format!("1 {U2} 1\n2 {U0} 3\n").as_bytes(), "m").expect("journal");
    let v = verify_set(
        &mut [VmDisk {
            name: "mem".into(),
            uuid: u,
            reader: &mut disk,
        }],
        &journal,
        Horizon::LastJournaled,
    )
    .expect("verify");
    assert!(v.consistent, "{v:#?}");
    assert_eq!(v.horizon_seq, 2);

    disk.fail_at = Some(2);
    let err = verify_set(
        &mut [VmDisk {
            name: "mem".into(),
            uuid: u,
            reader: &mut disk,
        }],
        &journal,
        Horizon::LastJournaled,
    )
    .expect_err("read error");
    let msg = err.to_string();
    assert!(msg.contains("mem") && msg.contains("block 2"), "{msg}");
    assert!(msg.contains("injected failure"), "{msg}");
}

#[test]
fn verify_result_serializes() {
    let mut g = Guest::new(&[U0], 4, 9);
    g.write(0, 1);
    let v = g.verify(Horizon::LastJournaled);
    let json = serde_json::to_string(&v).expect("json");
    assert!(json.contains("\"horizon_seq\":1"), "{json}");
    assert!(json.contains(U0), "{json}");
}
