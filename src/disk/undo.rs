//! A copy-on-write record of an image: each block as it was at the record's instant, saved
//! just before its first overwrite (the undo log an array snapshot keeps). Reverting writes
//! the saved blocks back, which returns the image to that instant whatever was written since.
//!
//! On disk, one record per saved block: its index (u64 LE), the block, and a CRC-32 of both.
//! A record is appended *before* the write it protects, so a crash between the two leaves a
//! saved block whose overwrite never happened (reverting it changes nothing); a crash inside
//! an append leaves a torn tail, cut off at the next open (its write never happened either).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{BLOCK_SIZE, Block, ImageFile};

const RECORD_BYTES: u64 = 8 + BLOCK_SIZE as u64 + 4;

/// The undo log of one image.
pub struct UndoLog {
    path: PathBuf,
    file: File,
    /// One bit per block of the image: saved already.
    saved: Vec<u64>,
    count: u64,
}

impl UndoLog {
    /// A new, empty record of an image of `blocks` blocks (replacing any file at `path`).
    pub fn create(path: &Path, blocks: u64) -> io::Result<UndoLog> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(path)?;
        Ok(UndoLog {
            path: path.to_path_buf(),
            file,
            saved: vec![0; blocks.div_ceil(64) as usize],
            count: 0,
        })
    }

    /// Opens the record at `path` of an image of `blocks` blocks; a torn last record (a
    /// crash inside its append) is cut off. A record naming a block beyond the image is an
    /// error: the file is not this image's record.
    pub fn open(path: &Path, blocks: u64) -> io::Result<UndoLog> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let mut log = UndoLog {
            path: path.to_path_buf(),
            file,
            saved: vec![0; blocks.div_ceil(64) as usize],
            count: 0,
        };
        let mut good = 0u64;
        let mut saved = std::mem::take(&mut log.saved);
        log.for_each(|block, _| {
            if block >= blocks {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("record of block {block}, beyond the image's {blocks} blocks"),
                ));
            }
            saved[(block / 64) as usize] |= 1 << (block % 64);
            good += 1;
            Ok(())
        })?;
        log.saved = saved;
        log.count = good;
        log.file.set_len(good * RECORD_BYTES)?;
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Blocks saved so far.
    pub fn saved(&self) -> u64 {
        self.count
    }

    /// The record's size on disk.
    pub fn bytes(&self) -> u64 {
        self.count * RECORD_BYTES
    }

    fn is_saved(&self, block: u64) -> bool {
        self.saved
            .get((block / 64) as usize)
            .is_some_and(|w| w & (1 << (block % 64)) != 0)
    }

    /// Called before block `block` of `img` is overwritten: saves it as it is now, unless
    /// it was saved already. Returns whether it saved it.
    pub fn before_write(&mut self, img: &ImageFile, block: u64) -> io::Result<bool> {
        if self.is_saved(block) {
            return Ok(false);
        }
        if block >= self.saved.len() as u64 * 64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("block {block} is beyond the recorded image"),
            ));
        }
        let mut buf: Block = [0; BLOCK_SIZE];
        img.read_block_at(block, &mut buf)?;
        let mut rec = Vec::with_capacity(RECORD_BYTES as usize);
        rec.extend_from_slice(&block.to_le_bytes());
        rec.extend_from_slice(&buf);
        let crc = crc32fast::hash(&rec);
        rec.extend_from_slice(&crc.to_le_bytes());
        self.file.write_all_at(&rec, self.count * RECORD_BYTES)?;
        self.saved[(block / 64) as usize] |= 1 << (block % 64);
        self.count += 1;
        Ok(true)
    }

    /// Writes every saved block back into `img`: it holds what it held at the record's
    /// instant. Idempotent. Returns the blocks written.
    pub fn revert(&self, img: &ImageFile) -> io::Result<u64> {
        let mut n = 0;
        self.for_each(|block, data| {
            img.write_block(block, data)?;
            n += 1;
            Ok(())
        })?;
        Ok(n)
    }

    /// Calls `f` with each whole, intact record in order; stops at the first torn one.
    fn for_each(&self, mut f: impl FnMut(u64, &Block) -> io::Result<()>) -> io::Result<()> {
        let mut rec = vec![0u8; RECORD_BYTES as usize];
        let mut offset = 0u64;
        loop {
            match self.file.read_exact_at(&mut rec, offset) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
            let (body, crc) = rec.split_at(RECORD_BYTES as usize - 4);
            if crc32fast::hash(body).to_le_bytes() != crc {
                return Ok(());
            }
            let block = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
            let data: &Block = body[8..].try_into().expect("one block");
            f(block, data)?;
            offset += RECORD_BYTES;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::stamp_block;

    fn block(img: &ImageFile, b: u64) -> Block {
        let mut buf = [0; BLOCK_SIZE];
        img.read_block_at(b, &mut buf).unwrap();
        buf
    }

    /// Blocks overwritten (some twice) after the record come back as they were; blocks
    /// never written are untouched; a reopened record (with a torn tail) reverts the same.
    #[test]
    fn a_reverted_image_is_back_at_the_records_instant() {
        let dir = tempfile::tempdir().unwrap();
        let img = ImageFile::create(&dir.path().join("d.img"), 16).unwrap();
        let uuid = [7u8; 16];
        let mut buf = [0; BLOCK_SIZE];
        for b in 0..16 {
            stamp_block(&uuid, b, b + 1, &mut buf);
            img.write_block(b, &buf).unwrap();
        }
        let at_record: Vec<Block> = (0..16).map(|b| block(&img, b)).collect();
        let path = dir.path().join("d.undo");
        let mut log = UndoLog::create(&path, 16).unwrap();
        for (seq, b) in [(100, 3), (101, 5), (102, 3), (103, 15)] {
            log.before_write(&img, b).unwrap();
            stamp_block(&uuid, b, seq, &mut buf);
            img.write_block(b, &buf).unwrap();
        }
        assert_eq!(log.saved(), 3, "block 3 is saved once");
        assert_ne!(block(&img, 3), at_record[3]);
        // A crash inside the next append: half a record at the end.
        drop(log);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut f, &[9u8; 100]).unwrap();
        drop(f);
        let log = UndoLog::open(&path, 16).unwrap();
        assert_eq!(log.saved(), 3);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), log.bytes());
        assert_eq!(log.revert(&img).unwrap(), 3);
        assert_eq!(log.revert(&img).unwrap(), 3, "idempotent");
        for b in 0..16 {
            assert_eq!(block(&img, b), at_record[b as usize], "block {b}");
        }
        assert!(UndoLog::open(&path, 2).is_err(), "another image's record");
    }
}
