//! Open files and directories.
//!
//! A file opened for writing gets, on its first write or truncation, a
//! buffer: the file's whole new content in an anonymous temporary file on
//! disk, so sparse writes and large files cost disk, not memory. The buffer
//! belongs to the inode, not to one handle, so every handle on the file
//! (even read-only ones) sees the same bytes, as on a plain filesystem. It is
//! committed when dirty at flush, fsync or release, and dropped when the last
//! handle closes. Files that are only read are served from the committed
//! chunks through a [`ChunkCursor`].

use dbos_engine::{ChunkRef, Content, Entry, Result as EngineResult};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// The program behind a request: its pid and command line, read from
/// `/proc/PID/cmdline` while it is alive (at open or at the operation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opener {
    /// Process id the kernel gave with the request (0: the kernel itself).
    pub pid: u32,
    /// The command line, arguments joined by spaces (empty if unknown).
    pub cmdline: String,
}

/// Longest command line recorded, in characters.
const CMDLINE_MAX: usize = 200;

impl Opener {
    /// The process `pid`, with its command line if it can be read.
    pub fn of_pid(pid: u32) -> Opener {
        let cmdline = if pid == 0 {
            String::new()
        } else {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| {
                    let text: String = raw
                        .split(|b| *b == 0)
                        .filter(|a| !a.is_empty())
                        .map(String::from_utf8_lossy)
                        .collect::<Vec<_>>()
                        .join(" ");
                    text.chars().take(CMDLINE_MAX).collect()
                })
                .unwrap_or_default()
        };
        Opener { pid, cmdline }
    }

    /// `pid 1234 (vim /etc/hosts)`, or `pid 1234` when the command line is
    /// unknown, or `the kernel` for pid 0.
    pub fn describe(&self) -> String {
        match (self.pid, self.cmdline.is_empty()) {
            (0, _) => "the kernel".to_string(),
            (pid, true) => format!("pid {pid}"),
            (pid, false) => format!("pid {pid} ({})", self.cmdline),
        }
    }
}

/// One open file.
#[derive(Debug)]
pub struct Handle {
    /// The file's inode number.
    pub ino: u64,
    /// Opened for writing.
    pub write: bool,
    /// Opened with O_APPEND.
    pub append: bool,
    /// Who opened it.
    pub opener: Opener,
    /// The committed entry at open time: its content stays readable after
    /// the file is unlinked, as POSIX requires of an open file.
    pub entry: Option<Entry>,
}

/// A file's new content, on disk in an anonymous temporary file.
#[derive(Debug)]
pub struct Buffer {
    file: File,
    /// Length of the content.
    pub size: u64,
    /// Changed since it was last committed.
    pub dirty: bool,
    /// Who wrote last (named in the commit).
    pub writer: Option<Opener>,
    /// A modification time set explicitly (utimens) while open, kept over
    /// the commit's own time.
    pub mtime_ns: Option<i64>,
    /// When the content last changed (for getattr while open).
    pub changed_ns: i64,
}

impl Buffer {
    /// An empty buffer.
    pub fn empty(now_ns: i64) -> io::Result<Buffer> {
        Ok(Buffer {
            file: tempfile::tempfile()?,
            size: 0,
            dirty: false,
            writer: None,
            mtime_ns: None,
            changed_ns: now_ns,
        })
    }

    /// A buffer holding everything `content` yields.
    pub fn from_reader(mut content: impl Read, now_ns: i64) -> io::Result<Buffer> {
        let mut b = Buffer::empty(now_ns)?;
        let mut w = io::BufWriter::new(&b.file);
        b.size = io::copy(&mut content, &mut w)?;
        drop(w);
        Ok(b)
    }

    /// Up to `len` bytes at `offset` (fewer at the end).
    pub fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        if offset >= self.size {
            return Ok(Vec::new());
        }
        let n = (self.size - offset).min(len as u64) as usize;
        let mut out = vec![0u8; n];
        self.file.read_exact_at(&mut out, offset)?;
        Ok(out)
    }

    /// Write `data` at `offset`; a gap past the end reads as zeros.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EFBIG))?;
        self.file.write_all_at(data, offset)?;
        self.size = self.size.max(end);
        Ok(())
    }

    /// Cut or extend (with zeros) to `len` bytes.
    pub fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.size = len;
        Ok(())
    }

    /// The whole content from the start, as a stream.
    pub fn reader(&self) -> BufferReader<'_> {
        BufferReader { buf: self, pos: 0 }
    }
}

/// Streams a buffer's content (see [`Buffer::reader`]).
pub struct BufferReader<'a> {
    buf: &'a Buffer,
    pos: u64,
}

impl Read for BufferReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let left = self.buf.size.saturating_sub(self.pos);
        let n = (out.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.buf.file.read_at(&mut out[..n], self.pos)?;
        if got == 0 {
            // The temporary file is shorter than its recorded size: the rest
            // is a hole after set_len, which reads as zeros anyway.
            out[..n].fill(0);
            self.pos += n as u64;
            return Ok(n);
        }
        self.pos += got as u64;
        Ok(got)
    }
}

/// Random access to committed content: learns chunk boundaries as it reads
/// (chunk lengths are only known once decoded) and keeps the last chunk.
#[derive(Debug)]
pub struct ChunkCursor {
    /// Digest of the content it reads (to tell whether it is still current).
    pub digest: [u8; 32],
    chunks: Arc<Vec<ChunkRef>>,
    /// `starts[i]`: offset of chunk i, for every chunk decoded so far, plus
    /// the end of the last one.
    starts: Vec<u64>,
    last: Option<(usize, Vec<u8>)>,
}

impl ChunkCursor {
    /// A cursor over `content`.
    pub fn new(content: &Content) -> ChunkCursor {
        ChunkCursor {
            digest: content.digest,
            chunks: content.chunks.clone(),
            starts: vec![0],
            last: None,
        }
    }

    fn chunk(
        &mut self,
        i: usize,
        fetch: &mut impl FnMut(ChunkRef) -> EngineResult<Vec<u8>>,
    ) -> EngineResult<&[u8]> {
        if self.last.as_ref().map(|(j, _)| *j) != Some(i) {
            let c = self.chunks[i];
            let bytes = fetch(c)?;
            if i + 1 == self.starts.len() {
                let end = self.starts[i] + bytes.len() as u64;
                self.starts.push(end);
            }
            self.last = Some((i, bytes));
        }
        Ok(self.last.as_ref().map(|(_, b)| b.as_slice()).unwrap_or(&[]))
    }

    /// Up to `len` bytes at `offset`, fetching chunks with `fetch`.
    pub fn read_at(
        &mut self,
        offset: u64,
        len: usize,
        mut fetch: impl FnMut(ChunkRef) -> EngineResult<Vec<u8>>,
    ) -> EngineResult<Vec<u8>> {
        // Learn boundaries up to the chunk holding `offset`.
        while self.starts.len() <= self.chunks.len()
            && self.starts.last().copied().unwrap_or(0) <= offset
        {
            let i = self.starts.len() - 1;
            self.chunk(i, &mut fetch)?;
        }
        let mut i = self
            .starts
            .partition_point(|s| *s <= offset)
            .saturating_sub(1);
        let mut out = Vec::with_capacity(len);
        let mut pos = offset;
        while out.len() < len && i < self.chunks.len() {
            let start = self.starts[i];
            let bytes = self.chunk(i, &mut fetch)?;
            let from = (pos - start) as usize;
            if from < bytes.len() {
                let n = (bytes.len() - from).min(len - out.len());
                out.extend_from_slice(&bytes[from..from + n]);
                pos += n as u64;
            }
            i += 1;
        }
        Ok(out)
    }
}

/// A directory listing taken at opendir: (inode, is a directory/symlink/
/// file, name), served to readdir in pieces.
pub type Listing = Vec<(u64, fuser::FileType, String)>;

/// Every open file and directory of the mount.
#[derive(Debug, Default)]
pub struct Handles {
    files: HashMap<u64, Handle>,
    dirs: HashMap<u64, Listing>,
    buffers: HashMap<u64, Buffer>,
    open_count: HashMap<u64, usize>,
    next: u64,
}

impl Handles {
    /// Register an open file; its handle number.
    pub fn open(&mut self, h: Handle) -> u64 {
        self.next += 1;
        *self.open_count.entry(h.ino).or_insert(0) += 1;
        self.files.insert(self.next, h);
        self.next
    }

    /// An open file.
    pub fn get(&self, fh: u64) -> Option<&Handle> {
        self.files.get(&fh)
    }

    /// Close a file: the handle, and whether it was the inode's last one.
    pub fn close(&mut self, fh: u64) -> Option<(Handle, bool)> {
        let h = self.files.remove(&fh)?;
        let last = match self.open_count.get_mut(&h.ino) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                self.open_count.remove(&h.ino);
                true
            }
        };
        Some((h, last))
    }

    /// True while some handle has the inode open.
    pub fn is_open(&self, ino: u64) -> bool {
        self.open_count.contains_key(&ino)
    }

    /// The buffer of an inode, if it has one.
    pub fn buffer(&self, ino: u64) -> Option<&Buffer> {
        self.buffers.get(&ino)
    }

    /// The buffer of an inode, to change it.
    pub fn buffer_mut(&mut self, ino: u64) -> Option<&mut Buffer> {
        self.buffers.get_mut(&ino)
    }

    /// Give an inode a buffer.
    pub fn set_buffer(&mut self, ino: u64, b: Buffer) {
        self.buffers.insert(ino, b);
    }

    /// Drop an inode's buffer.
    pub fn drop_buffer(&mut self, ino: u64) -> Option<Buffer> {
        self.buffers.remove(&ino)
    }

    /// Inodes whose buffers hold uncommitted changes.
    pub fn dirty(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .buffers
            .iter()
            .filter(|(_, b)| b.dirty)
            .map(|(i, _)| *i)
            .collect();
        v.sort_unstable();
        v
    }

    /// The entry some open handle of `ino` saw at open (for an unlinked
    /// file still open).
    pub fn entry_of(&self, ino: u64) -> Option<&Entry> {
        self.files
            .values()
            .filter(|h| h.ino == ino)
            .find_map(|h| h.entry.as_ref())
    }

    /// Register a directory listing; its handle number.
    pub fn open_dir(&mut self, listing: Listing) -> u64 {
        self.next += 1;
        self.dirs.insert(self.next, listing);
        self.next
    }

    /// A directory listing by handle.
    pub fn dir(&self, fh: u64) -> Option<&Listing> {
        self.dirs.get(&fh)
    }

    /// Close a directory.
    pub fn close_dir(&mut self, fh: u64) {
        self.dirs.remove(&fh);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_sparse_write_reads_zeros_in_the_gap() {
        let mut b = Buffer::empty(0).unwrap();
        b.write_at(0, b"ab").unwrap();
        b.write_at(10, b"z").unwrap();
        assert_eq!(b.size, 11);
        assert_eq!(b.read_at(0, 100).unwrap(), b"ab\0\0\0\0\0\0\0\0z");
        b.set_len(20).unwrap();
        let mut all = Vec::new();
        b.reader().read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), 20);
        b.set_len(1).unwrap();
        assert_eq!(b.read_at(0, 100).unwrap(), b"a");
    }

    #[test]
    fn chunk_cursor_reads_across_chunks_at_any_offset() {
        let parts: Vec<Vec<u8>> = vec![b"hello ".to_vec(), b"chunked ".to_vec(), b"world".to_vec()];
        let chunks: Vec<ChunkRef> = (0..parts.len() as i64).map(ChunkRef::Stored).collect();
        let content = Content {
            size: 19,
            digest: [0; 32],
            chunks: Arc::new(chunks),
        };
        let fetch = |c: ChunkRef| match c {
            ChunkRef::Stored(i) => Ok(parts[i as usize].clone()),
            ChunkRef::Pending(_) => Ok(Vec::new()),
        };
        let mut cur = ChunkCursor::new(&content);
        assert_eq!(cur.read_at(8, 6, fetch).unwrap(), b"unked ");
        assert_eq!(cur.read_at(0, 100, fetch).unwrap(), b"hello chunked world");
        assert_eq!(cur.read_at(17, 100, fetch).unwrap(), b"ld");
        assert_eq!(cur.read_at(19, 100, fetch).unwrap(), b"");
        assert_eq!(cur.read_at(500, 1, fetch).unwrap(), b"");
    }

    #[test]
    fn handles_count_opens_per_inode() {
        let mut h = Handles::default();
        let mk = || Handle {
            ino: 7,
            write: false,
            append: false,
            opener: Opener::of_pid(0),
            entry: None,
        };
        let a = h.open(mk());
        let b = h.open(mk());
        assert!(!h.close(a).unwrap().1);
        assert!(h.is_open(7));
        assert!(h.close(b).unwrap().1);
        assert!(!h.is_open(7));
        assert!(h.close(b).is_none());
    }
}
