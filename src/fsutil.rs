//! File helpers shared by every writer of metadata.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A RON file that does not parse: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: syntax error: {message}")]
pub struct SyntaxError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses RON text; `file` names the source in the error.
pub fn parse_ron<T: serde::de::DeserializeOwned>(text: &str, file: &str) -> Result<T, SyntaxError> {
    ron::Options::default()
        .from_str(text)
        .map_err(|e| SyntaxError {
            file: file.to_string(),
            line: e.span.start.line,
            column: e.span.start.col,
            message: e.code.to_string(),
        })
}

/// Replaces `path` atomically: write a temp file beside it, fsync it, rename it over
/// `path`, then fsync the directory. A crash at any point leaves the old or the new file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        crate::fault::alive()?;
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        crate::fault::point("atomic.temp-written")?;
        f.sync_all()?;
        crate::fault::point("atomic.temp-synced")?;
        drop(f);
        fs::rename(&tmp, path)?;
        crate::fault::point("atomic.renamed")?;
        File::open(dir)?.sync_all()?;
        crate::fault::point("atomic.dir-synced")
    })();
    // An injected fault is a crash: nothing cleans up after it (the temp file stays, as it
    // would; readers ignore dot files).
    if let Err(e) = &result
        && !crate::fault::is_injected(e)
    {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// One durability barrier for many files written at once, instead of an fsync each.
///
/// A writer of many new files (a workspace's instances, a replication cycle's staging and
/// replicas) writes them plainly, records each here, and calls [`Barrier::commit`] before
/// the one small file that makes them valid (a marker, a commit record) is written
/// atomically: a crash before the marker leaves files nobody reads, after it they are all
/// on disk. With few files the barrier fsyncs each file and each directory whose entries
/// changed; with many it is one `syncfs(2)` of the filesystem holding them (Linux reports
/// writeback errors of any of them there since 5.8). Elsewhere it always fsyncs each.
#[derive(Debug, Default)]
pub struct Barrier {
    files: BTreeSet<PathBuf>,
    dirs: BTreeSet<PathBuf>,
}

/// Up to this many paths a barrier fsyncs each; past it, one `syncfs` is cheaper.
const FEW_PATHS: usize = 32;

/// A barrier that could not make its files durable: which path, and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("{path}: making the files written durable: {source}")]
pub struct BarrierError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl Barrier {
    pub fn new() -> Barrier {
        Barrier::default()
    }

    /// A file written or created at `path`: its data and its entry in its directory.
    pub fn file(&mut self, path: &Path) {
        self.files.insert(path.to_path_buf());
        self.dirs.insert(parent_dir(path).to_path_buf());
    }

    /// A directory created or whose entries changed (a file removed or renamed in it),
    /// and its own entry in its parent.
    pub fn dir(&mut self, path: &Path) {
        self.dirs.insert(path.to_path_buf());
        self.dirs.insert(parent_dir(path).to_path_buf());
    }

    /// Takes over what `other` recorded (a helper thread's share of the work).
    pub fn absorb(&mut self, other: Barrier) {
        self.files.extend(other.files);
        self.dirs.extend(other.dirs);
    }

    /// How many paths are recorded.
    pub fn len(&self) -> usize {
        self.files.len() + self.dirs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes everything recorded durable (see [`Barrier`]). Nothing recorded, nothing done.
    pub fn commit(&self) -> Result<(), BarrierError> {
        let fail = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BarrierError { path, source }
        };
        crate::fault::alive().map_err(fail(Path::new("barrier")))?;
        #[cfg(target_os = "linux")]
        if self.len() > FEW_PATHS
            && let Some(dir) = self.dirs.iter().next()
        {
            use std::os::fd::AsRawFd;
            let f = File::open(dir).map_err(fail(dir))?;
            // SAFETY: syncfs takes an open descriptor, which `f` holds until after the call.
            if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
                return Err(fail(dir)(io::Error::last_os_error()));
            }
            return Ok(());
        }
        for path in self.files.iter().chain(&self.dirs) {
            File::open(path)
                .and_then(|f| f.sync_all())
                .map_err(fail(path))?;
        }
        Ok(())
    }
}

/// Runs `work` on every item, spread over the machine's cores: this thread and helpers
/// take chunks of items from a shared counter, each recording what it writes in its own
/// [`Barrier`]; the barriers are merged and returned, uncommitted. `progress` hears, on
/// this thread, how many items are done after each chunk it ran, and once at the end. The
/// first error stops every thread at its next chunk and is returned. A thread under fault
/// injection ([`crate::fault`] is per thread) works alone, so every step passes its points.
pub fn spread<T: Sync, E: Send>(
    items: &[T],
    work: impl Fn(&T, &mut Barrier) -> Result<(), E> + Sync,
    progress: &mut dyn FnMut(usize),
) -> Result<Barrier, E> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const CHUNK: usize = 64;
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    // One chunk of items; false when there are no more (or another thread failed).
    let chunk = |barrier: &mut Barrier| -> Result<bool, E> {
        let first = next.fetch_add(CHUNK, Ordering::Relaxed);
        if first >= items.len() || failed.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let mine = &items[first..(first + CHUNK).min(items.len())];
        for item in mine {
            if let Err(e) = work(item, barrier) {
                failed.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
        done.fetch_add(mine.len(), Ordering::Relaxed);
        Ok(true)
    };
    let helpers = if crate::fault::active() {
        0
    } else {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(items.len().div_ceil(CHUNK))
            .saturating_sub(1)
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..helpers)
            .map(|_| {
                scope.spawn(|| {
                    let mut barrier = Barrier::new();
                    while chunk(&mut barrier)? {}
                    Ok(barrier)
                })
            })
            .collect();
        let mut barrier = Barrier::new();
        let mut result = Ok(());
        loop {
            match chunk(&mut barrier) {
                Ok(true) => progress(done.load(Ordering::Relaxed)),
                Ok(false) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        for h in handles {
            match h.join() {
                Ok(Ok(b)) => barrier.absorb(b),
                Ok(Err(e)) => result = result.and(Err(e)),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        progress(done.load(Ordering::Relaxed));
        result.map(|()| barrier)
    })
}

/// The directory holding `path` (`.` for a bare name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.ron");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.ron")]);
    }

    #[test]
    fn failure_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.ron");
        write_atomic(&p, b"old").unwrap();
        // A path whose parent does not exist cannot be written; the original stays.
        assert!(write_atomic(&dir.path().join("missing/a.ron"), b"new").is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
    }

    #[test]
    fn a_barrier_syncs_what_it_recorded_and_names_a_path_that_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        // Few paths (one fsync each) and many (one syncfs): both succeed on real files.
        for n in [3, FEW_PATHS + 5] {
            let mut b = Barrier::new();
            let sub = dir.path().join(format!("n{n}"));
            fs::create_dir(&sub).unwrap();
            b.dir(&sub);
            for i in 0..n {
                let p = sub.join(format!("f{i}"));
                fs::write(&p, b"x").unwrap();
                b.file(&p);
            }
            assert_eq!(b.len(), n + 2, "the files, their directory and its parent");
            b.commit().unwrap();
        }
        // A recorded file removed before the barrier: the error names it.
        let mut b = Barrier::new();
        let gone = dir.path().join("gone");
        fs::write(&gone, b"x").unwrap();
        b.file(&gone);
        fs::remove_file(&gone).unwrap();
        let err = b.commit().unwrap_err();
        assert_eq!(err.path, gone);
        assert!(err.to_string().contains("gone"), "{err}");
    }

    #[test]
    fn spread_runs_every_item_once_and_returns_the_first_error() {
        let dir = tempfile::tempdir().unwrap();
        let items: Vec<usize> = (0..500).collect();
        let mut heard = Vec::new();
        let barrier = spread(
            &items,
            |&i, b: &mut Barrier| {
                let p = dir.path().join(format!("f{i}"));
                fs::write(&p, i.to_string())?;
                b.file(&p);
                Ok::<(), io::Error>(())
            },
            &mut |done| heard.push(done),
        )
        .unwrap();
        assert_eq!(barrier.len(), 501, "every file and their directory");
        barrier.commit().unwrap();
        for i in items.iter().step_by(37) {
            assert_eq!(
                fs::read_to_string(dir.path().join(format!("f{i}"))).unwrap(),
                i.to_string()
            );
        }
        assert_eq!(heard.last(), Some(&500), "the end is heard");
        assert!(heard.windows(2).all(|w| w[0] <= w[1]), "{heard:?}");

        let err = spread(
            &items,
            |&i, _: &mut Barrier| if i == 321 { Err(i) } else { Ok(()) },
            &mut |_| {},
        )
        .unwrap_err();
        assert_eq!(err, 321);
    }
}
