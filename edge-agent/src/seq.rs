//! Sequence numbers that keep increasing across restarts.
//!
//! The state file holds a high-water mark: every `seq` below it may have been
//! used. Numbers are reserved in blocks of [`BLOCK`], so the file is written
//! (and fsynced) once per block rather than once per message, which spares an
//! SD card. After a crash the agent resumes at the mark, skipping at most
//! `BLOCK - 1` numbers. A clean shutdown writes the exact next number, so a
//! planned restart skips none. The numbers skipped are the ones between the
//! last envelope in the spool and the mark ([`skipped`]); the agent
//! announces them in its status message, so the aggregator neither counts
//! them as missing nor asks for them.
//!
//! Without a state file (first start, or a lost disk) numbering starts at the
//! current Unix time in milliseconds, which lies above anything an earlier
//! installation of the same agent id used unless it sent more than one
//! message per millisecond on average: a re-installed gateway is not mistaken
//! for a replay of old messages.

use std::io::Write;
use std::path::{Path, PathBuf};

use throughline_shared::message::SeqRange;

use crate::error::Error;

/// Numbers reserved per state-file write.
pub const BLOCK: u64 = 64;
const FILE: &str = "seq";

/// Allocator of sequence numbers backed by a state file.
#[derive(Debug)]
pub struct SeqStore {
    path: PathBuf,
    next: u64,
    reserved: u64,
}

impl SeqStore {
    /// Open (or create) the state file in `dir`.
    pub fn open(dir: &Path) -> Result<SeqStore, Error> {
        let path = dir.join(FILE);
        let err = |source| Error::State { path: path.clone(), source };
        std::fs::create_dir_all(dir).map_err(err)?;
        let next = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<u64>().map_err(|_| {
                err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "expected one number, found {:?}; remove the file to start from the clock",
                        text.trim()
                    ),
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let now_ms = chrono::Utc::now().timestamp_millis().max(1) as u64;
                tracing::info!(path = %path.display(), start = now_ms, "no sequence state; numbering from the clock");
                now_ms
            }
            Err(e) => return Err(err(e)),
        };
        Ok(SeqStore { path, next, reserved: next })
    }

    /// The next number, reserving a new block on disk when needed.
    pub fn allocate(&mut self) -> Result<u64, Error> {
        if self.next >= self.reserved {
            let mark = self.next + BLOCK;
            self.write(mark)?;
            self.reserved = mark;
        }
        let seq = self.next;
        self.next += 1;
        Ok(seq)
    }

    /// The number the next call to [`SeqStore::allocate`] returns.
    pub fn peek(&self) -> u64 {
        self.next
    }

    /// Record the exact next number (clean shutdown).
    pub fn close(mut self) -> Result<(), Error> {
        let next = self.next;
        self.write(next)?;
        self.reserved = next;
        Ok(())
    }

    fn write(&mut self, mark: u64) -> Result<(), Error> {
        let err = |source| Error::State { path: self.path.clone(), source };
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        writeln!(f, "{mark}").map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        if let Some(dir) = self.path.parent() {
            // Make the rename itself durable.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

/// The numbers a start at `next` skips after the previous run, whose
/// newest envelope in the spool has `newest` (`None`: the spool holds none,
/// so what the previous run used is unknown and nothing is announced; the
/// aggregator then asks for the numbers and reports them lost, which is
/// safe). More than a block apart is not a skip but another numbering (a
/// lost state file) and announces nothing either.
pub fn skipped(next: u64, newest: Option<u64>) -> Option<SeqRange> {
    let newest = newest?;
    let from = newest.checked_add(1)?;
    (from < next && next - from < BLOCK).then(|| SeqRange { from, to: next - 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_restart_continues_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SeqStore::open(dir.path()).unwrap();
        let first: Vec<u64> = (0..100).map(|_| s.allocate().unwrap()).collect();
        assert!(first.windows(2).all(|w| w[1] == w[0] + 1));
        s.close().unwrap();
        let mut s = SeqStore::open(dir.path()).unwrap();
        assert_eq!(s.allocate().unwrap(), first[99] + 1);
    }

    #[test]
    fn crash_restart_skips_at_most_a_block_and_never_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SeqStore::open(dir.path()).unwrap();
        let last = (0..70).map(|_| s.allocate().unwrap()).last().unwrap();
        drop(s); // no close(): as if killed
        let mut s = SeqStore::open(dir.path()).unwrap();
        let again = s.allocate().unwrap();
        assert!(again > last && again - last <= BLOCK, "{last} -> {again}");
    }

    #[test]
    fn the_skipped_block_lies_between_the_spool_and_the_mark() {
        assert_eq!(skipped(170, Some(150)), Some(SeqRange { from: 151, to: 169 }));
        assert_eq!(skipped(151, Some(150)), None, "a clean stop skips nothing");
        assert_eq!(skipped(170, None), None, "unknown: announce nothing");
        let most = skipped(150 + BLOCK, Some(150)).unwrap();
        assert_eq!((most.from, most.to, most.count()), (151, 149 + BLOCK, BLOCK - 1), "at most a block");
        assert_eq!(skipped(151 + BLOCK, Some(150)), None, "more than a block: another numbering");
        assert_eq!(skipped(5, Some(u64::MAX)), None);
        assert_eq!(skipped(5, Some(9)), None);
    }

    #[test]
    fn fresh_start_numbers_from_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let before = chrono::Utc::now().timestamp_millis() as u64;
        let mut s = SeqStore::open(dir.path()).unwrap();
        assert!(s.allocate().unwrap() >= before);
    }

    #[test]
    fn corrupt_state_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("seq"), "garbage").unwrap();
        let e = SeqStore::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("seq") && e.contains("garbage"), "{e}");
    }
}
