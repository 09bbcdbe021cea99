//! File content: content-defined chunking (FastCDC), per-chunk zstd, BLAKE3
//! addressing, and the compact manifest that lists a version's chunks.

use crate::error::{Error, Result};
use crate::types::{ChunkId, Hash};
use std::io::Read;

/// Smallest chunk FastCDC cuts (except the last one).
pub const CHUNK_MIN: u32 = 1024;
/// Average chunk size FastCDC aims for.
pub const CHUNK_AVG: u32 = 4096;
/// Largest chunk FastCDC cuts.
pub const CHUNK_MAX: u32 = 16384;

/// Chunk stored without compression.
pub const CODEC_RAW: u8 = 0;
/// Chunk stored zstd-compressed.
pub const CODEC_ZSTD: u8 = 1;

const ZSTD_LEVEL: i32 = 3;

/// A chunk ready to be stored: its hash, raw size and encoded bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedChunk {
    /// BLAKE3 of the raw bytes.
    pub hash: Hash,
    /// Raw length.
    pub size: u32,
    /// `CODEC_RAW` or `CODEC_ZSTD`.
    pub codec: u8,
    /// Encoded bytes.
    pub data: Vec<u8>,
}

thread_local! {
    /// One zstd compression context per thread: creating a context costs
    /// more than compressing a small chunk.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Chunks shorter than this are stored raw: compressing them saves little.
const COMPRESS_MIN: usize = 128;

fn compress(raw: &[u8]) -> Option<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        slot.as_mut().and_then(|c| c.compress(raw).ok())
    })
}

/// Hash and, when it pays, compress one chunk.
pub fn encode_chunk(raw: &[u8]) -> EncodedChunk {
    let hash = *blake3::hash(raw).as_bytes();
    let compressed = if raw.len() >= COMPRESS_MIN {
        compress(raw)
    } else {
        None
    };
    match compressed {
        Some(c) if c.len() + 8 < raw.len() => EncodedChunk {
            hash,
            size: raw.len() as u32,
            codec: CODEC_ZSTD,
            data: c,
        },
        _ => EncodedChunk {
            hash,
            size: raw.len() as u32,
            codec: CODEC_RAW,
            data: raw.to_vec(),
        },
    }
}

/// Decode a stored chunk and check it against its hash.
pub fn decode_chunk(hash: &Hash, size: u32, codec: u8, data: &[u8]) -> Result<Vec<u8>> {
    let raw = match codec {
        CODEC_RAW => data.to_vec(),
        CODEC_ZSTD => zstd::bulk::decompress(data, size as usize).map_err(|e| Error::Corrupt {
            location: String::new(),
            reason: format!("chunk {} does not decompress: {e}", crate::types::hex(hash)),
        })?,
        other => {
            return Err(Error::Corrupt {
                location: String::new(),
                reason: format!(
                    "chunk {} has unknown codec {other}",
                    crate::types::hex(hash)
                ),
            })
        }
    };
    if raw.len() != size as usize || blake3::hash(&raw).as_bytes() != hash {
        return Err(Error::Corrupt {
            location: String::new(),
            reason: format!("chunk {} does not match its hash", crate::types::hex(hash)),
        });
    }
    Ok(raw)
}

/// The result of chunking a stream.
#[derive(Clone, Debug)]
pub struct Chunked {
    /// Total bytes read.
    pub size: u64,
    /// BLAKE3 of the whole stream.
    pub digest: Hash,
    /// Chunk hashes in order.
    pub chunks: Vec<Hash>,
}

/// Read `reader` to its end, cutting it into content-defined chunks and
/// handing each encoded chunk to `sink`. Memory use is bounded by the largest
/// chunk, whatever the stream's length.
pub fn chunk_stream<R: Read>(
    mut reader: R,
    mut sink: impl FnMut(EncodedChunk) -> Result<()>,
) -> Result<Chunked> {
    // Content shorter than the smallest cut is always one chunk (FastCDC
    // cannot cut it): handle it without setting up the chunker.
    let mut head = Vec::with_capacity(CHUNK_MIN as usize);
    (&mut reader)
        .take(u64::from(CHUNK_MIN))
        .read_to_end(&mut head)
        .map_err(Error::Stream)?;
    if head.len() < CHUNK_MIN as usize {
        // One chunk: the digest of the whole is the chunk's hash.
        if head.is_empty() {
            return Ok(Chunked {
                size: 0,
                digest: *blake3::hash(b"").as_bytes(),
                chunks: Vec::new(),
            });
        }
        let enc = encode_chunk(&head);
        let hash = enc.hash;
        sink(enc)?;
        return Ok(Chunked {
            size: head.len() as u64,
            digest: hash,
            chunks: vec![hash],
        });
    }
    let mut whole = blake3::Hasher::new();
    let mut size = 0u64;
    let mut chunks = Vec::new();
    let source = std::io::Cursor::new(head).chain(reader);
    let cdc = fastcdc::v2020::StreamCDC::new(source, CHUNK_MIN, CHUNK_AVG, CHUNK_MAX);
    for piece in cdc {
        let piece = piece.map_err(|e| match e {
            fastcdc::v2020::Error::IoError(io) => Error::Stream(io),
            other => Error::Stream(std::io::Error::other(other.to_string())),
        })?;
        whole.update(&piece.data);
        size += piece.data.len() as u64;
        let enc = encode_chunk(&piece.data);
        chunks.push(enc.hash);
        sink(enc)?;
    }
    Ok(Chunked {
        size,
        digest: *whole.finalize().as_bytes(),
        chunks,
    })
}

const MANIFEST_PLAIN: u8 = 0;
const MANIFEST_ZSTD: u8 = 1;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(input: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let b = *input.get(*pos)?;
        *pos += 1;
        if shift > 63 {
            return None;
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
    }
}

/// Encode a list of chunk ids compactly: zig-zag deltas as varints,
/// zstd-compressed when long. Consecutive ids cost one byte each before
/// compression.
pub fn encode_manifest(ids: &[ChunkId]) -> Vec<u8> {
    let mut plain = Vec::with_capacity(ids.len() + 4);
    put_varint(&mut plain, ids.len() as u64);
    let mut prev = 0i64;
    for &id in ids {
        let d = id.wrapping_sub(prev);
        put_varint(&mut plain, ((d << 1) ^ (d >> 63)) as u64);
        prev = id;
    }
    if plain.len() > 128 {
        if let Ok(c) = zstd::bulk::compress(&plain, ZSTD_LEVEL) {
            if c.len() < plain.len() {
                let mut out = Vec::with_capacity(c.len() + 9);
                out.push(MANIFEST_ZSTD);
                put_varint(&mut out, plain.len() as u64);
                out.extend_from_slice(&c);
                return out;
            }
        }
    }
    let mut out = Vec::with_capacity(plain.len() + 1);
    out.push(MANIFEST_PLAIN);
    out.extend_from_slice(&plain);
    out
}

/// Decode what `encode_manifest` wrote.
pub fn decode_manifest(bytes: &[u8]) -> Result<Vec<ChunkId>> {
    let bad = || Error::Corrupt {
        location: String::new(),
        reason: "malformed content manifest".to_string(),
    };
    let (tag, rest) = bytes.split_first().ok_or_else(bad)?;
    let plain: Vec<u8> = match *tag {
        MANIFEST_PLAIN => rest.to_vec(),
        MANIFEST_ZSTD => {
            let mut pos = 0;
            let len = get_varint(rest, &mut pos).ok_or_else(bad)?;
            if len > (1 << 34) {
                return Err(bad());
            }
            zstd::bulk::decompress(&rest[pos..], len as usize).map_err(|_| bad())?
        }
        _ => return Err(bad()),
    };
    let mut pos = 0;
    let n = get_varint(&plain, &mut pos).ok_or_else(bad)?;
    if n > plain.len() as u64 {
        return Err(bad());
    }
    let mut ids = Vec::with_capacity(n as usize);
    let mut prev = 0i64;
    for _ in 0..n {
        let z = get_varint(&plain, &mut pos).ok_or_else(bad)?;
        let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
        prev = prev.wrapping_add(d);
        ids.push(prev);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trip() {
        for ids in [
            vec![],
            vec![1],
            (1..5000).collect::<Vec<_>>(),
            vec![5, 3, 1_000_000_000_000, 2, 2, 7],
        ] {
            let enc = encode_manifest(&ids);
            assert_eq!(decode_manifest(&enc).unwrap(), ids);
        }
        let long: Vec<i64> = (1..300).collect();
        assert!(
            encode_manifest(&long).len() < 64,
            "consecutive ids compress"
        );
        assert!(decode_manifest(&[9, 1, 2]).is_err());
        assert!(decode_manifest(&[]).is_err());
    }

    #[test]
    fn chunks_round_trip_and_detect_damage() {
        let text = "hello world ".repeat(1000);
        let enc = encode_chunk(text.as_bytes());
        assert_eq!(enc.codec, CODEC_ZSTD);
        assert_eq!(
            decode_chunk(&enc.hash, enc.size, enc.codec, &enc.data).unwrap(),
            text.as_bytes()
        );
        let mut damaged = enc.data.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 0xff;
        assert!(decode_chunk(&enc.hash, enc.size, enc.codec, &damaged).is_err());
    }

    #[test]
    fn small_content_chunks_like_fastcdc() {
        for len in [0usize, 1, 100, 1023, 1024, 1025, 5000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let ours = chunk_stream(&data[..], |_| Ok(())).unwrap();
            let reference: Vec<Hash> =
                fastcdc::v2020::FastCDC::new(&data, CHUNK_MIN, CHUNK_AVG, CHUNK_MAX)
                    .map(|c| *blake3::hash(&data[c.offset..c.offset + c.length]).as_bytes())
                    .collect();
            assert_eq!(ours.chunks, reference, "len {len}");
            assert_eq!(ours.digest, *blake3::hash(&data).as_bytes());
        }
    }

    #[test]
    fn small_edit_changes_few_chunks() {
        let mut data: Vec<u8> = (0..400_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let a = chunk_stream(&data[..], |_| Ok(())).unwrap();
        data[200_000] ^= 1;
        let b = chunk_stream(&data[..], |_| Ok(())).unwrap();
        let differing = b.chunks.iter().filter(|h| !a.chunks.contains(h)).count();
        assert!(differing <= 2, "{differing} chunks changed");
        assert_eq!(a.size, 400_000);
        assert_ne!(a.digest, b.digest);
    }
}
