//! The record format of Throughline's append-only files (feature `record`):
//! the agent's spool and the aggregator's ingest journal. One format, one
//! reader, so a torn write is recognised the same way on both sides.
//!
//! A record is a 20-byte header and a body:
//!
//! ```text
//! magic "TLR1" | body length u32 LE | CRC-32 u32 LE of (id ++ body) | id u64 LE
//! body = topic length u16 LE | topic (UTF-8) | payload
//! ```
//!
//! Records are only ever appended, each with one `write`. A reader verifies
//! the header, the length and the checksum; a record that fails (a write
//! torn by a power loss, a flipped bit) is skipped and the scan goes on at
//! the next valid record ([`find_next`]).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The first bytes of every record.
pub const MAGIC: &[u8; 4] = b"TLR1";
/// Bytes before the body.
pub const HEADER: usize = 20;
/// Largest body accepted when reading back (the protocol's payload limit is 256 KiB).
pub const MAX_BODY: usize = 1 << 20;

/// Encode record `id` into `buf` (cleared first).
pub fn encode(buf: &mut Vec<u8>, id: u64, topic: &str, payload: &[u8]) {
    encode_parts(buf, id, topic, &[payload]);
}

/// [`encode`] with the payload given in parts (written one after another).
pub fn encode_parts(buf: &mut Vec<u8>, id: u64, topic: &str, payload: &[&[u8]]) {
    buf.clear();
    append_parts(buf, id, topic, payload);
}

/// [`encode_parts`] appended to what `buf` holds (several records for one
/// write).
pub fn append_parts(buf: &mut Vec<u8>, id: u64, topic: &str, payload: &[&[u8]]) {
    let start = buf.len();
    let body_len = 2 + topic.len() + payload.iter().map(|p| p.len()).sum::<usize>();
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&(body_len as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    buf.extend_from_slice(topic.as_bytes());
    for p in payload {
        buf.extend_from_slice(p);
    }
    let crc = crc32fast::hash(&buf[start + 12..]);
    buf[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

/// Bytes a record of `topic` and `payload_len` takes on disk.
pub fn encoded_len(topic: &str, payload_len: usize) -> u64 {
    (HEADER + 2 + topic.len() + payload_len) as u64
}

/// Read and verify the record at `off` (not past `limit`) into `buf`
/// (header and body); returns its id and the offset after it.
#[allow(clippy::result_unit_err)]
pub fn read_at(file: &File, off: u64, limit: u64, buf: &mut Vec<u8>) -> Result<(u64, u64), ()> {
    if off + HEADER as u64 > limit {
        return Err(());
    }
    buf.resize(HEADER, 0);
    file.read_exact_at(&mut buf[..HEADER], off).map_err(|_| ())?;
    if &buf[..4] != MAGIC {
        return Err(());
    }
    let body_len = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes")) as usize;
    if !(2..=MAX_BODY).contains(&body_len) || off + (HEADER + body_len) as u64 > limit {
        return Err(());
    }
    let crc = u32::from_le_bytes(buf[8..12].try_into().expect("4 bytes"));
    let id = u64::from_le_bytes(buf[12..20].try_into().expect("8 bytes"));
    buf.resize(HEADER + body_len, 0);
    file.read_exact_at(&mut buf[HEADER..], off + HEADER as u64).map_err(|_| ())?;
    if crc32fast::hash(&buf[12..]) != crc {
        return Err(());
    }
    let tlen = u16::from_le_bytes([buf[HEADER], buf[HEADER + 1]]) as usize;
    if 2 + tlen > body_len || std::str::from_utf8(&buf[HEADER + 2..HEADER + 2 + tlen]).is_err() {
        return Err(());
    }
    Ok((id, off + (HEADER + body_len) as u64))
}

/// The topic and payload of a record [`read_at`] verified into `buf`.
pub fn parts(buf: &[u8]) -> (&str, &[u8]) {
    let body = &buf[HEADER..];
    let tlen = u16::from_le_bytes([body[0], body[1]]) as usize;
    let topic = std::str::from_utf8(&body[2..2 + tlen]).unwrap_or_default();
    (topic, &body[2 + tlen..])
}

/// Offset of the next valid record at or after `from` (before `limit`), if any.
pub fn find_next(file: &File, from: u64, limit: u64, buf: &mut Vec<u8>) -> Option<u64> {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut at = from;
    while at + HEADER as u64 <= limit {
        let n = chunk.len().min((limit - at) as usize);
        file.read_exact_at(&mut chunk[..n], at).ok()?;
        let mut i = 0;
        while let Some(k) = chunk[i..n].windows(4).position(|w| w == MAGIC) {
            let cand = at + (i + k) as u64;
            if read_at(file, cand, limit, buf).is_ok() {
                return Some(cand);
            }
            i += k + 1;
        }
        if n < 4 {
            break;
        }
        // Overlap by 3 bytes so a magic across the chunk edge is found.
        at += (n - 3) as u64;
    }
    None
}

/// The segment files in `dir` (`{first id as 16 hex digits}.seg`), as
/// (first id, path), oldest first; other files are ignored.
pub fn segment_files(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut names: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = u64::from_str_radix(name.strip_suffix(".seg")?, 16).ok()?;
            Some((id, e.path()))
        })
        .collect();
    names.sort();
    Ok(names)
}

/// The file name of the segment whose first record is `first`.
pub fn segment_name(first: u64) -> String {
    format!("{first:016x}.seg")
}
