//! Layers cairn writes itself (commit, import, recompression for push):
//! an uncompressed tar goes in, a compressed blob comes out in the store,
//! with the layer's diff id (the SHA-256 of the tar) hashed in the same
//! pass.
//!
//! gzip is compressed in parallel, as pigz does: the tar is cut into fixed
//! 1 MiB blocks, each deflated on its own by a pool of threads (ending in a
//! sync flush, so the blocks concatenate into one valid deflate stream), and
//! the blocks' CRC-32s are combined for the trailer. The output depends on
//! the input and the level only, never on the number of threads, so a layer
//! committed twice from the same tar has the same digest. zstd uses the
//! library's own workers, which are deterministic in the same way.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Crc, FlushCompress, Status};

use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::Error;
use crate::layout::{Put, Store};
use crate::media::types;
pub use crate::media::Compression;
use crate::newblob::NewBlob;

/// Uncompressed bytes per gzip block.
const GZIP_BLOCK: usize = 1 << 20;

/// A layer written by [`LayerWriter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// The blob's digest (of the compressed bytes).
    pub digest: Digest,
    /// The blob's size.
    pub size: u64,
    /// The SHA-256 of the uncompressed tar.
    pub diff_id: Digest,
    /// The uncompressed tar's size.
    pub uncompressed_size: u64,
    /// How the blob is compressed.
    pub compression: Compression,
    /// Whether the blob was new to the store.
    pub put: Put,
}

impl LayerBlob {
    /// The OCI media type of the blob.
    pub fn media_type(&self) -> &'static str {
        match self.compression {
            Compression::None => types::OCI_LAYER,
            Compression::Gzip => types::OCI_LAYER_GZIP,
            Compression::Zstd => types::OCI_LAYER_ZSTD,
        }
    }

    /// The docker (v2s2) media type of the blob; docker has none for zstd.
    pub fn docker_media_type(&self) -> Option<&'static str> {
        match self.compression {
            Compression::None => Some(types::DOCKER_LAYER),
            Compression::Gzip => Some(types::DOCKER_LAYER_GZIP),
            Compression::Zstd => None,
        }
    }
}

/// Writes one layer into the store: feed it the uncompressed tar through
/// [`Write`], then [`LayerWriter::finish`]. Dropped unfinished, it leaves
/// nothing in the store.
#[derive(Debug)]
pub struct LayerWriter {
    diff: Hasher,
    uncompressed: u64,
    compression: Compression,
    sink: Sink,
}

enum Sink {
    Plain(NewBlob),
    Gzip(ParallelGzip),
    Zstd(zstd::stream::write::Encoder<'static, NewBlob>),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sink::Plain(_) => "Plain",
            Sink::Gzip(_) => "Gzip",
            Sink::Zstd(_) => "Zstd",
        })
    }
}

impl LayerWriter {
    /// A writer of a layer compressed with `compression` at `level` (the
    /// library's default when `None`: 6 for gzip, 3 for zstd).
    pub fn new(store: &Store, compression: Compression, level: Option<i32>) -> Result<Self, Error> {
        let blob = store.new_blob()?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let path = blob.path().to_owned();
        let sink = match compression {
            Compression::None => Sink::Plain(blob),
            Compression::Gzip => {
                let level = level.unwrap_or(6).clamp(0, 9) as u32;
                Sink::Gzip(ParallelGzip::new(
                    blob,
                    flate2::Compression::new(level),
                    threads,
                ))
            }
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(blob, level.unwrap_or(3))
                    .map_err(|e| io_error("start zstd compression", &path, e))?;
                if threads > 1 {
                    enc.multithread(threads as u32)
                        .map_err(|e| io_error("start zstd workers", &path, e))?;
                }
                Sink::Zstd(enc)
            }
        };
        Ok(LayerWriter {
            diff: Hasher::new(Algorithm::Sha256),
            uncompressed: 0,
            compression,
            sink,
        })
    }

    /// Ends the stream and stores the blob.
    pub fn finish(self) -> Result<LayerBlob, Error> {
        let blob = match self.sink {
            Sink::Plain(b) => b,
            Sink::Gzip(g) => g.finish()?,
            Sink::Zstd(z) => z.finish().map_err(|e| {
                io_error("finish zstd compression", std::path::Path::new("tmp/"), e)
            })?,
        };
        let (digest, size, put) = blob.commit()?;
        Ok(LayerBlob {
            digest,
            size,
            diff_id: self.diff.finish(),
            uncompressed_size: self.uncompressed,
            compression: self.compression,
            put,
        })
    }
}

impl Write for LayerWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match &mut self.sink {
            Sink::Plain(b) => b.write_all(data)?,
            Sink::Gzip(g) => g.write_all(data)?,
            Sink::Zstd(z) => z.write_all(data)?,
        }
        self.diff.update(data);
        self.uncompressed += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn io_error(what: &str, path: &std::path::Path, e: io::Error) -> Error {
    Error::Io(cairn_fsutil::PathError::new(what, path, e))
}

/// One block for a worker: its sequence number, its bytes, whether it
/// ends the stream.
type Job = (u64, Vec<u8>, bool);
/// A worker's answer: sequence number, deflated bytes, CRC of the input.
type Done = (u64, io::Result<Vec<u8>>, Crc);

/// pigz-style gzip over a pool of threads; output written in block order.
#[derive(Debug)]
struct ParallelGzip {
    /// Taken by `finish`.
    out: Option<NewBlob>,
    block: Vec<u8>,
    next_seq: u64,
    next_to_write: u64,
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    pending: BTreeMap<u64, (Vec<u8>, Crc)>,
    in_flight: usize,
    max_in_flight: usize,
    crc: Crc,
    workers: Vec<JoinHandle<()>>,
}

impl ParallelGzip {
    fn new(mut out: NewBlob, level: flate2::Compression, threads: usize) -> ParallelGzip {
        // The header: no name, no mtime (so equal tars give equal blobs),
        // OS "unknown" as Go's and containers/image's writers set it.
        let header = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        // A write error here surfaces again at the first real write.
        let _ = out.write_all(&header);
        let threads = threads.max(1);
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (done_tx, done_rx) = mpsc::channel::<Done>();
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&job_rx);
                let tx = done_tx.clone();
                std::thread::spawn(move || loop {
                    let job = rx.lock().expect("not poisoned").recv();
                    let Ok((seq, data, last)) = job else { break };
                    let mut crc = Crc::new();
                    crc.update(&data);
                    let deflated = deflate_block(&data, level, last);
                    if tx.send((seq, deflated, crc)).is_err() {
                        break;
                    }
                })
            })
            .collect();
        ParallelGzip {
            out: Some(out),
            block: Vec::with_capacity(GZIP_BLOCK),
            next_seq: 0,
            next_to_write: 0,
            jobs: Some(job_tx),
            done: done_rx,
            pending: BTreeMap::new(),
            in_flight: 0,
            max_in_flight: 2 * threads + 1,
            crc: Crc::new(),
            workers,
        }
    }

    fn out_mut(&mut self) -> &mut NewBlob {
        self.out.as_mut().expect("open until finish")
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        while self.in_flight >= self.max_in_flight {
            self.collect(true)?;
        }
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(GZIP_BLOCK));
        let jobs = self.jobs.as_ref().expect("jobs open until finish");
        jobs.send((self.next_seq, data, last))
            .map_err(|_| io::Error::other("a gzip worker thread ended"))?;
        self.next_seq += 1;
        self.in_flight += 1;
        self.collect(false)
    }

    /// Takes finished blocks (waiting for one when `wait`) and writes those
    /// next in order.
    fn collect(&mut self, wait: bool) -> io::Result<()> {
        let mut first = wait;
        loop {
            let got = if first {
                first = false;
                Some(
                    self.done
                        .recv()
                        .map_err(|_| io::Error::other("the gzip worker threads ended"))?,
                )
            } else {
                self.done.try_recv().ok()
            };
            let Some((seq, deflated, crc)) = got else {
                break;
            };
            self.in_flight -= 1;
            self.pending.insert(seq, (deflated?, crc));
        }
        while let Some((data, crc)) = self.pending.remove(&self.next_to_write) {
            self.out_mut().write_all(&data)?;
            self.crc.combine(&crc);
            self.next_to_write += 1;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<NewBlob, Error> {
        let path = self.out_mut().path().to_owned();
        let r = (|| {
            self.submit(true)?;
            while self.in_flight > 0 {
                self.collect(true)?;
            }
            let mut trailer = [0u8; 8];
            trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
            trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
            self.out_mut().write_all(&trailer)
        })();
        r.map_err(|e| io_error("write gzip layer", &path, e))?;
        drop(self.jobs.take());
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        Ok(self.out.take().expect("finish runs once"))
    }
}

impl Write for ParallelGzip {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        while !data.is_empty() {
            let room = GZIP_BLOCK - self.block.len();
            let take = room.min(data.len());
            self.block.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.block.len() == GZIP_BLOCK {
                self.submit(false)?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ParallelGzip {
    fn drop(&mut self) {
        drop(self.jobs.take());
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Deflates one block on its own (raw deflate, no back references into
/// earlier blocks): a sync flush ends it on a byte boundary, the last block
/// ends the stream.
fn deflate_block(data: &[u8], level: flate2::Compression, last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(level, false);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(64 << 10));
        }
        let consumed = usize::try_from(c.total_in()).expect("a block fits in memory");
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = usize::try_from(c.total_in()).expect("a block fits in memory") == data.len();
        match status {
            Status::StreamEnd => break,
            _ if !last && all_in && out.len() < out.capacity() => break,
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    /// Bytes that compress somewhat, as a tar does, and are not periodic
    /// at the block size.
    fn sample(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if i % 3 == 0 {
                    (x % 7) as u8
                } else {
                    b"abcdefgh"[(i / 5) % 8]
                }
            })
            .collect()
    }

    fn write_layer(store: &Store, c: Compression, data: &[u8], chunk: usize) -> LayerBlob {
        let mut w = LayerWriter::new(store, c, None).unwrap();
        for part in data.chunks(chunk.max(1)) {
            w.write_all(part).unwrap();
        }
        w.finish().unwrap()
    }

    fn decompress(store: &Store, blob: &LayerBlob) -> Vec<u8> {
        let f = store.open_blob(&blob.digest).unwrap();
        let mut out = Vec::new();
        match blob.compression {
            Compression::None => {
                let mut f = f;
                f.read_to_end(&mut out).unwrap();
            }
            // MultiGzDecoder would hide a stream that ends early; the plain
            // decoder must read all of it as one member.
            Compression::Gzip => {
                flate2::read::GzDecoder::new(f)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Compression::Zstd => {
                zstd::stream::read::Decoder::new(f)
                    .unwrap()
                    .read_to_end(&mut out)
                    .unwrap();
            }
        }
        out
    }

    #[test]
    fn every_compression_round_trips_with_its_diff_id_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        // Empty, one partial block, exactly one block, several and a tail.
        for len in [0, 1000, GZIP_BLOCK, 3 * GZIP_BLOCK + 12345] {
            let data = sample(len);
            for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
                let blob = write_layer(&store, c, &data, 70_001);
                assert_eq!(blob.diff_id, Digest::sha256_of(&data), "{c:?} {len}");
                assert_eq!(blob.uncompressed_size, len as u64);
                let stored = store.read_blob(&blob.digest, 1 << 30).unwrap();
                assert_eq!(Digest::sha256_of(&stored), blob.digest);
                assert_eq!(stored.len() as u64, blob.size);
                assert_eq!(decompress(&store, &blob), data, "{c:?} {len}");
            }
        }
    }

    #[test]
    fn the_same_tar_gives_the_same_blob_whatever_the_write_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        let data = sample(5 * GZIP_BLOCK / 2);
        for c in [Compression::Gzip, Compression::Zstd] {
            let a = write_layer(&store, c, &data, 4096);
            let b = write_layer(&store, c, &data, 3 * GZIP_BLOCK);
            assert_eq!(a.digest, b.digest, "{c:?}");
            assert_eq!(b.put, Put::AlreadyPresent);
            assert!(
                a.size < data.len() as u64 / 2,
                "{c:?} compresses: {}",
                a.size
            );
        }
    }

    #[test]
    fn gzip_output_does_not_depend_on_the_number_of_threads() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        let data = sample(4 * GZIP_BLOCK + 99);
        let mut digests = Vec::new();
        for threads in [1, 3, 8] {
            let mut g = ParallelGzip::new(
                store.new_blob().unwrap(),
                flate2::Compression::new(6),
                threads,
            );
            g.write_all(&data).unwrap();
            let (digest, _, _) = g.finish().unwrap().commit().unwrap();
            digests.push(digest);
        }
        assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
    }

    #[test]
    fn a_dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let mut w = LayerWriter::new(&store, c, None).unwrap();
            w.write_all(&sample(2 * GZIP_BLOCK + 5)).unwrap();
            drop(w);
        }
        assert!(store.blobs().unwrap().is_empty());
        let tmp = store.dir(crate::StoreDir::Tmp);
        assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0);
    }
}
