//! The workspace lock: one process at a time (workspace.lock).

use super::*;

/// The error for a workspace whose lock `file` another process holds (its pid, as it
/// recorded it in the file).
pub(super) fn locked(root: &Path, mut file: File) -> WorkspaceError {
    let mut text = String::new();
    let _ = (&mut file).take(256).read_to_string(&mut text);
    let text = text.trim();
    let holder = if text.is_empty() {
        "holder unknown".to_string()
    } else {
        text.to_string()
    };
    WorkspaceError::Locked {
        root: root.display().to_string(),
        holder,
    }
}

/// Opens (creating) `root/workspace.lock`, locks it without waiting and records our pid.
pub(super) fn take_lock(root: &Path) -> Result<File, WorkspaceError> {
    let path = root.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => return Err(locked(root, file)),
        Err(fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
    }
    let record = (|| {
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        writeln!(file, "pid {}", std::process::id())?;
        file.flush()
    })();
    record.map_err(io_err(&path))?;
    Ok(file)
}
