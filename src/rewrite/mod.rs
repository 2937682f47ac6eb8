//! Byte-exact rewriting of marked image references.
//!
//! The core is pure and language-agnostic: [`scan`] finds marked sites in a file's bytes,
//! [`plan`] turns sites and selections into edits and [`Change`]s, [`apply`] splices the
//! edits once and [`verify`]s the result. Language modules (`yaml`, `cue`) only locate
//! markers and values and know the quoting rules of their literals. [`walk`] is the IO edge:
//! file discovery, parallel processing and atomic writes. [`cache`] memoises [`scan`] by the
//! bytes' hash, in memory and in one file per tree or target.
//!
//! A language is one file implementing `frame::Language` (which nodes are values, how a
//! value becomes a site, what a stray `$imagepolicy` means in it; the frame of a scan,
//! parsing aside, is shared), a `Lang` variant chosen in [`Lang::from_path`] and an arm in
//! [`scan`], [`rescan`] (CUE re-parses fully, which is correct, just not incremental) and
//! [`encode`]; planning, splicing, verification and the walk are shared.

pub mod cache;
mod cue;
mod cue_literal;
mod edit;
mod frame;
mod marker;
pub mod tree_memo;
mod verify;
pub mod walk;
mod yaml;
mod yaml_large;
pub(crate) mod yaml_literal;

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::PolicyId;

pub use cache::{BlobScan, CacheError, CacheStats, ScanCache};
pub use cue_literal::CueForm;
pub use edit::{Edit, FilePlan, apply, apply_with, plan, plan_allowed, value_for};
pub use marker::{MarkerParse, parse_marker};
pub use verify::{VerifyError, verify, verify_with};
pub use walk::{Hooks, Mode, TreeReport, WalkError, rewrite_tree, rewrite_tree_with};
pub use yaml_large::{FLOW_ITEM_LIMIT, TooLarge};

/// The byte string every marker contains; files without it are never parsed.
pub const MARKER_NEEDLE: &[u8] = b"$imagepolicy";

/// A language tagsmith can rewrite, chosen by file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Lang {
    Yaml,
    Cue,
}

impl Lang {
    /// `*.yaml`, `*.yml`, Kustomize's extensionless `Kustomization`, and `*.cue`.
    pub fn from_path(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?;
        if name == "Kustomization" {
            return Some(Self::Yaml);
        }
        let ext = Path::new(name).extension()?.to_str()?;
        match ext {
            "yaml" | "yml" => Some(Self::Yaml),
            "cue" => Some(Self::Cue),
            _ => None,
        }
    }
}

/// Which part of the reference a marker sets (`ns:name`, `ns:name:tag`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Part {
    /// `name:tag`, plus `@digest` when the selection carries one.
    Full,
    Name,
    Tag,
    Digest,
}

impl Part {
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Full => "",
            Self::Name => ":name",
            Self::Tag => ":tag",
            Self::Digest => ":digest",
        }
    }
}

/// A parsed `{"$imagepolicy": "ns:name[:part]"}` marker.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Marker {
    pub policy: PolicyId,
    pub part: Part,
}

impl fmt::Display for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.policy, self.part.suffix())
    }
}

/// How a scalar is written in the source; a rewrite keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Style {
    Plain,
    Single,
    Double,
    /// A CUE string literal; its delimiters are kept and only its content is rewritten.
    Cue(CueForm),
}

/// A marked value: where it is, how it is quoted and what it reads as now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    pub marker: Marker,
    /// 1-based line of the value: the marker's, or for a marker above or before its value
    /// (a YAML sequence item's head comment, `- # marker`), the value's.
    pub line: usize,
    /// Bytes of the literal, quotes included (CUE: its content, between the delimiters).
    pub range: Range<usize>,
    pub style: Style,
    /// The decoded value.
    pub value: String,
    /// False for a plain scalar the parser types as a number, boolean, null, ...
    pub is_string: bool,
}

/// What is wrong at one line of a file. Problems never stop the rest of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProblemKind {
    /// The file does not parse; it is not edited.
    Syntax,
    /// The file is valid but too large for the syntax tree; it is not edited.
    TooLarge(TooLarge),
    /// A comment mentions `$imagepolicy` but is not exactly one JSON object.
    NearMiss { reason: String },
    /// A JSON marker whose policy id or suffix is invalid.
    BadMarker { reason: String },
    /// A marker with nothing to set on its line.
    NoValue,
    /// A marker on a value tagsmith does not rewrite (alias, block scalar, collection, ...).
    UnsupportedValue { what: Cow<'static, str> },
    /// A marker inside a block scalar's text, which is data, not a comment.
    MarkerInBlockScalar,
    /// A marker inside a CUE string's text, which is data, not a comment.
    MarkerInString,
    /// A marker names a policy with no selection.
    UnknownPolicy { policy: PolicyId },
    /// The policy may not write this file (tenancy).
    NotAllowed { policy: PolicyId },
    /// The selection lacks the part the marker asks for (e.g. `:digest` without a digest).
    MissingPart { marker: Marker },
    /// The edited bytes failed verification; the file is left as it was.
    Verify { reason: String },
    /// The file changed on disk while it was being rewritten; it is left as it is now.
    ChangedMeanwhile,
    /// The file holds a marker in an encoding other than UTF-8 (UTF-16, UTF-32), which
    /// tagsmith does not rewrite.
    Encoding { encoding: String },
    /// Reading, writing or walking failed.
    Io { reason: String },
    /// A path outside the tree, or one that cannot be used.
    Path { reason: String },
}

impl ProblemKind {
    /// Errors mean a file could not be processed; warnings are about single markers.
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            Self::Syntax
                | Self::TooLarge(_)
                | Self::MissingPart { .. }
                | Self::Verify { .. }
                | Self::ChangedMeanwhile
                | Self::Encoding { .. }
                | Self::Io { .. }
                | Self::Path { .. }
        )
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax => write!(f, "syntax error; file not edited"),
            Self::TooLarge(why) => write!(f, "{why}; file not edited"),
            Self::NearMiss { reason } => write!(f, "looks like a marker but is not one: {reason}"),
            Self::BadMarker { reason } => write!(f, "invalid marker: {reason}"),
            Self::NoValue => write!(f, "marker has no value on its line"),
            Self::UnsupportedValue { what } => {
                write!(f, "marker on {what}, which is not rewritten")
            }
            Self::MarkerInBlockScalar => write!(
                f,
                "marker inside a block scalar is text, not a comment; not rewritten"
            ),
            Self::MarkerInString => write!(
                f,
                "marker inside a string is text, not a comment; not rewritten"
            ),
            Self::UnknownPolicy { policy } => write!(f, "unknown policy {policy}: no selection"),
            Self::NotAllowed { policy } => {
                write!(
                    f,
                    "policy {policy} may not change this file (tenancy); not rewritten"
                )
            }
            Self::MissingPart { marker } => {
                write!(f, "marker {marker}: the selection has no such part")
            }
            Self::Verify { reason } => {
                write!(f, "edit failed verification, file left untouched: {reason}")
            }
            Self::ChangedMeanwhile => write!(
                f,
                "changed on disk while tagsmith was rewriting it; kept as it is now, not written (run again)"
            ),
            Self::Encoding { encoding } => write!(
                f,
                "holds a marker but is encoded as {encoding}; tagsmith rewrites only UTF-8 files, so it is not edited (convert it to UTF-8)"
            ),
            Self::Io { reason } => write!(f, "{reason}"),
            Self::Path { reason } => write!(f, "{reason}"),
        }
    }
}

/// A problem found by [`scan`]: a 1-based line and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub line: usize,
    pub kind: ProblemKind,
}

impl Finding {
    pub fn at(self, path: &Path) -> Problem {
        Problem {
            path: path.to_path_buf(),
            line: self.line,
            kind: self.kind,
        }
    }
}

/// A problem with the file it is in; `line` is 1-based, 0 when it concerns the whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub line: usize,
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.kind)
        } else {
            write!(f, "{}:{}: {}", self.path.display(), self.line, self.kind)
        }
    }
}

/// One value that changes; drives commit messages and PR bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub file: PathBuf,
    pub line: usize,
    pub policy: PolicyId,
    /// Which part of the reference the marker sets (Flux names the marker `ns:name:tag`).
    pub part: Part,
    pub old: String,
    pub new: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {} -> {}",
            self.file.display(),
            self.line,
            self.policy,
            self.old,
            self.new
        )
    }
}

/// Everything [`scan`] found in one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanResult {
    pub sites: Vec<Site>,
    pub problems: Vec<Finding>,
}

/// Finds marked sites in a file's bytes. A file that does not parse yields no sites and one
/// [`ProblemKind::Syntax`] finding at the line of its first error.
pub fn scan(source: &[u8], lang: Lang) -> ScanResult {
    match lang {
        Lang::Yaml => yaml::scan(source),
        Lang::Cue => cue::scan(source),
    }
}

/// Scans `new`, which is `old` with `edits` applied; a language may reuse what it learnt
/// from scanning `old` (YAML re-parses incrementally), the result is that of [`scan`].
pub fn rescan(lang: Lang, old: &[u8], new: &[u8], edits: &[Edit]) -> ScanResult {
    match lang {
        Lang::Yaml => {
            let edits: Vec<_> = edits
                .iter()
                .map(|e| (e.range.clone(), e.text.as_str()))
                .collect();
            yaml::rescan(old, new, &edits)
        }
        Lang::Cue => cue::scan(new),
    }
}

/// How a new value must be written in `lang` to keep `style` and read back as a string.
pub fn encode(lang: Lang, style: Style, value: &str) -> (Style, String) {
    match lang {
        Lang::Yaml => yaml::encode(style, value),
        Lang::Cue => cue::encode(style, value),
    }
}

/// The encoding of a file that holds [`MARKER_NEEDLE`] as UTF-16 or UTF-32 text, whose bytes
/// interleave it with NULs so that the byte search for it misses; `None` for anything else.
/// YAML and CUE text in UTF-8 never holds a NUL, so files without one are answered at once.
pub fn wide_encoding_with_marker(source: &[u8]) -> Option<&'static str> {
    let bom = match source {
        [0, 0, 0xfe, 0xff, ..] => Some("UTF-32BE"),
        [0xff, 0xfe, 0, 0, ..] => Some("UTF-32LE"),
        [0xfe, 0xff, ..] => Some("UTF-16BE"),
        [0xff, 0xfe, ..] => Some("UTF-16LE"),
        _ => None,
    };
    if bom.is_none() && memchr::memchr(0, source).is_none() {
        return None;
    }
    let widened = |width: usize, big_endian: bool| -> Vec<u8> {
        MARKER_NEEDLE
            .iter()
            .flat_map(|&b| {
                let mut unit = vec![0; width];
                unit[if big_endian { width - 1 } else { 0 }] = b;
                unit
            })
            .collect()
    };
    // Text in one byte order also holds the other order's needle one byte off, so a form
    // counts only where it starts on a code unit boundary.
    let forms = [
        ("UTF-32LE", 4, widened(4, false)),
        ("UTF-32BE", 4, widened(4, true)),
        ("UTF-16LE", 2, widened(2, false)),
        ("UTF-16BE", 2, widened(2, true)),
    ];
    let found = forms.iter().find(|(_, width, needle)| {
        memchr::memmem::find_iter(source, needle).any(|at| at % width == 0)
    })?;
    Some(bom.unwrap_or(found.0))
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(source: &[u8], offset: usize) -> usize {
    let end = offset.min(source.len());
    memchr::memchr_iter(b'\n', &source[..end]).count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let units = bom.then_some(0xfeff).into_iter().chain(text.encode_utf16());
        for unit in units {
            let bytes = if big_endian {
                unit.to_be_bytes()
            } else {
                unit.to_le_bytes()
            };
            out.extend_from_slice(&bytes);
        }
        out
    }

    fn encode_utf32(text: &str, big_endian: bool) -> Vec<u8> {
        text.chars()
            .flat_map(|c| {
                let n = u32::from(c);
                if big_endian {
                    n.to_be_bytes()
                } else {
                    n.to_le_bytes()
                }
            })
            .collect()
    }

    #[test]
    fn markers_in_wide_encodings_are_found_with_their_byte_order() {
        let text = "a: x:1 # {\"$imagepolicy\": \"ns:app\"}\n";
        for (bom, le, be) in [
            (true, "UTF-16LE", "UTF-16BE"),
            (false, "UTF-16LE", "UTF-16BE"),
        ] {
            assert_eq!(
                wide_encoding_with_marker(&encode_utf16(text, false, bom)),
                Some(le)
            );
            assert_eq!(
                wide_encoding_with_marker(&encode_utf16(text, true, bom)),
                Some(be)
            );
        }
        assert_eq!(
            wide_encoding_with_marker(&encode_utf32(text, false)),
            Some("UTF-32LE")
        );
        assert_eq!(
            wide_encoding_with_marker(&encode_utf32(text, true)),
            Some("UTF-32BE")
        );
    }

    #[test]
    fn other_files_are_not_wide() {
        assert_eq!(wide_encoding_with_marker(b"a: b\n"), None);
        assert_eq!(wide_encoding_with_marker(b"\0\0binary"), None);
        let plain = encode_utf16("a: x:1 # no marker\n", false, true);
        assert_eq!(wide_encoding_with_marker(&plain), None);
    }
}
