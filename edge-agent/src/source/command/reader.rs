//! Bounded lines from the program's output.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Longest line accepted on standard output, in bytes (without the newline).
/// A longer line is refused; only this much of it is ever held in memory.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// One line read by a [`LineReader`], without its `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Line {
    /// The line, or its first `max` bytes when it is too long.
    pub(super) bytes: Vec<u8>,
    /// The line was longer than `max` bytes.
    pub(super) too_long: bool,
}

/// Splits a byte stream into lines, holding at most `max` bytes of a line:
/// the rest of a longer line is skipped, and the line is marked too long.
/// Cancel safe: a partly read line is kept in the reader, not the future.
#[derive(Debug)]
pub(super) struct LineReader<R> {
    inner: R,
    max: usize,
    buf: Vec<u8>,
    too_long: bool,
    /// Part of a line has been read.
    pending: bool,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub(super) fn new(inner: R, max: usize) -> LineReader<R> {
        LineReader { inner, max, buf: Vec::new(), too_long: false, pending: false }
    }

    /// The next line; `None` at the end of the stream. A last line without
    /// a newline counts as a line.
    pub(super) async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                return Ok(if self.pending { Some(self.take()) } else { None });
            }
            let newline = available.iter().position(|&b| b == b'\n');
            let part = &available[..newline.unwrap_or(available.len())];
            let room = self.max.saturating_sub(self.buf.len());
            if part.len() > room {
                self.too_long = true;
            }
            self.buf.extend_from_slice(&part[..part.len().min(room)]);
            self.pending = true;
            let used = part.len() + usize::from(newline.is_some());
            self.inner.consume(used);
            if newline.is_some() {
                return Ok(Some(self.take()));
            }
        }
    }

    fn take(&mut self) -> Line {
        self.pending = false;
        Line { bytes: std::mem::take(&mut self.buf), too_long: std::mem::replace(&mut self.too_long, false) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    async fn lines(input: &[u8], chunk: usize, max: usize) -> Vec<Line> {
        let mut reader = LineReader::new(BufReader::with_capacity(chunk, input), max);
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().await.unwrap() {
            assert!(line.bytes.len() <= max, "at most `max` bytes of a line are kept");
            lines.push(line);
        }
        lines
    }

    #[tokio::test]
    async fn long_lines_are_flagged_without_being_kept() {
        let mut input = b"a\r\n\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 1000));
        input.extend(b"\nbb\nlast");
        for chunk in [3, 8192] {
            let got = lines(&input, chunk, 16).await;
            let text: Vec<(&[u8], bool)> = got.iter().map(|l| (&l.bytes[..], l.too_long)).collect();
            assert_eq!(
                text,
                vec![
                    (&b"a\r"[..], false),
                    (&b""[..], false),
                    (&[b'x'; 16][..], true),
                    (&b"bb"[..], false),
                    (&b"last"[..], false)
                ],
                "chunk {chunk}"
            );
        }
        assert!(lines(b"", 8, 16).await.is_empty());
        assert!(!lines(&[b'y'; 16], 8, 16).await[0].too_long, "exactly max is fine");
    }
}
