//! The ingest journal: every message from the broker is appended here
//! before it is applied and acknowledged, so what the broker was told is
//! received survives a `kill -9` of the aggregator.
//!
//! # On disk
//! `data_dir/journal/` holds segment files named after the id of their
//! first record (`0000000000000000.seg`, 16 hex digits), in the record
//! format of [`throughline_shared::record`]: the topic, then a payload of
//! the receive time (ms since the epoch, i64 LE) and the message as
//! received. Ids grow by one per record and go on across restarts.
//!
//! # Checkpoints
//! The history writer ([`crate::service::history::flush`]) commits the
//! per-minute history and the live state of every asset and agent changed
//! since its last commit, together with the id of the last journal record
//! applied, in one SQLite transaction. At start the aggregator reads that
//! state back and replays the journal from the record after it, so it
//! stands where it stood when it stopped; records the checkpoint holds are
//! released and whole segments of them deleted.
//!
//! # Durability
//! Each append is one `write` of the whole record (of a batch of them):
//! once it returns, a crash of the aggregator (even SIGKILL) loses nothing,
//! the data is in the kernel's page cache. A power cut can lose what was
//! not yet `fsync`ed: about `history.journal_fsync_ms` (default 1 s) of
//! messages. The syncs run on a thread of the journal's own, so ingest
//! never waits for the disk; a sync that fails is reported by the next
//! [`Journal::sync_if_due`]. A record torn by a power cut is skipped at
//! start with a warning and counted.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use throughline_shared::record::{self, append_parts, find_next, read_at};

/// Size at which a new segment is started.
pub const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// When a periodic sync is due while the last is still running, it is
/// tried again this much later.
const SYNC_RETRY: Duration = Duration::from_millis(20);

/// A journal failure: the file and what failed.
#[derive(Debug, thiserror::Error)]
#[error("journal {path}: {what}: {source}")]
pub struct JournalError {
    pub path: PathBuf,
    pub what: &'static str,
    pub source: std::io::Error,
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> JournalError + 'a {
    move |source| JournalError { path: path.to_path_buf(), what, source }
}

#[derive(Debug)]
struct Segment {
    /// Id in the file name: the first id written to it.
    first: u64,
    path: PathBuf,
    file: File,
    bytes: u64,
}

/// What a replay at start found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Records handed to the caller (after the checkpoint).
    pub records: u64,
    /// Records skipped because the checkpoint holds them.
    pub skipped: u64,
    /// Damaged records skipped (a torn write, a flipped bit).
    pub corrupt: u64,
}

/// One record read back.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub id: u64,
    pub received: DateTime<Utc>,
    pub topic: &'a str,
    pub payload: &'a [u8],
}

/// Forces files to the device on a thread of its own.
#[derive(Debug)]
struct Syncer {
    /// Files to sync; `true`: the periodic sync (clears `busy` when done).
    tx: std::sync::mpsc::Sender<(File, bool)>,
    /// A periodic sync is under way (the next one waits for it).
    busy: Arc<std::sync::atomic::AtomicBool>,
    /// Syncs that failed, and the last error.
    failed: Arc<std::sync::Mutex<Option<std::io::Error>>>,
}

impl Syncer {
    fn start() -> Syncer {
        let (tx, rx) = std::sync::mpsc::channel::<(File, bool)>();
        let busy = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let failed = Arc::new(std::sync::Mutex::new(None));
        let (b, f) = (busy.clone(), failed.clone());
        std::thread::Builder::new()
            .name("journal-sync".into())
            .spawn(move || {
                for (file, periodic) in rx {
                    if let Err(e) = file.sync_data() {
                        *f.lock().expect("sync error lock") = Some(e);
                    }
                    if periodic {
                        b.store(false, Ordering::Release);
                    }
                }
            })
            .expect("start the journal's sync thread");
        Syncer { tx, busy, failed }
    }

    /// Sync `file` in the background (`periodic`: the interval's sync).
    fn send(&self, file: &File, periodic: bool) {
        match file.try_clone() {
            Ok(f) => {
                if periodic {
                    self.busy.store(true, Ordering::Release);
                }
                let _ = self.tx.send((f, periodic));
            }
            Err(e) => *self.failed.lock().expect("sync error lock") = Some(e),
        }
    }
}

/// The journal (see the module docs).
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    segments: VecDeque<Segment>,
    next_id: u64,
    fsync_every: Duration,
    segment_bytes: u64,
    dirty: bool,
    last_sync: Instant,
    /// Ids below this are held by the store (set by the checkpoint writer).
    released: Arc<AtomicU64>,
    /// The value of `released` segments were last deleted for.
    seen_released: u64,
    buf: Vec<u8>,
    syncer: Syncer,
}

impl Journal {
    /// Open the journal in `dir` (created if missing) and hand every record
    /// with an id at or after `from` to `apply`, in order. Segments wholly
    /// before `from` are deleted unread. New records go to a new segment.
    pub fn open(
        dir: &Path,
        fsync_every: Duration,
        from: u64,
        released: Arc<AtomicU64>,
        mut apply: impl FnMut(Entry<'_>),
    ) -> Result<(Journal, Replayed), JournalError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir, "creating the directory"))?;
        let names = record::segment_files(dir).map_err(io_err(dir, "listing"))?;
        let mut next_id = from;
        let mut stats = Replayed::default();
        let mut buf = Vec::new();
        for (i, (first, path)) in names.iter().enumerate() {
            // Every id of this segment is below the next one's first.
            if names.get(i + 1).is_some_and(|(next, _)| *next <= from) {
                let _ = std::fs::remove_file(path);
                continue;
            }
            let file = File::open(path).map_err(io_err(path, "opening"))?;
            let len = file.metadata().map_err(io_err(path, "reading its size"))?.len();
            let mut off = 0;
            next_id = next_id.max(*first);
            while off < len {
                match read_at(&file, off, len, &mut buf) {
                    Ok((id, next)) => {
                        off = next;
                        next_id = next_id.max(id + 1);
                        if id < from {
                            stats.skipped += 1;
                            continue;
                        }
                        let (topic, body) = record::parts(&buf);
                        let Some((at, payload)) = body.split_first_chunk::<8>() else { continue };
                        if topic.is_empty() {
                            // A probe written while the disk was failing.
                            continue;
                        }
                        let received =
                            DateTime::from_timestamp_millis(i64::from_le_bytes(*at)).unwrap_or_default();
                        stats.records += 1;
                        apply(Entry { id, received, topic, payload });
                    }
                    Err(()) => {
                        stats.corrupt += 1;
                        let resume = find_next(&file, off + 1, len, &mut buf);
                        tracing::warn!(segment = %path.display(), offset = off, skipped_bytes = resume.unwrap_or(len) - off, "damaged journal record skipped");
                        match resume {
                            Some(at) => off = at,
                            None => break,
                        }
                    }
                }
            }
        }
        let mut journal = Journal {
            dir: dir.to_path_buf(),
            segments: VecDeque::new(),
            next_id,
            fsync_every,
            segment_bytes: SEGMENT_BYTES,
            dirty: false,
            last_sync: Instant::now(),
            released: released.clone(),
            seen_released: 0,
            buf,
            syncer: Syncer::start(),
        };
        for (first, path) in names {
            if path.exists() {
                let file = OpenOptions::new().append(true).open(&path).map_err(io_err(&path, "opening"))?;
                let bytes = file.metadata().map_err(io_err(&path, "reading its size"))?.len();
                journal.segments.push_back(Segment { first, path, file, bytes });
            }
        }
        released.fetch_max(from, Ordering::Relaxed);
        journal.rotate()?;
        journal.release();
        Ok((journal, stats))
    }

    /// Append one message received at `received`; returns its id. Written
    /// to the file at once (safe from a crash of the process); forced to
    /// the device within the fsync interval ([`Journal::sync_if_due`]).
    pub fn append(
        &mut self,
        topic: &str,
        payload: &[u8],
        received: DateTime<Utc>,
    ) -> Result<u64, JournalError> {
        self.append_many(&[(topic, payload)], received)
    }

    /// Append several messages with one `write`; returns the id of the
    /// first (the others follow it). All or none count as appended.
    pub fn append_many(
        &mut self,
        messages: &[(&str, &[u8])],
        received: DateTime<Utc>,
    ) -> Result<u64, JournalError> {
        if self.released.load(Ordering::Relaxed) != self.seen_released {
            self.release();
        }
        if self.segments.back().is_none_or(|s| s.bytes >= self.segment_bytes) {
            self.rotate()?;
        }
        let first = self.next_id;
        let at = received.timestamp_millis().to_le_bytes();
        self.buf.clear();
        for (i, (topic, payload)) in messages.iter().enumerate() {
            append_parts(&mut self.buf, first + i as u64, topic, &[&at, payload]);
        }
        let seg = self.segments.back_mut().expect("a segment after rotate");
        if let Err(e) = seg.file.write_all(&self.buf) {
            // A partial write leaves a torn record: skipped at the next
            // start, and the next append follows it in a new segment.
            seg.bytes = self.segment_bytes;
            return Err(io_err(&seg.path, "appending")(e));
        }
        seg.bytes += self.buf.len() as u64;
        self.next_id += messages.len() as u64;
        self.dirty = true;
        Ok(first)
    }

    /// Whether a record can be written now (after a failure): appends an
    /// empty probe record that replay ignores.
    pub fn probe(&mut self) -> Result<(), JournalError> {
        self.append("", &[], Utc::now())?;
        self.sync()
    }

    /// The id the next record gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    fn rotate(&mut self) -> Result<(), JournalError> {
        // The segment left behind goes to the device in the background.
        if self.dirty {
            if let Some(seg) = self.segments.back() {
                self.syncer.send(&seg.file, false);
            }
            self.dirty = false;
        }
        let path = self.dir.join(record::segment_name(self.next_id));
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err(&path, "creating a segment"))?;
        let bytes = file.metadata().map_err(io_err(&path, "reading its size"))?.len();
        // And the new file's name.
        let dir = File::open(&self.dir).map_err(io_err(&self.dir, "opening the directory"))?;
        self.syncer.send(&dir, false);
        if self.segments.back().is_some_and(|s| s.first == self.next_id) {
            // The newest segment holds nothing yet (a rotate after a failed
            // append): write on behind what is there.
            self.segments.pop_back();
        }
        self.segments.push_back(Segment { first: self.next_id, path, file, bytes });
        Ok(())
    }

    /// Delete the segments whose records the store holds (never the newest).
    fn release(&mut self) {
        let released = self.released.load(Ordering::Relaxed);
        self.seen_released = released;
        while self.segments.len() > 1 && self.segments[1].first <= released {
            let seg = self.segments.pop_front().expect("two segments");
            if let Err(e) = std::fs::remove_file(&seg.path) {
                tracing::warn!(segment = %seg.path.display(), error = %e, "could not delete a checkpointed journal segment");
            }
        }
    }

    /// Force appended records to the device now (at a clean stop, after a
    /// probe), waiting for it.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        for seg in self.segments.iter().rev().take(2) {
            seg.file.sync_data().map_err(io_err(&seg.path, "syncing"))?;
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        self.sync_failed()
    }

    /// Start a background sync if unsynced records are older than the
    /// interval (and the last one is done); an error if a background sync
    /// failed since the last call.
    pub fn sync_if_due(&mut self) -> Result<(), JournalError> {
        if self.dirty && self.last_sync.elapsed() >= self.fsync_every {
            if self.syncer.busy.load(Ordering::Acquire) {
                // The disk is slower than the interval: try again shortly.
                self.last_sync =
                    Instant::now().checked_sub(self.fsync_every).map_or(self.last_sync, |t| t + SYNC_RETRY);
            } else {
                if let Some(seg) = self.segments.back() {
                    self.syncer.send(&seg.file, true);
                }
                self.dirty = false;
                self.last_sync = Instant::now();
            }
        }
        self.sync_failed()
    }

    fn sync_failed(&self) -> Result<(), JournalError> {
        match self.syncer.failed.lock().expect("sync error lock").take() {
            Some(source) => Err(JournalError { path: self.dir.clone(), what: "syncing", source }),
            None => Ok(()),
        }
    }

    /// When the next sync is due, if there is unsynced data.
    pub fn sync_deadline(&self) -> Option<Instant> {
        self.dirty.then(|| self.last_sync + self.fsync_every)
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Segment files on disk.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

#[cfg(test)]
mod tests;
