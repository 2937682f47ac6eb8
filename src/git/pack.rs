//! New objects stored as one pack file. A commit of thousands of rewritten files would
//! otherwise leave a loose object per blob (a file, a folder lookup and often a `mkdir` each),
//! which costs more than the rewrite itself and slows every later read of the repository.
//! The pack holds whole objects, no deltas: it is written once, with its index, next to the
//! fetched packs, and a push can send it as it is.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
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
    #[error("cannot store the pack of new objects in {path}: {source}")]
    Store {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("more objects than a pack holds")]
    TooMany,
}

/// A pack written by [`Builder::store`]: how many objects it holds and where it lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub objects: usize,
    /// `objects/pack/pack-<checksum>.pack` in the repository.
    pub path: PathBuf,
}

/// What [`write`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub objects: usize,
    /// The SHA-1 trailer, which also names the pack file.
    pub checksum: [u8; 20],
}

/// Writes `ids` (read from `odb`, duplicates allowed, sorted by id) as a pack of whole
/// objects to `out`, trailer included: for objects that are in a repository already (a
/// commit's own pack is made by [`Builder`] as the objects are).
pub fn write<W: Write>(odb: &Odb<'_>, ids: &[Oid], out: &mut W) -> Result<Written, PackError> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut out = Hashed {
        inner: out,
        hash: Sha1::new(),
    };
    let count = u32::try_from(ids.len()).map_err(|_| PackError::TooMany)?;
    let mut header = Vec::with_capacity(HEADER_LEN);
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

/// The id Git gives an object of `kind` holding `data`.
pub fn object_id(kind: ObjectType, data: &[u8]) -> Oid {
    let mut hash = Sha1::new();
    hash.update(kind.str().as_bytes());
    hash.update(b" ");
    hash.update(data.len().to_string().as_bytes());
    hash.update(b"\0");
    hash.update(data);
    let digest: [u8; 20] = hash.finalize().into();
    oid(&digest)
}

fn oid(bytes: &[u8; 20]) -> Oid {
    // Twenty bytes are always an id.
    Oid::from_bytes(bytes).unwrap_or(Oid::ZERO_SHA1)
}

/// A pack of new objects written as they are produced: each object is hashed and deflated
/// once and goes straight to a temporary file in the pack folder; its id, offset and CRC32
/// are what the index needs, so the index is written from them instead of by reading the
/// objects again (as libgit2's indexer would, which inflates and hashes every object a
/// second time). Only the ids are kept in memory. The file is removed unless it is stored.
pub struct Builder {
    /// The pack folder.
    dir: PathBuf,
    /// The temporary file, until it is stored.
    tmp: Option<PathBuf>,
    out: BufWriter<File>,
    /// Bytes written so far, header included: the next entry's offset.
    written: u64,
    entries: Vec<Entry>,
    seen: std::collections::HashSet<Oid>,
    deflate: Deflate,
}

struct Entry {
    id: Oid,
    offset: u64,
    crc: u32,
}

/// Where the header ends and the first entry starts: it is written last, once the count of
/// objects is known.
const HEADER_LEN: usize = 12;

impl Builder {
    /// A pack to be stored in the pack folder under `objects` (the repository's object folder).
    pub fn new(objects: &Path) -> Result<Self, PackError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = objects.join("pack");
        std::fs::create_dir_all(&dir).map_err(|source| PackError::Store {
            path: dir.clone(),
            source,
        })?;
        let tmp = dir.join(format!(
            "tmp_pack_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|source| PackError::Store {
                path: tmp.clone(),
                source,
            })?;
        let mut builder = Self {
            dir,
            tmp: Some(tmp),
            out: BufWriter::with_capacity(1 << 16, file),
            written: 0,
            entries: Vec::new(),
            seen: std::collections::HashSet::new(),
            deflate: Deflate::new(),
        };
        builder.put(&[0; HEADER_LEN])?;
        Ok(builder)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), PackError> {
        self.out.write_all(bytes).map_err(PackError::Write)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Adds an object (once: a second one with the same id is not written) and returns its id.
    pub fn add(&mut self, kind: ObjectType, data: &[u8]) -> Result<Oid, PackError> {
        let id = object_id(kind, data);
        if !self.seen.insert(id) {
            return Ok(id);
        }
        let code = match kind {
            ObjectType::Commit => 1,
            ObjectType::Tree => 2,
            ObjectType::Blob => 3,
            ObjectType::Tag => 4,
            kind => return Err(PackError::Kind { id, kind }),
        };
        let offset = self.written;
        let header = entry_header(code, data.len());
        let mut crc = flate2::Crc::new();
        crc.update(&header);
        self.put(&header)?;
        let deflated = self.deflate.zlib(data).map_err(PackError::Write)?;
        crc.update(deflated);
        self.out.write_all(deflated).map_err(PackError::Write)?;
        self.written += deflated.len() as u64;
        self.entries.push(Entry {
            id,
            offset,
            crc: crc.sum(),
        });
        Ok(id)
    }

    /// Completes the pack (its header, then its SHA-1 trailer, hashed from the file) and
    /// renames it into place as `pack-<checksum>.pack`, then its index (version 2, as
    /// `git index-pack` writes it) as `pack-<checksum>.idx`, last: a reader finds a pack by
    /// its index.
    pub fn store(mut self) -> Result<Stored, PackError> {
        let count = u32::try_from(self.entries.len()).map_err(|_| PackError::TooMany)?;
        let Some(tmp) = self.tmp.clone() else {
            return Err(PackError::Write(std::io::Error::other(
                "pack stored already",
            )));
        };
        let fail = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PackError::Store { path, source }
        };
        self.out.flush().map_err(fail(&tmp))?;
        let file = self.out.get_mut();
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(b"PACK");
        header[4..8].copy_from_slice(&2u32.to_be_bytes());
        header[8..].copy_from_slice(&count.to_be_bytes());
        let checksum = (|| {
            file.seek(SeekFrom::Start(0))?;
            file.write_all(&header)?;
            file.seek(SeekFrom::Start(0))?;
            let mut hash = Sha1::new();
            let mut chunk = vec![0u8; 1 << 16];
            loop {
                let n = file.read(&mut chunk)?;
                if n == 0 {
                    break;
                }
                hash.update(&chunk[..n]);
            }
            let checksum: [u8; 20] = hash.finalize().into();
            file.write_all(&checksum)?;
            let mut permissions = file.metadata()?.permissions();
            permissions.set_readonly(true);
            file.set_permissions(permissions)?;
            Ok(checksum)
        })()
        .map_err(fail(&tmp))?;
        let name = format!("pack-{}", hex(&checksum));
        let pack = self.dir.join(format!("{name}.pack"));
        let index = self.dir.join(format!("{name}.idx"));
        // A pack of that name holds these very bytes already.
        if !pack.exists() {
            std::fs::rename(&tmp, &pack).map_err(fail(&pack))?;
            self.tmp = None;
        }
        let bytes = index_v2(&mut self.entries, &checksum);
        place(&self.dir, &bytes, &index).map_err(fail(&index))?;
        Ok(Stored {
            objects: self.entries.len(),
            path: pack,
        })
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// `bytes` at `path`, read-only as Git leaves its packs, through a temporary file in `dir`
/// so that no reader sees half a file. A file already there holds the same bytes (its name
/// is their checksum) and is left as it is.
fn place(dir: &Path, bytes: &[u8], path: &Path) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let tmp = dir.join(format!(
        "tmp_idx_{}_{}",
        std::process::id(),
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        let mut permissions = file.metadata()?.permissions();
        permissions.set_readonly(true);
        file.set_permissions(permissions)?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A pack index, version 2 (gitformat-pack: "Version 2 pack-*.idx files"): magic and
/// version, a fan-out table of 256 counts, the sorted ids, their CRC32s, their 4-byte
/// offsets (the high bit set: an index into the 8-byte offsets that follow, for offsets
/// past 2^31 - 1), the pack's checksum, and the SHA-1 of all before it.
fn index_v2(entries: &mut [Entry], pack_checksum: &[u8; 20]) -> Vec<u8> {
    entries.sort_unstable_by_key(|e| e.id);
    let mut out = Vec::with_capacity(8 + 256 * 4 + entries.len() * 28 + 40);
    out.extend_from_slice(&[0xff, b't', b'O', b'c']);
    out.extend_from_slice(&2u32.to_be_bytes());
    let mut fanout = [0u32; 256];
    for e in entries.iter() {
        fanout[usize::from(e.id.as_bytes()[0])] += 1;
    }
    let mut total = 0u32;
    for count in fanout {
        total += count;
        out.extend_from_slice(&total.to_be_bytes());
    }
    for e in entries.iter() {
        out.extend_from_slice(e.id.as_bytes());
    }
    for e in entries.iter() {
        out.extend_from_slice(&e.crc.to_be_bytes());
    }
    let mut large: Vec<u64> = Vec::new();
    for e in entries.iter() {
        let small = match u32::try_from(e.offset) {
            Ok(o) if o <= 0x7fff_ffff => o,
            _ => {
                let at = large.len() as u32 | 0x8000_0000;
                large.push(e.offset);
                at
            }
        };
        out.extend_from_slice(&small.to_be_bytes());
    }
    for offset in large {
        out.extend_from_slice(&offset.to_be_bytes());
    }
    out.extend_from_slice(pack_checksum);
    let own: [u8; 20] = Sha1::digest(&out).into();
    out.extend_from_slice(&own);
    out
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

    /// Git's own tools over `git_dir`, failing the test on a non-zero exit.
    fn git(git_dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(git_dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A tree of two files (one large) and a commit of it, added to a builder.
    fn sample(builder: &mut Builder) -> (Oid, Oid, Oid) {
        let big = "line\n".repeat(10_000);
        let a = builder.add(ObjectType::Blob, b"a\n").unwrap();
        let b = builder.add(ObjectType::Blob, big.as_bytes()).unwrap();
        assert_eq!(builder.add(ObjectType::Blob, b"a\n").unwrap(), a);
        let mut tree = Vec::new();
        for (name, id) in [("a", a), ("b", b)] {
            tree.extend_from_slice(format!("100644 {name}\0").as_bytes());
            tree.extend_from_slice(id.as_bytes());
        }
        let tree = builder.add(ObjectType::Tree, &tree).unwrap();
        let commit = format!(
            "tree {tree}\nauthor t <t@example.invalid> 0 +0000\ncommitter t <t@example.invalid> 0 +0000\n\nm\n"
        );
        let commit = builder.add(ObjectType::Commit, commit.as_bytes()).unwrap();
        (b, tree, commit)
    }

    #[test]
    fn ids_are_the_ones_git_gives() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(tmp.path()).unwrap();
        for data in [&b""[..], b"a\n", b"\0\x01binary"] {
            assert_eq!(object_id(ObjectType::Blob, data), repo.blob(data).unwrap());
        }
    }

    #[test]
    fn index_is_the_one_git_index_pack_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let mut builder = Builder::new(&tmp.path().join("objects")).unwrap();
        sample(&mut builder);
        let stored = builder.store().unwrap();
        assert_eq!(stored.objects, 4);
        let copy = tmp.path().join("copy.pack");
        std::fs::copy(&stored.path, &copy).unwrap();
        // `git index-pack` writes `copy.idx` next to the pack, version 2 by default.
        let printed = git(
            tmp.path(),
            &["index-pack", "--index-version=2", copy.to_str().unwrap()],
        );
        let name = stored.path.file_stem().unwrap().to_str().unwrap();
        assert_eq!(format!("pack-{}", printed.trim()), name);
        assert_eq!(
            std::fs::read(stored.path.with_extension("idx")).unwrap(),
            std::fs::read(tmp.path().join("copy.idx")).unwrap()
        );
    }

    #[test]
    fn objects_written_from_a_repository_make_the_pack_a_commit_stores() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(tmp.path()).unwrap();
        let a = repo.blob(b"a\n").unwrap();
        let b = repo.blob(b"b\n").unwrap();
        let mut out = Vec::new();
        let written = write(&repo.odb().unwrap(), &[b, a, b], &mut out).unwrap();
        assert_eq!(written.objects, 2);
        let mut builder = Builder::new(&tmp.path().join("other")).unwrap();
        // The same objects in the same order (by id) make the same bytes.
        let (first, second) = if a < b { (a, b) } else { (b, a) };
        for id in [first, second] {
            let blob = repo.find_blob(id).unwrap();
            builder.add(ObjectType::Blob, blob.content()).unwrap();
        }
        let stored = builder.store().unwrap();
        assert_eq!(std::fs::read(&stored.path).unwrap(), out);
        assert!(
            stored
                .path
                .ends_with(format!("pack-{}.pack", hex(&written.checksum)))
        );
    }

    #[test]
    fn a_pack_not_stored_leaves_no_file() {
        let tmp = tempfile::tempdir().unwrap();
        let mut builder = Builder::new(&tmp.path().join("objects")).unwrap();
        sample(&mut builder);
        drop(builder);
        let left: Vec<_> = std::fs::read_dir(tmp.path().join("objects/pack"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn stored_pack_verifies_and_reads_back_from_a_fresh_handle_with_nothing_loose() {
        let tmp = tempfile::tempdir().unwrap();
        git2::Repository::init_bare(tmp.path()).unwrap();
        let mut builder = Builder::new(&tmp.path().join("objects")).unwrap();
        let (big, tree, commit) = sample(&mut builder);
        let stored = builder.store().unwrap();
        assert_eq!(stored.objects, 4);
        assert!(stored.path.is_file(), "{}", stored.path.display());
        let verified = git(
            tmp.path(),
            &["verify-pack", "-v", stored.path.to_str().unwrap()],
        );
        // Whole objects: no line names a delta base.
        assert!(verified.contains("non delta: 4 objects"), "{verified}");
        git(
            tmp.path(),
            &["update-ref", "refs/heads/main", &commit.to_string()],
        );
        git(tmp.path(), &["fsck", "--strict", "--no-dangling"]);

        let repo = git2::Repository::open_bare(tmp.path()).unwrap();
        assert_eq!(
            repo.find_blob(big).unwrap().content(),
            "line\n".repeat(10_000).as_bytes()
        );
        assert_eq!(repo.find_tree(tree).unwrap().len(), 2);
        let loose: Vec<_> = std::fs::read_dir(tmp.path().join("objects"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "pack" && n != "info")
            .collect();
        assert!(loose.is_empty(), "{loose:?}");
        let names: Vec<_> = std::fs::read_dir(tmp.path().join("objects/pack"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
