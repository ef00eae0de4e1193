use super::*;
use crate::disk::{DirtyTracker, RawUuid, stamp_block};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;

const U: RawUuid = [7; 16];

fn stamp(img: &ImageFile, block: u64, seq: u64) {
    let mut buf = [0u8; BLOCK_SIZE];
    stamp_block(&U, block, seq, &mut buf);
    img.write_block(block, &buf).expect("write");
}

/// A temp dir with `src.img` of `blocks` blocks, the listed blocks stamped with seq 1.
fn source(blocks: u64, written: impl IntoIterator<Item = u64>) -> (tempfile::TempDir, ImageFile) {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = ImageFile::create(&dir.path().join("src.img"), blocks).expect("create");
    for b in written {
        stamp(&img, b, 1);
    }
    (dir, img)
}

fn same_files(a: &Path, b: &Path) -> bool {
    fs::read(a).expect("read") == fs::read(b).expect("read")
}

/// A delta built by hand, with a correct CRC unless the caller breaks it.
fn craft(version: u32, blocks: u64, runs: &[(u64, u64)], garbage: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(DELTA_MAGIC);
    v.extend_from_slice(&version.to_le_bytes());
    v.extend_from_slice(&blocks.to_le_bytes());
    v.extend_from_slice(&(runs.len() as u64).to_le_bytes());
    for &(first, count) in runs {
        v.extend_from_slice(&first.to_le_bytes());
        v.extend_from_slice(&count.to_le_bytes());
        v.resize(v.len() + count as usize * BLOCK_SIZE, 0xAB);
    }
    v.extend_from_slice(garbage);
    let crc = crc32fast::hash(&v);
    v.extend_from_slice(&crc.to_le_bytes());
    v
}

#[test]
fn tracked_cycles_round_trip_byte_identical() {
    let blocks = 300;
    let (dir, mut src) = source(blocks, (0..blocks).step_by(3));
    let replica = dir.path().join("replica.img");
    fs::copy(src.path(), &replica).expect("copy");
    let tracker = Arc::new(DirtyTracker::new(blocks));
    src.set_tracker(Some(Arc::clone(&tracker)));

    // A long run (split at 64 blocks), isolated blocks, and the first and last block.
    let changed: Vec<u64> = (10..150).chain([152, 154, 155, 0, 299]).collect();
    for &b in changed.iter().rev() {
        stamp(&src, b, 2);
    }
    let taken = tracker.take();
    let mut expected = changed.clone();
    expected.sort_unstable();
    assert_eq!(taken, expected, "ascending, each once");
    assert_eq!(tracker.count(), 0, "take clears");
    assert!(!same_files(src.path(), &replica));

    let delta = dir.path().join("cycle1.delta");
    let stats = write_delta(&src, &taken, &delta, &mut Barrier::new()).expect("write_delta");
    // Runs: [0], [10..74), [74..138), [138..150), [152], [154, 155], [299].
    let runs = 7;
    assert_eq!(stats.blocks, taken.len() as u64);
    assert_eq!(
        stats.bytes,
        HEADER_BYTES + runs * RUN_HEADER_BYTES + taken.len() as u64 * 4096 + CRC_BYTES
    );
    assert_eq!(fs::metadata(&delta).expect("meta").len(), stats.bytes);
    let applied = apply_delta(&delta, &replica, blocks, &mut Barrier::new()).expect("apply");
    assert_eq!(applied, stats);
    assert!(same_files(src.path(), &replica));

    // Applying again changes nothing (roll-forward after a crash in mid-apply).
    apply_delta(&delta, &replica, blocks, &mut Barrier::new()).expect("apply again");
    assert!(same_files(src.path(), &replica));

    // A second cycle ships only what changed since the first.
    src.write_at(200 * 4096 + 10, &[9u8; 5000])
        .expect("write_at");
    let taken = tracker.take();
    assert_eq!(taken, vec![200, 201]);
    let stats = write_delta(&src, &taken, &delta, &mut Barrier::new()).expect("write_delta 2");
    assert_eq!(
        stats.bytes,
        HEADER_BYTES + RUN_HEADER_BYTES + 2 * 4096 + CRC_BYTES
    );
    apply_delta(&delta, &replica, blocks, &mut Barrier::new()).expect("apply 2");
    assert!(same_files(src.path(), &replica));

    // An empty cycle is a valid, header-only delta.
    let stats = write_delta(&src, &[], &delta, &mut Barrier::new()).expect("empty");
    assert_eq!(
        stats,
        DeltaStats {
            blocks: 0,
            bytes: EMPTY_DELTA_BYTES
        }
    );
    apply_delta(&delta, &replica, blocks, &mut Barrier::new()).expect("apply empty");
    assert!(same_files(src.path(), &replica));
}

#[test]
fn an_empty_replica_is_made_sparse_once_and_a_wrong_size_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk0.img");
    let mut barrier = Barrier::new();
    create_empty_replica(&path, 64, &mut barrier).expect("create");
    let img = ImageFile::open_read_only(&path).unwrap();
    assert_eq!(img.block_count(), 64);
    assert_eq!(
        fs::metadata(&path).unwrap().blocks(),
        0,
        "sparse: nothing allocated"
    );
    assert!(!barrier.is_empty(), "recorded for the barrier");
    // Rolled forward after a crash: the same image is left as it is.
    stamp(&ImageFile::open(&path).unwrap(), 3, 9);
    create_empty_replica(&path, 64, &mut barrier).expect("again");
    assert_ne!(
        fs::read(&path).unwrap()[3 * BLOCK_SIZE..4 * BLOCK_SIZE],
        [0u8; BLOCK_SIZE]
    );
    let err = create_empty_replica(&path, 32, &mut barrier).expect_err("other size");
    assert!(err.to_string().contains("disk0.img"), "{err}");
}

#[test]
fn half_applied_delta_is_rolled_forward() {
    let (dir, src) = source(128, 0..128);
    let replica = dir.path().join("replica.img");
    fs::copy(src.path(), &replica).expect("copy");
    let changed: Vec<u64> = (0..128).step_by(5).collect();
    for &b in &changed {
        stamp(&src, b, 3);
    }
    let delta = dir.path().join("d.delta");
    write_delta(&src, &changed, &delta, &mut Barrier::new()).expect("write");
    // The crash: only the first few blocks landed.
    let partial = ImageFile::open(&replica).expect("open");
    let mut buf = [0u8; BLOCK_SIZE];
    for &b in &changed[..4] {
        src.read_block_at(b, &mut buf).expect("read");
        partial.write_block(b, &buf).expect("write");
    }
    drop(partial);
    apply_delta(&delta, &replica, 128, &mut Barrier::new()).expect("roll forward");
    assert!(same_files(src.path(), &replica));
}

#[test]
fn initial_full_copy_creates_a_sparse_replica() {
    let blocks = 1024;
    let written: Vec<u64> = [3, 4, 5, 100, 1023].into();
    let (dir, src) = source(blocks, written.iter().copied());
    assert_eq!(nonzero_blocks(&src).expect("scan"), written);
    let delta = dir.path().join("full.delta");
    let stats = write_delta(&src, &written, &delta, &mut Barrier::new()).expect("write");
    assert_eq!(stats.blocks, 5);
    let replica = dir.path().join("sub").join("replica.img");
    fs::create_dir(replica.parent().expect("parent")).expect("mkdir");
    apply_delta(&delta, &replica, blocks, &mut Barrier::new()).expect("apply");
    assert!(same_files(src.path(), &replica));
    let meta = fs::metadata(&replica).expect("meta");
    assert_eq!(meta.len(), blocks * 4096);
    assert!(
        meta.blocks() * 512 <= 64 * 4096,
        "replica not sparse: {} bytes allocated",
        meta.blocks() * 512
    );
}

#[test]
fn nonzero_and_differing_blocks_are_exact() {
    // Over several read chunks, with a partial last chunk.
    let blocks = 3 * RUN_MAX_BLOCKS + 7;
    let (dir, a) = source(blocks, []);
    assert!(nonzero_blocks(&a).expect("scan").is_empty());
    // One non-zero byte anywhere in a block makes it non-zero.
    a.write_at(70 * 4096 + 4095, &[1]).expect("write");
    a.write_at(129 * 4096 + 2000, &[1]).expect("write");
    stamp(&a, blocks - 1, 1);
    assert_eq!(nonzero_blocks(&a).expect("scan"), vec![70, 129, blocks - 1]);

    let b_path = dir.path().join("b.img");
    fs::copy(a.path(), &b_path).expect("copy");
    let b = ImageFile::open(&b_path).expect("open");
    assert!(differing_blocks(&a, &b).expect("diff").is_empty());
    b.write_at(0, &[5]).expect("write");
    b.write_at(64 * 4096 - 1, &[5, 5]).expect("write"); // blocks 63 and 64
    a.write_at(150 * 4096 + 17, &[9]).expect("write");
    stamp(&b, blocks - 1, 2);
    assert_eq!(
        differing_blocks(&a, &b).expect("diff"),
        vec![0, 63, 64, 150, blocks - 1]
    );
    assert_eq!(
        differing_blocks(&b, &a).expect("diff"),
        vec![0, 63, 64, 150, blocks - 1]
    );

    let c = ImageFile::create(&dir.path().join("c.img"), blocks + 1).expect("create");
    let err = differing_blocks(&a, &c).expect_err("sizes");
    let msg = err.to_string();
    assert!(matches!(err, ReplicaError::SizeMismatch { .. }), "{msg}");
    assert!(msg.contains("src.img") && msg.contains("c.img"), "{msg}");
    assert!(msg.contains(&format!("{blocks} blocks")), "{msg}");
}

#[test]
fn bad_block_lists_are_refused_and_leave_no_delta() {
    let (dir, src) = source(16, 0..16);
    let delta = dir.path().join("d.delta");
    for (list, rule) in [
        (vec![1, 3, 2], "block 2 (entry 2) follows block 3"),
        (vec![1, 3, 3], "block 3 (entry 2) follows block 3"),
        (
            vec![4, 16],
            "block 16 (entry 1) is outside the image (16 blocks)",
        ),
    ] {
        let err = write_delta(&src, &list, &delta, &mut Barrier::new()).expect_err("bad list");
        let msg = err.to_string();
        assert!(matches!(err, ReplicaError::BlockList { .. }), "{msg}");
        assert!(msg.contains("src.img") && msg.contains(rule), "{msg}");
        assert!(!delta.exists());
    }
    let err = write_delta(
        &src,
        &[1],
        &dir.path().join("no/such/dir.delta"),
        &mut Barrier::new(),
    )
    .expect_err("missing dir");
    assert!(matches!(err, ReplicaError::Io { .. }), "{err}");
    assert!(err.to_string().contains("creating the delta"), "{err}");
}

/// Every broken delta is refused with a message naming the delta and the rule, and
/// neither an existing replica nor a missing one is touched.
#[test]
fn bad_deltas_are_refused_before_touching_the_image() {
    let blocks = 64;
    let (dir, src) = source(blocks, 0..blocks);
    let good_path = dir.path().join("good.delta");
    write_delta(&src, &[1, 2, 3, 40], &good_path, &mut Barrier::new()).expect("write");
    let good = fs::read(&good_path).expect("read");
    let replica = dir.path().join("replica.img");
    ImageFile::create(&replica, blocks).expect("create");
    stamp(&ImageFile::open(&replica).expect("open"), 1, 9);
    let before = fs::read(&replica).expect("read");
    let missing = dir.path().join("missing.img");

    let mut flipped = good.clone();
    flipped[HEADER_BYTES as usize + 16 + 100] ^= 1;
    let mut bad_crc = good.clone();
    *bad_crc.last_mut().expect("byte") ^= 0x80;
    let mut bad_magic = good.clone();
    bad_magic[..8].copy_from_slice(b"DRCDELTX");
    let len = good.len();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("data flipped", flipped, "CRC mismatch"),
        ("crc flipped", bad_crc, "CRC mismatch"),
        ("magic", bad_magic, "magic \"DRCDELTX\" is not \"DRCDELTA\""),
        ("empty", Vec::new(), "0 bytes is too short"),
        ("cut in magic", good[..5].to_vec(), "5 bytes is too short"),
        ("cut in header", good[..20].to_vec(), "truncated: 20 bytes"),
        (
            "cut in run header",
            good[..40].to_vec(),
            "inside the header of run 0 of 2",
        ),
        (
            "cut in run data",
            good[..len - 4 - 100].to_vec(),
            "inside the blocks of run 1 of 2",
        ),
        (
            "crc missing",
            good[..len - 4].to_vec(),
            "inside the blocks of run 1 of 2",
        ),
        (
            "version",
            craft(2, blocks, &[(1, 1)], &[]),
            "version 2 is not supported",
        ),
        (
            "wrong block count",
            craft(1, blocks + 1, &[(1, 1)], &[]),
            "for an image of 65 blocks, but the replica has 64 blocks",
        ),
        (
            "run out of range",
            craft(1, blocks, &[(1, 1), (63, 2)], &[]),
            "run 1 (2 blocks from block 63) is empty or outside the image (64 blocks)",
        ),
        (
            "run past u64",
            craft(1, blocks, &[(u64::MAX, 1)], &[]),
            "is empty or outside the image",
        ),
        (
            "empty run",
            craft(1, blocks, &[(5, 0)], &[]),
            "run 0 (0 blocks from block 5) is empty",
        ),
        (
            "descending runs",
            craft(1, blocks, &[(10, 1), (4, 1)], &[]),
            "run 1 starts at block 4, before the end of the previous run (block 11)",
        ),
        (
            "overlapping runs",
            craft(1, blocks, &[(10, 3), (12, 1)], &[]),
            "run 1 starts at block 12, before the end of the previous run (block 13)",
        ),
        (
            "trailing garbage",
            craft(1, blocks, &[(1, 1)], &[0; 3]),
            "3 bytes of garbage",
        ),
    ];
    let path = dir.path().join("bad.delta");
    for (name, bytes, rule) in cases {
        fs::write(&path, &bytes).expect("write");
        for target in [&replica, &missing] {
            let err = apply_delta(&path, target, blocks, &mut Barrier::new()).expect_err(name);
            let msg = err.to_string();
            assert!(
                matches!(err, ReplicaError::BadDelta { .. }),
                "{name}: {msg}"
            );
            assert!(
                msg.starts_with(&format!("{}: not a valid delta: ", path.display())),
                "{name}: {msg}"
            );
            assert!(msg.contains(rule), "{name}: {msg}");
        }
        assert_eq!(fs::read(&replica).expect("read"), before, "{name}");
        assert!(!missing.exists(), "{name}");
    }
    // The crafted deltas are well-formed when nothing is broken.
    fs::write(&path, craft(1, blocks, &[(10, 3), (13, 1)], &[])).expect("write");
    assert_eq!(
        apply_delta(&path, &missing, blocks, &mut Barrier::new())
            .expect("apply")
            .blocks,
        4
    );
    let err = apply_delta(
        &dir.path().join("none.delta"),
        &replica,
        blocks,
        &mut Barrier::new(),
    )
    .expect_err("none");
    assert!(matches!(err, ReplicaError::Io { .. }), "{err}");
    assert!(
        err.to_string().contains("none.delta: opening the delta"),
        "{err}"
    );
}

#[test]
fn replica_of_another_size_is_refused_untouched() {
    let (dir, src) = source(32, 0..32);
    let delta = dir.path().join("d.delta");
    write_delta(&src, &[0, 1], &delta, &mut Barrier::new()).expect("write");
    let replica: PathBuf = dir.path().join("replica.img");
    ImageFile::create(&replica, 16).expect("create");
    let err =
        apply_delta(&delta, &replica, 16, &mut Barrier::new()).expect_err("delta for 32 blocks");
    assert!(matches!(err, ReplicaError::BadDelta { .. }), "{err}");
    let err =
        apply_delta(&delta, &replica, 32, &mut Barrier::new()).expect_err("image of 16 blocks");
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            ReplicaError::ImageSize {
                found: 16,
                expected: 32,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("replica.img: the replica image has 16 blocks but the delta is for 32 blocks"),
        "{msg}"
    );
    assert_eq!(fs::read(&replica).expect("read"), vec![0u8; 16 * 4096]);
    fs::write(&replica, vec![0u8; 4096 * 32 + 1]).expect("write");
    let err = apply_delta(&delta, &replica, 32, &mut Barrier::new()).expect_err("ragged image");
    assert!(
        matches!(err, ReplicaError::Disk(DiskError::Truncated { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("replica.img"), "{err}");
}
