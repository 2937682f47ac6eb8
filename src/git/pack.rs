//! New objects stored as one pack file. A commit of thousands of rewritten files would
//! otherwise leave a loose object per blob (a file, a folder lookup and often a `mkdir` each),
//! which costs more than the rewrite itself and slows every later read of the repository.
//! The pack holds whole objects, no deltas: it is written once, next to the fetched packs, and
//! pushing builds its own.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::{Compress, Compression, FlushCompress, Status};
use git2::{ObjectType, Odb, Oid};
use sha1::{Digest, Sha1};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PackError {
    #[error("cannot read new object {id}: {source}")]
    Read { id: Oid, source: git2::Error },
    #[error("{kind} object {id} cannot go into a pack")]
    Kind { id: Oid, kind: ObjectType },
    #[error("cannot write the pack of new objects: {0}")]
    Write(#[source] std::io::Error),
    #[error("cannot store the pack of new objects: {0}")]
    Store(#[source] git2::Error),
}

/// A pack written by [`store`]: how many objects it holds and where it lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub objects: usize,
    /// `objects/pack/pack-<checksum>.pack` in the repository.
    pub path: PathBuf,
}

/// Writes `ids` (read from `odb`, duplicates allowed) as one pack into `odb`'s pack folder
/// under `objects` (the repository's object folder), indexed, so that the objects stay
/// readable once the backend that holds them is gone.
pub fn store(odb: &Odb<'_>, ids: &[Oid], objects: &Path) -> Result<Stored, PackError> {
    let mut writer = odb.packwriter().map_err(PackError::Store)?;
    let written = write(odb, ids, &mut writer)?;
    writer.commit().map_err(PackError::Store)?;
    Ok(Stored {
        objects: written.objects,
        path: objects
            .join("pack")
            .join(format!("pack-{}.pack", hex(&written.checksum))),
    })
}

/// What [`write`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub objects: usize,
    /// The SHA-1 trailer, which also names the pack file.
    pub checksum: [u8; 20],
}

/// Writes `ids` (read from `odb`, duplicates allowed, sorted by id) as a pack of whole
/// objects to `out`, trailer included.
pub fn write<W: Write>(odb: &Odb<'_>, ids: &[Oid], out: &mut W) -> Result<Written, PackError> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut out = Hashed {
        inner: out,
        hash: Sha1::new(),
    };
    let count = u32::try_from(ids.len())
        .map_err(|_| PackError::Write(std::io::Error::other("more objects than a pack holds")))?;
    let mut header = Vec::with_capacity(12);
    header.extend_from_slice(b"PACK");
    header.extend_from_slice(&2u32.to_be_bytes());
    header.extend_from_slice(&count.to_be_bytes());
    out.write_all(&header).map_err(PackError::Write)?;
    let mut deflate = Deflate::new();
    for &id in &ids {
        let object = odb
            .read(id)
            .map_err(|source| PackError::Read { id, source })?;
        let code = match object.kind() {
            ObjectType::Commit => 1,
            ObjectType::Tree => 2,
            ObjectType::Blob => 3,
            ObjectType::Tag => 4,
            kind => return Err(PackError::Kind { id, kind }),
        };
        out.write_all(&entry_header(code, object.len()))
            .map_err(PackError::Write)?;
        let deflated = deflate.zlib(object.data()).map_err(PackError::Write)?;
        out.write_all(deflated).map_err(PackError::Write)?;
    }
    let checksum: [u8; 20] = out.hash.finalize().into();
    out.inner.write_all(&checksum).map_err(PackError::Write)?;
    Ok(Written {
        objects: ids.len(),
        checksum,
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// One compressor for every object: a new one each would allocate (and zero) its tables each
/// time, hundreds of KiB, which the allocator does not give back between thousands of them.
struct Deflate {
    z: Compress,
    out: Vec<u8>,
}

impl Deflate {
    fn new() -> Self {
        // Fast: these objects are small, and a push compresses its own pack anyway.
        Self {
            z: Compress::new(Compression::fast(), true),
            out: Vec::new(),
        }
    }

    /// `data` as a zlib stream.
    fn zlib(&mut self, data: &[u8]) -> std::io::Result<&[u8]> {
        self.z.reset();
        self.out.clear();
        loop {
            self.out.reserve(data.len() / 2 + 64);
            let done = usize::try_from(self.z.total_in()).unwrap_or(data.len());
            let status = self
                .z
                .compress_vec(&data[done..], &mut self.out, FlushCompress::Finish)
                .map_err(std::io::Error::other)?;
            if status == Status::StreamEnd {
                return Ok(&self.out);
            }
        }
    }
}

/// An object's header in a pack: its type and inflated size, seven bits a byte after the
/// first four, the high bit saying that more follow.
fn entry_header(code: u8, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    let mut byte = (code << 4) | (size & 0x0f) as u8;
    let mut rest = size >> 4;
    while rest > 0 {
        out.push(byte | 0x80);
        byte = (rest & 0x7f) as u8;
        rest >>= 7;
    }
    out.push(byte);
    out
}

/// A writer that hashes what passes through: a pack ends with the SHA-1 of all before it.
struct Hashed<'w, W: Write> {
    inner: &'w mut W,
    hash: Sha1,
}

impl<W: Write> Write for Hashed<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_written_four_bits_then_seven_bits_a_byte() {
        // The size encoding of git's gitformat-pack documentation ("n-byte type and length").
        assert_eq!(entry_header(3, 0), [0x30]);
        assert_eq!(entry_header(3, 15), [0x3f]);
        assert_eq!(entry_header(3, 16), [0xb0, 0x01]);
        assert_eq!(entry_header(1, 300), [0x9c, 0x12]);
        assert_eq!(entry_header(2, 1 << 20), [0xa0, 0x80, 0x80, 0x04]);
    }

    #[test]
    fn deflated_objects_inflate_to_their_bytes() {
        use std::io::Read as _;
        let mut deflate = Deflate::new();
        for data in [
            Vec::new(),
            b"a\n".to_vec(),
            (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect(),
        ] {
            let z = deflate.zlib(&data).unwrap().to_vec();
            let mut back = Vec::new();
            flate2::read::ZlibDecoder::new(z.as_slice())
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data);
        }
    }

    #[test]
    fn stored_objects_read_back_from_a_fresh_handle_and_nothing_is_loose() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(tmp.path()).unwrap();
        let odb = repo.odb().unwrap();
        let mempack = odb.add_new_mempack_backend(1000).unwrap();
        let big = "line\n".repeat(10_000);
        let a = repo.blob(b"a\n").unwrap();
        let b = repo.blob(big.as_bytes()).unwrap();
        let mut tb = repo.treebuilder(None).unwrap();
        tb.insert("a", a, 0o100644).unwrap();
        tb.insert("b", b, 0o100644).unwrap();
        let tree = tb.write().unwrap();
        drop(tb);
        let stored = store(&odb, &[a, b, tree, a], &tmp.path().join("objects")).unwrap();
        assert_eq!(stored.objects, 3);
        assert!(stored.path.is_file(), "{}", stored.path.display());
        mempack.reset().unwrap();
        drop(odb);
        drop(repo);

        let repo = git2::Repository::open_bare(tmp.path()).unwrap();
        assert_eq!(repo.find_blob(b).unwrap().content(), big.as_bytes());
        let tree = repo.find_tree(tree).unwrap();
        assert_eq!(tree.len(), 2);
        let loose: Vec<_> = std::fs::read_dir(tmp.path().join("objects"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "pack" && n != "info")
            .collect();
        assert!(loose.is_empty(), "{loose:?}");
        let packs = std::fs::read_dir(tmp.path().join("objects/pack"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("pack".as_ref()))
            .count();
        assert_eq!(packs, 1);
    }
}
