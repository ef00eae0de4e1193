//! Open descriptors of image files, bounded: an engine of 50,000 VMs holds 50,000 images
//! but a process may hold only so many descriptors (`ulimit -n`, 1,024 by default). Each
//! [`ImageFile`](super::ImageFile) keeps its path and the identity of its file (device and
//! inode); its descriptor lives in one process-wide cache of the most recently used ones.
//! An image whose descriptor was closed to make room opens its file again on its next
//! read or write, and refuses to go on if the path now names another file: a descriptor
//! kept open would have gone on reading the old one, and an image must never silently
//! switch files.
//!
//! Durability is unchanged by a reopen: `fdatasync` on any descriptor of a file flushes the
//! file's dirty pages, and Linux reports a writeback error that no descriptor has seen yet
//! to one opened after it.

use std::fs::File;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use lru::LruCache;

/// A least-recently-used set of open files, by image key.
pub(super) struct Handles {
    open: Mutex<LruCache<u64, Arc<File>>>,
    next_key: AtomicU64,
}

impl Handles {
    pub(super) fn new(capacity: NonZeroUsize) -> Handles {
        Handles {
            open: Mutex::new(LruCache::new(capacity)),
            next_key: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<u64, Arc<File>>> {
        // The cache holds no invariant a panicking holder could break half-way.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new key for an image, with its file already open.
    pub(super) fn insert(&self, file: File) -> (u64, Arc<File>) {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let file = Arc::new(file);
        self.put(key, file.clone());
        (key, file)
    }

    /// Keeps `file` open for `key`, closing the least recently used descriptor if the
    /// cache is full (a descriptor in use elsewhere closes when that use ends).
    pub(super) fn put(&self, key: u64, file: Arc<File>) {
        let evicted = self.lock().push(key, file);
        drop(evicted); // outside the lock: closing a file is a system call
    }

    /// The open file of `key`, if its descriptor is still cached; marks it most recent.
    pub(super) fn get(&self, key: u64) -> Option<Arc<File>> {
        self.lock().get(&key).cloned()
    }

    /// Forgets `key` (its image is dropped).
    pub(super) fn remove(&self, key: u64) {
        let removed = self.lock().pop(&key);
        drop(removed);
    }

    /// Closes every cached descriptor that is not in use.
    pub(super) fn clear(&self) {
        let mut open = self.lock();
        let capacity = open.cap();
        let all = std::mem::replace(&mut *open, LruCache::new(capacity));
        drop(open);
        drop(all); // outside the lock, as in `put`
    }

    #[cfg(test)]
    pub(super) fn capacity(&self) -> NonZeroUsize {
        self.lock().cap()
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The environment variable that sets how many image descriptors the process keeps open
/// (a whole number, at least 1).
pub const OPEN_IMAGES_VAR: &str = "DRCONSOLE_OPEN_IMAGES";

/// How many image descriptors the process keeps open: [`OPEN_IMAGES_VAR`] if set, else a
/// quarter of its descriptor limit (the rest is for journals, replication's short-lived
/// readers, sockets and the GUI), at least 64 and at most 4,096.
fn default_capacity() -> NonZeroUsize {
    if let Some(n) = std::env::var(OPEN_IMAGES_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<NonZeroUsize>().ok())
    {
        return n;
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the one struct passed, which lives on this stack frame.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        1024
    };
    let n = usize::try_from(soft / 4)
        .unwrap_or(usize::MAX)
        .clamp(64, 4096);
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

/// The process's image descriptors; sized on first use, after `main` raised the limit.
pub(super) static HANDLES: LazyLock<Handles> = LazyLock::new(|| Handles::new(default_capacity()));

/// Closes every image descriptor not in use at this moment; each image opens its file
/// again when next read or written. For tests of that reopening, and for a process about
/// to need many descriptors for something else.
pub fn close_idle_images() {
    HANDLES.clear();
}
