//! Raw image files: block reads and writes, and the [`BlockRead`] trait.

use super::handles::HANDLES;
use super::*;

/// Something that yields a disk's 4 KiB blocks: a plain image file, or a migration's routed
/// read path.
pub trait BlockRead {
    fn block_count(&self) -> u64;
    fn read_block(&mut self, index: u64, buf: &mut Block) -> io::Result<()>;
}

/// A raw disk image file, read and written with positional I/O. Its descriptor is held in
/// the process's bounded cache ([`super::handles`]): the image opens its file again if the
/// descriptor was closed to make room, and fails if the path names another file by then.
#[derive(Debug)]
pub struct ImageFile {
    /// The image's key in the descriptor cache.
    key: u64,
    path: PathBuf,
    /// Device and inode of the file opened first: a reopen must find the same file.
    identity: (u64, u64),
    write: bool,
    /// Readahead turned off ([`ImageFile::without_readahead`]), again on every reopen.
    random: bool,
    blocks: u64,
    /// Marked by every successful write (replication's dirty tracking).
    tracker: Option<Arc<DirtyTracker>>,
}

impl ImageFile {
    /// Opens an existing image for reading and writing.
    pub fn open(path: &Path) -> Result<ImageFile, DiskError> {
        Self::open_with(path, true)
    }

    /// Opens an existing image for reading only.
    pub fn open_read_only(path: &Path) -> Result<ImageFile, DiskError> {
        Self::open_with(path, false)
    }

    fn open_with(path: &Path, write: bool) -> Result<ImageFile, DiskError> {
        let file = OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .map_err(|e| io_error(path, e))?;
        let meta = file.metadata().map_err(|e| io_error(path, e))?;
        let len = meta.len();
        if len % BLOCK_SIZE as u64 != 0 {
            return Err(DiskError::Truncated {
                path: path.display().to_string(),
                len,
            });
        }
        Ok(Self::cached(
            file,
            &meta,
            path,
            write,
            len / BLOCK_SIZE as u64,
        ))
    }

    /// An image of the open `file`, its descriptor put in the cache.
    fn cached(
        file: File,
        meta: &std::fs::Metadata,
        path: &Path,
        write: bool,
        blocks: u64,
    ) -> ImageFile {
        use std::os::unix::fs::MetadataExt;
        let (key, _) = HANDLES.insert(file);
        ImageFile {
            key,
            path: path.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
            write,
            random: false,
            blocks,
            tracker: None,
        }
    }

    /// The image's open file: the cached descriptor, or the file opened again (with the
    /// same access and advice) if the cache closed it, provided it is still the same file.
    fn file(&self) -> io::Result<Arc<File>> {
        use std::os::unix::fs::MetadataExt;
        if let Some(f) = HANDLES.get(self.key) {
            return Ok(f);
        }
        let reopen_error = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("{}: opening the image again: {e}", self.path.display()),
            )
        };
        let file = OpenOptions::new()
            .read(true)
            .write(self.write)
            .open(&self.path)
            .map_err(reopen_error)?;
        let meta = file.metadata().map_err(reopen_error)?;
        if (meta.dev(), meta.ino()) != self.identity {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{}: the image was replaced since it was opened (another file has its \
                     path now); it is not read or written through the new one",
                    self.path.display()
                ),
            ));
        }
        if self.random {
            advise_random(&file);
        }
        let file = Arc::new(file);
        HANDLES.put(self.key, file.clone());
        Ok(file)
    }

    /// Creates a zero-filled (sparse) image of `blocks` blocks; an error if `path` exists.
    pub fn create(path: &Path, blocks: u64) -> Result<ImageFile, DiskError> {
        let len = blocks.checked_mul(BLOCK_SIZE as u64).ok_or_else(|| {
            io_error(
                path,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{blocks} blocks is too large an image"),
                ),
            )
        })?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    DiskError::Exists {
                        path: path.display().to_string(),
                    }
                } else {
                    io_error(path, e)
                }
            })?;
        let meta = file.set_len(len).and_then(|()| file.metadata());
        match meta {
            Ok(meta) => Ok(Self::cached(file, &meta, path, true, blocks)),
            Err(e) => {
                drop(file);
                // Best effort: do not leave a half-made image behind.
                let _ = std::fs::remove_file(path);
                Err(io_error(path, e))
            }
        }
    }

    /// Turns readahead off for this open image. The engine does this for every image it
    /// opens: guests do random 4 KiB I/O and its bulk readers (copy runs, replication
    /// scans, the verifier) ask for large ranges explicitly. Readahead on a sparse image
    /// fills the page cache with large folios, and every later 4 KiB guest write into such
    /// a folio costs the filesystem a walk over all of it: measured on ext4 (Linux 6.18),
    /// 63% of a scenario's time went to `ext4_block_write_begin` before this (70 s ▶ 21 s).
    /// A plain streaming copy (the copy benchmark) is faster with readahead, so it stays the
    /// default. Advisory: failure changes nothing but speed.
    pub fn without_readahead(mut self) -> ImageFile {
        self.random = true;
        if let Some(f) = HANDLES.get(self.key) {
            advise_random(&f);
        }
        self
    }

    /// The byte ranges of the image that may hold data, ascending; the rest are holes,
    /// which read as zeros. From the file system (`SEEK_DATA`/`SEEK_HOLE`); the whole
    /// image where it cannot tell. Images are read and written only at explicit offsets,
    /// so moving the descriptor's offset here disturbs nothing.
    pub fn data_ranges(&self) -> Vec<std::ops::Range<u64>> {
        use std::os::fd::AsRawFd;
        let len = self.blocks * BLOCK_SIZE as u64;
        let whole = std::iter::once(0..len).collect();
        let Ok(file) = self.file() else {
            return whole;
        };
        let fd = file.as_raw_fd();
        let seek = |from: u64, whence| {
            let Ok(from) = libc::off_t::try_from(from) else {
                return Err(None);
            };
            // SAFETY: lseek on a valid open descriptor; it reads no memory of ours.
            let at = unsafe { libc::lseek(fd, from, whence) };
            u64::try_from(at).map_err(|_| std::io::Error::last_os_error().raw_os_error())
        };
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < len {
            let start = match seek(pos, libc::SEEK_DATA) {
                Ok(s) => s,
                // No data after `pos`.
                Err(Some(libc::ENXIO)) => break,
                Err(_) => return whole,
            };
            if start >= len {
                break;
            }
            let Ok(end) = seek(start, libc::SEEK_HOLE) else {
                return whole;
            };
            let end = end.min(len);
            out.push(start..end);
            pos = end;
        }
        out
    }

    /// The image's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of 4 KiB blocks in the image.
    pub fn block_count(&self) -> u64 {
        self.blocks
    }

    /// Checks that bytes `offset..offset+len` lie inside the image.
    fn check_range(&self, offset: u64, len: usize) -> io::Result<()> {
        let size = self.blocks * BLOCK_SIZE as u64; // cannot overflow: it is a file length
        match offset.checked_add(len as u64) {
            Some(end) if end <= size => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: {} bytes at offset {offset} lie outside the image ({size} bytes)",
                    self.path.display(),
                    len
                ),
            )),
        }
    }

    fn block_offset(&self, index: u64) -> io::Result<u64> {
        if index >= self.blocks {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: block {index} is outside the image ({} blocks)",
                    self.path.display(),
                    self.blocks
                ),
            ));
        }
        Ok(index * BLOCK_SIZE as u64) // index < blocks, so no overflow
    }

    /// Attaches a dirty tracker (or detaches it with `None`): from now on every successful
    /// write marks the blocks it touched.
    pub fn set_tracker(&mut self, t: Option<Arc<DirtyTracker>>) {
        self.tracker = t;
    }

    /// The attached dirty tracker, if any.
    pub fn tracker(&self) -> Option<&Arc<DirtyTracker>> {
        self.tracker.as_ref()
    }

    /// Writes block `index` (and marks it in the tracker once it is written).
    pub fn write_block(&self, index: u64, buf: &Block) -> io::Result<()> {
        let off = self.block_offset(index)?;
        self.file()?.write_all_at(buf, off)?;
        if let Some(t) = &self.tracker {
            t.mark(index);
        }
        Ok(())
    }

    /// Reads block `index`.
    pub fn read_block_at(&self, index: u64, buf: &mut Block) -> io::Result<()> {
        let off = self.block_offset(index)?;
        self.file()?.read_exact_at(buf, off)
    }

    /// Reads `buf.len()` bytes at byte `offset` (which must lie inside the image).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.check_range(offset, buf.len())?;
        self.file()?.read_exact_at(buf, offset)
    }

    /// Writes `buf` at byte `offset` (which must lie inside the image: it never grows), and
    /// then marks in the tracker every block the bytes overlap.
    pub fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.check_range(offset, buf.len())?;
        self.file()?.write_all_at(buf, offset)?;
        if let Some(t) = &self.tracker
            && !buf.is_empty()
        {
            let first = offset / BLOCK_SIZE as u64;
            let last = (offset + buf.len() as u64 - 1) / BLOCK_SIZE as u64; // checked above
            t.mark_range(first, last - first + 1);
        }
        Ok(())
    }

    /// Flushes written data to stable storage.
    pub fn sync(&self) -> io::Result<()> {
        self.file()?.sync_data()
    }
}

impl Drop for ImageFile {
    fn drop(&mut self) {
        HANDLES.remove(self.key);
    }
}

/// Turns readahead off for `file`. Advisory: failure changes nothing but speed.
fn advise_random(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor; posix_fadvise reads no memory of ours.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM);
    }
}

impl BlockRead for ImageFile {
    fn block_count(&self) -> u64 {
        self.blocks
    }

    fn read_block(&mut self, index: u64, buf: &mut Block) -> io::Result<()> {
        self.read_block_at(index, buf)
    }
}
