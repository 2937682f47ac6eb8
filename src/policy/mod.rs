//! Image policies: pick the newest acceptable tag from a registry's tag list.
//!
//! Pure: values in, values out. Semantics follow Flux's ImagePolicy (see `docs/policies.md`),
//! with two deliberate differences: a numerical policy skips non-numeric tags instead of
//! failing, and ties on an extracted key are broken by the original tag, never by map order.

mod alphabetical;
pub mod filter;
mod numerical;
pub mod semver;

use std::cmp::Ordering;
use std::fmt;

use regex::Regex;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use self::filter::TagFilter;
pub use self::semver::{NotSemver, Range, RangeError, Version};

/// Flux's default: cosign signatures are tags too, and never an image to run.
pub const DEFAULT_EXCLUDE: &str = r"^.*\.sig$";

/// Above this many tags, selection splits the list across threads.
const PARALLEL_THRESHOLD: usize = 1 << 16;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    #[error(transparent)]
    Range(#[from] RangeError),
    #[error("invalid filter pattern {pattern:?}: {reason}")]
    FilterPattern { pattern: String, reason: String },
    #[error(
        "invalid extract template {template:?}: the pattern {pattern:?} has no group {group:?}"
    )]
    FilterExtract {
        template: String,
        group: String,
        pattern: String,
    },
    #[error("invalid exclude pattern {pattern:?}: {reason}")]
    ExcludePattern { pattern: String, reason: String },
    #[error("invalid order {input:?}: expected asc or desc")]
    Order { input: String },
}

/// `asc` picks the largest value, `desc` the smallest (Flux's wording).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    Asc,
    Desc,
}

impl std::str::FromStr for Order {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "asc" | "ASC" | "Asc" => Ok(Self::Asc),
            "desc" | "DESC" | "Desc" => Ok(Self::Desc),
            _ => Err(PolicyError::Order {
                input: s.to_string(),
            }),
        }
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Asc => "asc",
            Self::Desc => "desc",
        })
    }
}

/// What a policy orders tags by, as written by the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSpec {
    Semver(String),
    Alphabetical(Order),
    Numerical(Order),
}

/// A policy as written (config, Flux ImagePolicy or command line), before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    pub rule: RuleSpec,
    pub filter: Option<FilterSpec>,
    /// `None` means Flux's default exclusion; `Some(vec![])` excludes nothing.
    pub exclude: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterSpec {
    pub pattern: String,
    pub extract: Option<String>,
}

#[derive(Debug, Clone)]
enum Rule {
    Semver(Range),
    Alphabetical(Order),
    Numerical(Order),
}

/// A validated policy: ranges parsed, regexes compiled.
#[derive(Debug, Clone)]
pub struct Policy {
    rule: Rule,
    filter: Option<TagFilter>,
    exclude: Vec<Regex>,
}

/// Why a tag was not a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// Matched the exclude pattern with this index.
    Excluded(usize),
    FilteredOut,
    NotSemver(NotSemver),
    OutOfRange,
    /// A prerelease, and no OR group of the range names one.
    Prerelease,
    NotNumeric,
}

/// Counts of what happened to the tags, for messages like "nothing selected from 40 tags: ...".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub tags: usize,
    pub excluded: usize,
    pub filtered_out: usize,
    pub not_semver: usize,
    pub out_of_range: usize,
    pub non_numeric: usize,
    pub candidates: usize,
    /// A few of the non-numeric tags a numerical policy skipped, to report them.
    pub non_numeric_examples: Vec<String>,
}

const NON_NUMERIC_EXAMPLES: usize = 3;

impl Stats {
    fn count(&mut self, drop: Drop, tag: &str) {
        match drop {
            Drop::Excluded(_) => self.excluded += 1,
            Drop::FilteredOut => self.filtered_out += 1,
            Drop::NotSemver(_) => self.not_semver += 1,
            Drop::OutOfRange | Drop::Prerelease => self.out_of_range += 1,
            Drop::NotNumeric => {
                self.non_numeric += 1;
                if self.non_numeric_examples.len() < NON_NUMERIC_EXAMPLES {
                    self.non_numeric_examples.push(tag.to_string());
                }
            }
        }
    }

    fn merge(&mut self, other: Self) {
        self.tags += other.tags;
        self.excluded += other.excluded;
        self.filtered_out += other.filtered_out;
        self.not_semver += other.not_semver;
        self.out_of_range += other.out_of_range;
        self.non_numeric += other.non_numeric;
        self.candidates += other.candidates;
        let room = NON_NUMERIC_EXAMPLES.saturating_sub(self.non_numeric_examples.len());
        self.non_numeric_examples
            .extend(other.non_numeric_examples.into_iter().take(room));
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} tags", self.tags)?;
        let parts = [
            (self.excluded, "excluded"),
            (self.filtered_out, "filtered out"),
            (self.not_semver, "not semver"),
            (self.out_of_range, "outside the range"),
            (self.non_numeric, "not numeric"),
        ];
        for (n, what) in parts.into_iter().filter(|(n, _)| *n > 0) {
            write!(f, ", {n} {what}")?;
        }
        Ok(())
    }
}

/// The outcome of a selection: the winning tag (an element of the input) and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection<'t> {
    pub tag: Option<&'t str>,
    pub index: Option<usize>,
    pub stats: Stats,
}

/// Per-tag verdicts for `--explain`.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation<'t> {
    pub selected: Option<usize>,
    pub tags: Vec<TagVerdict<'t>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TagVerdict<'t> {
    pub tag: &'t str,
    /// The extracted key, when a filter template made one.
    pub key: Option<String>,
    /// `Ok(())` for a candidate, else why it was dropped.
    pub outcome: Result<(), Drop>,
}

/// An ordering key borrowed from the tag or the filter's scratch space.
enum Key<'s> {
    Version(Version),
    Text(&'s str),
    Number(f64),
}

enum OwnedKey {
    Version(Version),
    Text(String),
    Number(f64),
}

impl Key<'_> {
    fn to_owned_key(&self) -> OwnedKey {
        match self {
            Key::Version(v) => OwnedKey::Version(v.clone()),
            Key::Text(s) => OwnedKey::Text((*s).to_string()),
            Key::Number(n) => OwnedKey::Number(*n),
        }
    }
}

struct Best {
    key: OwnedKey,
    index: usize,
}

impl Policy {
    pub fn new(spec: &PolicySpec) -> Result<Self, PolicyError> {
        let rule = match &spec.rule {
            RuleSpec::Semver(range) => Rule::Semver(Range::parse(range)?),
            RuleSpec::Alphabetical(order) => Rule::Alphabetical(*order),
            RuleSpec::Numerical(order) => Rule::Numerical(*order),
        };
        let filter = spec
            .filter
            .as_ref()
            .map(|f| TagFilter::new(&f.pattern, f.extract.as_deref()))
            .transpose()?;
        let default_exclude = [DEFAULT_EXCLUDE.to_string()];
        let patterns = spec.exclude.as_deref().unwrap_or(&default_exclude);
        let exclude = patterns
            .iter()
            .map(|p| {
                Regex::new(p).map_err(|e| PolicyError::ExcludePattern {
                    pattern: p.clone(),
                    reason: e
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            rule,
            filter,
            exclude,
        })
    }

    pub fn exclude_pattern(&self, index: usize) -> Option<&str> {
        self.exclude.get(index).map(Regex::as_str)
    }

    /// Picks the best tag. Semver: highest precedence, first seen wins a tie. Alphabetical and
    /// numerical: `asc` largest, `desc` smallest; a tie on the key goes to the byte-wise
    /// greatest original tag, so the result never depends on the registry's order.
    pub fn select<'t, S: AsRef<str> + Sync>(&self, tags: &'t [S]) -> Selection<'t> {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        if tags.len() < PARALLEL_THRESHOLD || threads < 2 {
            return self.select_chunk(tags, 0);
        }
        let chunk = tags.len().div_ceil(threads);
        let parts: Vec<(Option<Best>, Stats)> = std::thread::scope(|scope| {
            let handles: Vec<_> = tags
                .chunks(chunk)
                .enumerate()
                .map(|(i, part)| scope.spawn(move || self.fold(part, i * chunk)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        let mut best: Option<Best> = None;
        let mut stats = Stats::default();
        for (part_best, part_stats) in parts {
            stats.merge(part_stats);
            if let Some(candidate) = part_best {
                let wins = match &best {
                    None => true,
                    Some(b) => self.beats_owned(&candidate, b, tags),
                };
                if wins {
                    best = Some(candidate);
                }
            }
        }
        self.finish(tags, best, stats)
    }

    fn select_chunk<'t, S: AsRef<str>>(&self, tags: &'t [S], offset: usize) -> Selection<'t> {
        let (best, stats) = self.fold(tags, offset);
        self.finish(tags, best, stats)
    }

    fn finish<'t, S: AsRef<str>>(
        &self,
        tags: &'t [S],
        best: Option<Best>,
        stats: Stats,
    ) -> Selection<'t> {
        let index = best.map(|b| b.index);
        Selection {
            tag: index.map(|i| tags[i].as_ref()),
            index,
            stats,
        }
    }

    /// `offset` is the index of `tags[0]` in the caller's full list.
    fn fold<S: AsRef<str>>(&self, tags: &[S], offset: usize) -> (Option<Best>, Stats) {
        let mut scratch = self.filter.as_ref().map(TagFilter::scratch);
        let mut best: Option<Best> = None;
        let mut stats = Stats {
            tags: tags.len(),
            ..Stats::default()
        };
        for (i, tag) in tags.iter().enumerate() {
            let tag = tag.as_ref();
            match self.classify(tag, scratch.as_mut()) {
                Err(drop) => stats.count(drop, tag),
                Ok(key) => {
                    stats.candidates += 1;
                    let wins = match &best {
                        None => true,
                        Some(b) => self.beats(&key, tag, &b.key, tags[b.index - offset].as_ref()),
                    };
                    if wins {
                        best = Some(Best {
                            key: key.to_owned_key(),
                            index: offset + i,
                        });
                    }
                }
            }
        }
        (best, stats)
    }

    /// Every tag's verdict, and the same winner `select` picks.
    pub fn explain<'t, S: AsRef<str>>(&self, tags: &'t [S]) -> Explanation<'t> {
        let mut scratch = self.filter.as_ref().map(TagFilter::scratch);
        let mut verdicts = Vec::with_capacity(tags.len());
        let mut best: Option<Best> = None;
        for (i, tag) in tags.iter().enumerate() {
            let tag = tag.as_ref();
            let (outcome, key_text) = match self.classify(tag, scratch.as_mut()) {
                Err(drop) => (Err(drop), None),
                Ok(key) => {
                    let wins = match &best {
                        None => true,
                        Some(b) => self.beats(&key, tag, &b.key, tags[b.index].as_ref()),
                    };
                    if wins {
                        best = Some(Best {
                            key: key.to_owned_key(),
                            index: i,
                        });
                    }
                    (Ok(()), None)
                }
            };
            verdicts.push(TagVerdict {
                tag,
                key: key_text,
                outcome,
            });
        }
        // Record the extracted key for every tag the filter matched, so users see what was compared.
        if let Some(filter) = &self.filter {
            let mut scratch = filter.scratch();
            for v in &mut verdicts {
                if !matches!(v.outcome, Err(Drop::Excluded(_)) | Err(Drop::FilteredOut)) {
                    v.key = filter
                        .apply(v.tag, &mut scratch)
                        .filter(|k| *k != v.tag)
                        .map(str::to_string);
                }
            }
        }
        Explanation {
            selected: best.map(|b| b.index),
            tags: verdicts,
        }
    }

    fn classify<'s>(
        &self,
        tag: &'s str,
        scratch: Option<&'s mut filter::Scratch>,
    ) -> Result<Key<'s>, Drop> {
        if let Some(i) = self.exclude.iter().position(|re| re.is_match(tag)) {
            return Err(Drop::Excluded(i));
        }
        let key = match (&self.filter, scratch) {
            (Some(filter), Some(scratch)) => filter.apply(tag, scratch).ok_or(Drop::FilteredOut)?,
            _ => tag,
        };
        match &self.rule {
            Rule::Semver(range) => {
                let version = Version::parse_tag(key).map_err(Drop::NotSemver)?;
                range.check(&version).map_err(|miss| match miss {
                    semver::Miss::OutOfRange => Drop::OutOfRange,
                    semver::Miss::Prerelease => Drop::Prerelease,
                })?;
                Ok(Key::Version(version))
            }
            Rule::Alphabetical(_) => Ok(Key::Text(key)),
            Rule::Numerical(_) => numerical::parse(key)
                .map(Key::Number)
                .ok_or(Drop::NotNumeric),
        }
    }

    /// Does the new key (of `tag`) beat the best so far (of `best_tag`)?
    fn beats(&self, new: &Key<'_>, tag: &str, best: &OwnedKey, best_tag: &str) -> bool {
        let ordering = match (&self.rule, new, best) {
            (Rule::Semver(_), Key::Version(a), OwnedKey::Version(b)) => {
                // First seen wins on equal precedence (`v1.0.0` before `1.0.0`).
                return a.precedence(b) == Ordering::Greater;
            }
            (Rule::Alphabetical(order), Key::Text(a), OwnedKey::Text(b)) => {
                alphabetical::compare(*order, a, b)
            }
            (Rule::Numerical(order), Key::Number(a), OwnedKey::Number(b)) => {
                numerical::compare(*order, *a, *b)
            }
            _ => return false,
        };
        ordering.then_with(|| tag.as_bytes().cmp(best_tag.as_bytes())) == Ordering::Greater
    }

    fn beats_owned<S: AsRef<str>>(&self, new: &Best, best: &Best, tags: &[S]) -> bool {
        let key = match &new.key {
            OwnedKey::Version(v) => Key::Version(v.clone()),
            OwnedKey::Text(s) => Key::Text(s),
            OwnedKey::Number(n) => Key::Number(*n),
        };
        self.beats(
            &key,
            tags[new.index].as_ref(),
            &best.key,
            tags[best.index].as_ref(),
        )
    }
}

impl fmt::Display for Drop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Excluded(_) => f.write_str("excluded"),
            Self::FilteredOut => f.write_str("filtered out"),
            Self::NotSemver(why) => write!(f, "not semver ({why})"),
            Self::OutOfRange => f.write_str("outside the range"),
            Self::Prerelease => f.write_str("prerelease, and the range names no prerelease"),
            Self::NotNumeric => f.write_str("not numeric, skipped"),
        }
    }
}
