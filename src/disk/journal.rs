//! The ground-truth journal: `<seq> <uuid> <block>` lines, written and parsed.

use super::*;

/// One line of `journal/<site>.log`: `<seq> <uuid> <block>\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalEntry {
    pub seq: u64,
    pub uuid: RawUuid,
    pub block: u64,
}

/// Longest line: 20 digits, space, 36-char uuid, space, 20 digits, newline.
const MAX_LINE: usize = 20 + 1 + 36 + 1 + 20 + 1;

fn push_u64(buf: &mut [u8], pos: &mut usize, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let digits = &tmp[i..];
    buf[*pos..*pos + digits.len()].copy_from_slice(digits);
    *pos += digits.len();
}

fn format_entry(e: &JournalEntry, line: &mut [u8; MAX_LINE]) -> usize {
    let mut pos = 0;
    push_u64(line, &mut pos, e.seq);
    line[pos] = b' ';
    pos += 1;
    let len = uuid::fmt::Hyphenated::LENGTH;
    uuid::Uuid::from_bytes(e.uuid)
        .hyphenated()
        .encode_lower(&mut line[pos..pos + len]);
    pos += len;
    line[pos] = b' ';
    pos += 1;
    push_u64(line, &mut pos, e.block);
    line[pos] = b'\n';
    pos + 1
}

/// Appends lines to a journal file, one `write` of the whole line per entry, unbuffered.
#[derive(Debug)]
pub struct JournalWriter {
    file: File,
    path: PathBuf,
}

impl JournalWriter {
    /// Opens `path` for appending, creating it if missing.
    pub fn open(path: &Path) -> Result<JournalWriter, DiskError> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| io_error(path, e))?;
        Ok(JournalWriter {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry as a single write of the whole line.
    pub fn append(&mut self, e: &JournalEntry) -> io::Result<()> {
        let mut line = [0u8; MAX_LINE];
        let n = format_entry(e, &mut line);
        self.file.write_all(&line[..n])
    }

    /// Flushes appended lines to stable storage.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// A whole journal, in increasing seq order.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    pub entries: Vec<JournalEntry>,
    /// Highest seq, 0 if empty.
    pub last_seq: u64,
}

impl Journal {
    /// The journal as it stood when `seq` was the last write: what a recovery point cut
    /// at `seq` must hold.
    pub fn up_to(&self, seq: u64) -> Journal {
        Journal {
            entries: self
                .entries
                .iter()
                .filter(|x| x.seq <= seq)
                .cloned()
                .collect(),
            last_seq: seq,
        }
    }
}

/// Parses a decimal u64: digits only, no sign, no overflow.
fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

fn parse_line(line: &[u8]) -> Result<JournalEntry, String> {
    let mut fields = line.split(|&c| c == b' ');
    let (Some(seq), Some(uuid), Some(block), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(format!(
            "expected \"<seq> <uuid> <block>\" (three fields separated by single spaces), found {}",
            shown(line)
        ));
    };
    let seq = parse_u64(seq).ok_or_else(|| format!("seq {} is not a number", shown(seq)))?;
    let uuid = parse_uuid_ascii(uuid)
        .ok_or_else(|| format!("{} is not a hyphenated uuid", shown(uuid)))?;
    let block =
        parse_u64(block).ok_or_else(|| format!("block {} is not a number", shown(block)))?;
    Ok(JournalEntry { seq, uuid, block })
}

/// A short, quoted, printable excerpt of raw bytes for error messages.
fn shown(bytes: &[u8]) -> String {
    const MAX: usize = 60;
    let cut = bytes.len() > MAX;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    format!("{:?}{}", text, if cut { "..." } else { "" })
}

fn parse_from<R: BufRead>(
    mut reader: R,
    name: &str,
    capacity: usize,
) -> Result<Journal, DiskError> {
    let mut journal = Journal {
        entries: Vec::with_capacity(capacity),
        last_seq: 0,
    };
    let mut line = Vec::with_capacity(128);
    let mut number = 0usize;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| DiskError::Io {
                path: name.to_string(),
                source,
            })?;
        if n == 0 || line.last() != Some(&b'\n') {
            // End of file, or a last line cut short by a crash: ignored whatever it holds.
            break;
        }
        number += 1;
        let text = &line[..line.len() - 1];
        let entry = parse_line(text).map_err(|rule| DiskError::Journal {
            path: name.to_string(),
            line: number,
            rule,
        })?;
        if entry.seq <= journal.last_seq {
            let rule = if journal.entries.is_empty() {
                "seq 0 is not allowed: sequence numbers start at 1".to_string()
            } else {
                format!(
                    "seq {} is not greater than the previous seq {}: sequence numbers must increase",
                    entry.seq, journal.last_seq
                )
            };
            return Err(DiskError::Journal {
                path: name.to_string(),
                line: number,
                rule,
            });
        }
        journal.last_seq = entry.seq;
        journal.entries.push(entry);
    }
    Ok(journal)
}

/// Reads a whole journal. A last line without a trailing newline was cut short by a crash and
/// is ignored. A complete line that does not parse, or a seq not greater than the previous
/// one, is an error naming the file and the line.
pub fn read_journal(path: &Path) -> Result<Journal, DiskError> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    // A line is about 50 to 60 bytes; reserve accordingly to avoid regrowing a huge Vec.
    let capacity = file
        .metadata()
        .map(|m| usize::try_from(m.len() / 56).unwrap_or(0))
        .unwrap_or(0);
    let reader = BufReader::with_capacity(1 << 20, file);
    parse_from(reader, &path.display().to_string(), capacity)
}

/// Same as [`read_journal`], from bytes; `name` is used in errors.
pub fn parse_journal(bytes: &[u8], name: &str) -> Result<Journal, DiskError> {
    parse_from(bytes, name, bytes.len() / 56)
}
