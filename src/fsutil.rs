//! File helpers shared by every writer of metadata.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

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
}
