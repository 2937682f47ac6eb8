//! Image policies: pick the newest acceptable tag from a registry's tag list.
//!
//! Pure: values in, values out. Semantics follow Flux's ImagePolicy (see `docs/policies.md`),
//! including its tie-breaking, which comes from the order Flux's scanner stores tags in
//! (byte-wise descending). The deliberate differences are listed in `docs/policies.md`.

mod alphabetical;
pub mod filter;
mod intern;
pub mod newest_build;
mod numerical;
pub mod regex;
pub mod semver;

use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};
use std::cmp::Ordering;
use std::fmt;
use std::sync::{Arc, LazyLock};

use ::regex::Regex;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use self::filter::TagFilter;
pub use self::newest_build::BuildSpec;
pub use self::regex::PatternError;
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
    FilterPattern {
        pattern: String,
        reason: PatternError,
    },
    #[error("invalid exclude pattern {pattern:?}: {reason}")]
    ExcludePattern {
        pattern: String,
        reason: PatternError,
    },
    #[error("invalid order {input:?}: expected asc or desc")]
    Order { input: String },
}

/// `asc` picks the largest value, `desc` the smallest (Flux's wording).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// The tag whose image was built last (its config's `created`), as Argo CD Image
    /// Updater's newest-build strategy; the times come from the registry (`engine::gates`).
    NewestBuild(BuildSpec),
}

/// A policy as written (config, Flux ImagePolicy or command line), before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    pub rule: RuleSpec,
    pub filter: Option<FilterSpec>,
    /// `None` and `Some(vec![])` both mean Flux's default exclusion (`GetExclusionList`).
    pub exclude: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterSpec {
    pub pattern: String,
    pub extract: Option<String>,
}

#[derive(Debug, Clone)]
enum Rule {
    Semver(Arc<Range>),
    Alphabetical(Order),
    Numerical(Order),
    NewestBuild(Arc<BuildSpec>),
}

/// A validated policy: ranges parsed, regexes compiled. The compiled parts are shared with
/// every other policy that spells them the same (see `intern`), so a policy costs a few
/// pointers, however many there are.
///
/// Two policies are equal when they are written the same after validation (same range, filter
/// pattern and template, exclude patterns): equal policies select the same tag from any list.
#[derive(Debug, Clone)]
pub struct Policy {
    rule: Rule,
    filter: Option<Arc<TagFilter>>,
    exclude: Arc<Exclusions>,
}

/// A policy's exclude patterns, compiled; the first that matches a tag drops it.
#[derive(Debug)]
struct Exclusions {
    patterns: Vec<Regex>,
}

impl Exclusions {
    fn first_match(&self, tag: &str) -> Option<usize> {
        self.patterns.iter().position(|re| re.is_match(tag))
    }

    fn same(&self, other: &Self) -> bool {
        self.patterns.len() == other.patterns.len()
            && self
                .patterns
                .iter()
                .zip(&other.patterns)
                .all(|(a, b)| a.as_str() == b.as_str())
    }
}

static RANGES: LazyLock<intern::Interner<String, Range>> = LazyLock::new(intern::Interner::new);
static FILTERS: LazyLock<intern::Interner<(String, Option<String>), TagFilter>> =
    LazyLock::new(intern::Interner::new);
static EXCLUSIONS: LazyLock<intern::Interner<Vec<String>, Exclusions>> =
    LazyLock::new(intern::Interner::new);

/// What makes policies select alike: policies with equal keys select the same tag from any
/// list. Borrowed from the policy, so it can key a map of selections.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyKey<'a> {
    rule: RuleKey<'a>,
    /// The filter's pattern (as compiled) and template.
    filter: Option<(&'a str, Option<&'a str>)>,
    exclude: Vec<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum RuleKey<'a> {
    Semver(&'a str),
    Alphabetical(Order),
    Numerical(Order),
    NewestBuild(&'a BuildSpec),
}

impl PartialEq for Policy {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Policy {}

/// One image's tag list as every policy watching the image reads it: the semver reading of
/// each tag, and for each distinct exclude list the pattern each tag matches, are worked out
/// once, on first use, and shared by all of them ([`Policy::select_in`]). Selecting with it
/// gives exactly what [`Policy::select`] gives.
pub struct TagList<'t, S> {
    tags: &'t [S],
    versions: OnceCell<Vec<Result<Version, NotSemver>>>,
    /// Per exclude list: the first pattern each tag matches.
    excluded: RefCell<Vec<ExcludeVerdicts>>,
}

/// An exclude list and, per tag, the index of the first of its patterns that matches.
type ExcludeVerdicts = (Arc<Exclusions>, Arc<[Option<u32>]>);

impl<S> fmt::Debug for TagList<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TagList")
            .field("tags", &self.tags.len())
            .finish_non_exhaustive()
    }
}

impl<'t, S: AsRef<str> + Sync> TagList<'t, S> {
    pub fn new(tags: &'t [S]) -> Self {
        Self {
            tags,
            versions: OnceCell::new(),
            excluded: RefCell::new(Vec::new()),
        }
    }

    pub fn tags(&self) -> &'t [S] {
        self.tags
    }

    fn versions(&self) -> &[Result<Version, NotSemver>] {
        self.versions.get_or_init(|| {
            self.tags
                .iter()
                .map(|t| Version::parse_tag(t.as_ref()))
                .collect()
        })
    }

    fn excluded(&self, exclude: &Arc<Exclusions>) -> Arc<[Option<u32>]> {
        let mut known = self.excluded.borrow_mut();
        if let Some((_, verdicts)) = known.iter().find(|(e, _)| e.same(exclude)) {
            return Arc::clone(verdicts);
        }
        let verdicts: Arc<[Option<u32>]> = self
            .tags
            .iter()
            .map(|t| {
                exclude
                    .first_match(t.as_ref())
                    .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            })
            .collect();
        known.push((Arc::clone(exclude), Arc::clone(&verdicts)));
        verdicts
    }
}

/// What [`TagList`] worked out for one policy, indexed like the whole tag list.
#[derive(Clone, Copy, Default)]
struct Shared<'a> {
    excluded: Option<&'a [Option<u32>]>,
    /// Present when the policy orders by the tags' own semver reading.
    versions: Option<&'a [Result<Version, NotSemver>]>,
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
    /// `strconv.ParseFloat` rejects it.
    NotNumeric,
    /// `strconv.ParseFloat` reads it as an infinity or NaN, or it overflows.
    NotFinite,
}

/// Counts of what happened to the tags, for messages like "nothing selected from 40 tags: ...".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
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
    /// newest-build: candidates with no build time (no `created`, or no image for a wanted
    /// platform); they are skipped, as Argo CD Image Updater skips them.
    #[serde(skip_serializing_if = "is_zero")]
    pub no_build_time: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

const NON_NUMERIC_EXAMPLES: usize = 3;

impl Stats {
    fn count(&mut self, drop: Drop, tag: &str) {
        match drop {
            Drop::Excluded(_) => self.excluded += 1,
            Drop::FilteredOut => self.filtered_out += 1,
            Drop::NotSemver(_) => self.not_semver += 1,
            Drop::OutOfRange | Drop::Prerelease => self.out_of_range += 1,
            Drop::NotNumeric | Drop::NotFinite => {
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
        self.no_build_time += other.no_build_time;
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
            (self.no_build_time, "without a build time"),
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

/// What a candidate is ordered by: the key text (the tag, or the filter's expansion) and its
/// value under the rule (a version borrowed from a [`TagList`] when one read it).
struct Key<'s> {
    text: &'s str,
    value: Value<'s>,
}

#[derive(Clone)]
enum Value<'v> {
    Version(Cow<'v, Version>),
    Text,
    Number(f64),
}

impl Value<'_> {
    fn into_owned(self) -> Value<'static> {
        match self {
            Self::Version(v) => Value::Version(Cow::Owned(v.into_owned())),
            Self::Text => Value::Text,
            Self::Number(n) => Value::Number(n),
        }
    }
}

struct Best {
    text: String,
    value: Value<'static>,
    index: usize,
}

impl Best {
    fn key(&self) -> KeyRef<'_> {
        KeyRef {
            text: &self.text,
            value: &self.value,
        }
    }
}

/// A key borrowed for one comparison, so comparing never clones a version.
#[derive(Clone, Copy)]
struct KeyRef<'a> {
    text: &'a str,
    value: &'a Value<'a>,
}

impl Key<'_> {
    fn by_ref(&self) -> KeyRef<'_> {
        KeyRef {
            text: self.text,
            value: &self.value,
        }
    }
}

impl Policy {
    pub fn new(spec: &PolicySpec) -> Result<Self, PolicyError> {
        let rule = match &spec.rule {
            RuleSpec::Semver(range) => {
                Rule::Semver(RANGES.get_or_try(range.clone(), || Range::parse(range))?)
            }
            RuleSpec::Alphabetical(order) => Rule::Alphabetical(*order),
            RuleSpec::Numerical(order) => Rule::Numerical(*order),
            RuleSpec::NewestBuild(build) => Rule::NewestBuild(Arc::new(build.clone())),
        };
        let filter = spec
            .filter
            .as_ref()
            .map(|f| {
                FILTERS.get_or_try((f.pattern.clone(), f.extract.clone()), || {
                    TagFilter::new(&f.pattern, f.extract.as_deref())
                })
            })
            .transpose()?;
        // Flux's `ImageRepository.GetExclusionList`: an empty list is the default list.
        let default_exclude = [DEFAULT_EXCLUDE.to_string()];
        let patterns = match spec.exclude.as_deref() {
            Some(list) if !list.is_empty() => list,
            _ => &default_exclude,
        };
        let exclude = EXCLUSIONS.get_or_try(patterns.to_vec(), || {
            let patterns = patterns
                .iter()
                .map(|p| {
                    regex::compile(p).map_err(|reason| PolicyError::ExcludePattern {
                        pattern: p.clone(),
                        reason,
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok::<_, PolicyError>(Exclusions { patterns })
        })?;
        Ok(Self {
            rule,
            filter,
            exclude,
        })
    }

    /// What decides this policy's selections; see [`PolicyKey`].
    pub fn key(&self) -> PolicyKey<'_> {
        PolicyKey {
            rule: match &self.rule {
                Rule::Semver(range) => RuleKey::Semver(range.as_str()),
                Rule::Alphabetical(order) => RuleKey::Alphabetical(*order),
                Rule::Numerical(order) => RuleKey::Numerical(*order),
                Rule::NewestBuild(build) => RuleKey::NewestBuild(build),
            },
            filter: self.filter.as_deref().map(|f| (f.pattern(), f.template())),
            exclude: self.exclude.patterns.iter().map(Regex::as_str).collect(),
        }
    }

    /// For a newest-build policy: what its ranking needs from the registry. Such a policy
    /// selects nothing from names alone; [`candidates`](Self::candidates) gives the tags
    /// to look up and [`newest_build::rank`] orders them.
    pub fn newest_build(&self) -> Option<&BuildSpec> {
        match &self.rule {
            Rule::NewestBuild(build) => Some(build),
            _ => None,
        }
    }

    /// The indices of the tags that pass the exclude list and the filter, in input order,
    /// and the counts of what was dropped.
    pub fn candidates<S: AsRef<str>>(&self, tags: &[S]) -> (Vec<usize>, Stats) {
        let mut scratch = self.filter.as_deref().map(TagFilter::scratch);
        let mut stats = Stats {
            tags: tags.len(),
            ..Stats::default()
        };
        let mut out = Vec::new();
        for (i, tag) in tags.iter().enumerate() {
            let tag = tag.as_ref();
            match self.classify(tag, i, scratch.as_mut(), Shared::default()) {
                Ok(_) => {
                    stats.candidates += 1;
                    out.push(i);
                }
                Err(drop) => stats.count(drop, tag),
            }
        }
        (out, stats)
    }

    pub fn exclude_pattern(&self, index: usize) -> Option<&str> {
        self.exclude.patterns.get(index).map(Regex::as_str)
    }

    /// Picks the best tag: the highest version in range, or the largest (`asc`) or smallest
    /// (`desc`) key. Ties are broken as Flux breaks them on the tag list its scanner stores
    /// (sorted byte-wise descending), so the result never depends on the input order (the
    /// rules are in `docs/policies.md`, "Ties").
    pub fn select<'t, S: AsRef<str> + Sync>(&self, tags: &'t [S]) -> Selection<'t> {
        self.select_shared(tags, Shared::default())
    }

    /// [`select`](Self::select) on a tag list shared with other policies: what they have in
    /// common (semver readings, exclude verdicts) is worked out once for all of them.
    pub fn select_in<'t, S: AsRef<str> + Sync>(&self, list: &TagList<'t, S>) -> Selection<'t> {
        let excluded = list.excluded(&self.exclude);
        let by_tag = self.filter.as_ref().is_none_or(|f| f.keys_by_tag());
        let versions = match self.rule {
            Rule::Semver(_) if by_tag => Some(list.versions()),
            _ => None,
        };
        self.select_shared(
            list.tags(),
            Shared {
                excluded: Some(&excluded),
                versions,
            },
        )
    }

    fn select_shared<'t, S: AsRef<str> + Sync>(
        &self,
        tags: &'t [S],
        shared: Shared<'_>,
    ) -> Selection<'t> {
        // Asked only for lists long enough to split: on Linux the answer reads cgroup files.
        let threads = || std::thread::available_parallelism().map_or(1, usize::from);
        if tags.len() < PARALLEL_THRESHOLD || threads() < 2 {
            let (best, stats) = self.fold(tags, 0, shared);
            return self.finish(tags, best, stats);
        }
        let chunk = tags.len().div_ceil(threads());
        let parts: Vec<(Option<Best>, Stats)> = std::thread::scope(|scope| {
            let handles: Vec<_> = tags
                .chunks(chunk)
                .enumerate()
                .map(|(i, part)| scope.spawn(move || self.fold(part, i * chunk, shared)))
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

    fn finish<'t, S: AsRef<str>>(
        &self,
        tags: &'t [S],
        best: Option<Best>,
        stats: Stats,
    ) -> Selection<'t> {
        // Names alone do not say which image was built last.
        let index = best
            .map(|b| b.index)
            .filter(|_| !matches!(self.rule, Rule::NewestBuild(_)));
        Selection {
            tag: index.map(|i| tags[i].as_ref()),
            index,
            stats,
        }
    }

    /// `offset` is the index of `tags[0]` in the caller's full list (and in `shared`'s).
    fn fold<S: AsRef<str>>(
        &self,
        tags: &[S],
        offset: usize,
        shared: Shared<'_>,
    ) -> (Option<Best>, Stats) {
        let mut scratch = self.filter.as_deref().map(TagFilter::scratch);
        let mut best: Option<Best> = None;
        let mut stats = Stats {
            tags: tags.len(),
            ..Stats::default()
        };
        for (i, tag) in tags.iter().enumerate() {
            let tag = tag.as_ref();
            match self.classify(tag, offset + i, scratch.as_mut(), shared) {
                Err(drop) => stats.count(drop, tag),
                Ok(key) => {
                    stats.candidates += 1;
                    let wins = match &best {
                        None => true,
                        Some(b) => {
                            self.beats(key.by_ref(), tag, b.key(), tags[b.index - offset].as_ref())
                        }
                    };
                    if wins {
                        best = Some(Best {
                            text: key.text.to_string(),
                            value: key.value.into_owned(),
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
        let mut scratch = self.filter.as_deref().map(TagFilter::scratch);
        let mut verdicts = Vec::with_capacity(tags.len());
        let mut best: Option<Best> = None;
        for (i, tag) in tags.iter().enumerate() {
            let tag = tag.as_ref();
            let (outcome, key_text) =
                match self.classify(tag, i, scratch.as_mut(), Shared::default()) {
                    Err(drop) => (Err(drop), None),
                    Ok(key) => {
                        let wins = match &best {
                            None => true,
                            Some(b) => {
                                self.beats(key.by_ref(), tag, b.key(), tags[b.index].as_ref())
                            }
                        };
                        if wins {
                            best = Some(Best {
                                text: key.text.to_string(),
                                value: key.value.into_owned(),
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
            selected: best
                .map(|b| b.index)
                .filter(|_| !matches!(self.rule, Rule::NewestBuild(_))),
            tags: verdicts,
        }
    }

    /// `index` is the tag's place in `shared`'s lists.
    fn classify<'s>(
        &self,
        tag: &'s str,
        index: usize,
        scratch: Option<&'s mut filter::Scratch>,
        shared: Shared<'s>,
    ) -> Result<Key<'s>, Drop> {
        let excluded = match shared.excluded {
            Some(verdicts) => verdicts[index].map(|i| i as usize),
            None => self.exclude.first_match(tag),
        };
        if let Some(i) = excluded {
            return Err(Drop::Excluded(i));
        }
        let key = match (&self.filter, scratch) {
            (Some(filter), Some(scratch)) => filter.apply(tag, scratch).ok_or(Drop::FilteredOut)?,
            _ => tag,
        };
        let value = match &self.rule {
            Rule::Semver(range) => {
                let version = match shared.versions {
                    Some(versions) => match &versions[index] {
                        Ok(v) => Cow::Borrowed(v),
                        Err(e) => return Err(Drop::NotSemver(*e)),
                    },
                    None => Cow::Owned(Version::parse_tag(key).map_err(Drop::NotSemver)?),
                };
                range.check(&version).map_err(|miss| match miss {
                    semver::Miss::OutOfRange => Drop::OutOfRange,
                    semver::Miss::Prerelease => Drop::Prerelease,
                })?;
                Value::Version(version)
            }
            Rule::Alphabetical(_) | Rule::NewestBuild(_) => Value::Text,
            Rule::Numerical(_) => match numerical::parse(key) {
                Ok(n) => Value::Number(n),
                Err(numerical::Reject::Syntax) => return Err(Drop::NotNumeric),
                Err(numerical::Reject::NotFinite) => return Err(Drop::NotFinite),
            },
        };
        Ok(Key { text: key, value })
    }

    /// Does the new key (of `tag`) beat the best so far (of `best_tag`)?
    fn beats(&self, new: KeyRef<'_>, tag: &str, best: KeyRef<'_>, best_tag: &str) -> bool {
        let primary = match (&self.rule, new.value, best.value) {
            (Rule::Semver(_), Value::Version(a), Value::Version(b)) => a.precedence(b),
            (Rule::Alphabetical(order), Value::Text, Value::Text) => {
                alphabetical::compare(*order, new.text, best.text)
            }
            (Rule::Numerical(order), Value::Number(a), Value::Number(b)) => {
                numerical::compare(*order, *a, *b)
            }
            _ => return false,
        };
        primary.then_with(|| self.tie(new.text, tag, best.text, best_tag)) == Ordering::Greater
    }

    /// Between candidates the rule ranks equal, `Greater` when (`text`, `tag`) wins.
    ///
    /// Flux's policies see the tags sorted byte-wise descending (image-reflector-controller
    /// `internal/controller/imagerepository_controller.go`, `sortTagsAndGetLatestTags`). Without
    /// a filter, semver keeps the first of equal versions (`internal/policy/semver.go`, only
    /// `GreaterThan` replaces), so the byte-wise greatest tag wins; numerical keeps the last of
    /// equal numbers (`numerical.go` skips only a strictly worse one), so the smallest wins.
    /// A filter (`filter.go`) keys a map by the extracted text, so of tags with an identical key
    /// the last stored, the byte-wise smallest, wins for every rule. Between different keys of
    /// equal rank Flux iterates that map in Go's random order; tagsmith then decides as if the
    /// keys were the tags: semver the greatest key, numerical the smallest.
    fn tie(&self, text: &str, tag: &str, best_text: &str, best_tag: &str) -> Ordering {
        if text == best_text {
            return best_tag.as_bytes().cmp(tag.as_bytes());
        }
        match self.rule {
            Rule::Semver(_) => text.as_bytes().cmp(best_text.as_bytes()),
            Rule::Numerical(_) => best_text.as_bytes().cmp(text.as_bytes()),
            // Distinct texts never rank equal alphabetically; newest-build ranks elsewhere.
            Rule::Alphabetical(_) | Rule::NewestBuild(_) => Ordering::Equal,
        }
    }

    fn beats_owned<S: AsRef<str>>(&self, new: &Best, best: &Best, tags: &[S]) -> bool {
        self.beats(
            new.key(),
            tags[new.index].as_ref(),
            best.key(),
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
            Self::NotFinite => f.write_str("infinite, NaN or too large for a float, skipped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn spec(range: &str, filter: Option<&str>, exclude: Option<Vec<String>>) -> PolicySpec {
        PolicySpec {
            rule: RuleSpec::Semver(range.to_string()),
            filter: filter.map(|pattern| FilterSpec {
                pattern: pattern.to_string(),
                extract: Some("$v".to_string()),
            }),
            exclude,
        }
    }

    #[test]
    fn policies_written_the_same_are_equal_and_share_their_compiled_parts() {
        let a = Policy::new(&spec("^1", Some("^app-(?P<v>.*)$"), None)).unwrap();
        let b = Policy::new(&spec("^1", Some("^app-(?P<v>.*)$"), Some(vec![]))).unwrap();
        assert_eq!(
            a, b,
            "no exclude list and an empty one both mean the default"
        );
        let (Rule::Semver(ra), Rule::Semver(rb)) = (&a.rule, &b.rule) else {
            panic!("semver rules expected");
        };
        assert!(Arc::ptr_eq(ra, rb), "one parsed range");
        assert!(Arc::ptr_eq(
            a.filter.as_ref().unwrap(),
            b.filter.as_ref().unwrap()
        ));
        assert!(
            Arc::ptr_eq(&a.exclude, &b.exclude),
            "one compiled exclude list"
        );
        let set: HashSet<PolicyKey<'_>> = [a.key(), b.key()].into_iter().collect();
        assert_eq!(set.len(), 1);

        let others = [
            spec("^2", Some("^app-(?P<v>.*)$"), None),
            spec("^1", Some("^web-(?P<v>.*)$"), None),
            spec("^1", None, None),
            spec("^1", Some("^app-(?P<v>.*)$"), Some(vec!["^x".into()])),
        ];
        for other in &others {
            let other = Policy::new(other).unwrap();
            assert_ne!(a, other, "{other:?}");
        }
        let numerical = Policy::new(&PolicySpec {
            rule: RuleSpec::Numerical(Order::Asc),
            filter: None,
            exclude: None,
        })
        .unwrap();
        assert_ne!(Policy::new(&spec("^1", None, None)).unwrap(), numerical);
    }

    #[test]
    fn a_shared_list_above_the_parallel_threshold_selects_as_each_policy_alone() {
        let tags: Vec<String> = (0..PARALLEL_THRESHOLD + 5_000)
            .map(|i| match i % 5 {
                0 => format!("1.{}.{}", i % 97, i % 1013),
                1 => format!("v2.{}.{}-rc.{}", i % 31, i % 7, i % 11),
                2 => format!("1.{}.{}.sig", i % 97, i % 1013),
                3 => format!("app-3.{}.{}", i % 13, i % 17),
                _ => format!("main-{i:x}"),
            })
            .collect();
        let policies = [
            spec("^1", None, None),
            spec(">=1.0.0-0", None, Some(vec!["^v2".into()])),
            spec("^3", Some("^app-(?P<v>.*)$"), None),
            PolicySpec {
                rule: RuleSpec::Alphabetical(Order::Desc),
                filter: None,
                exclude: None,
            },
        ];
        let list = TagList::new(&tags);
        for spec in &policies {
            let policy = Policy::new(spec).unwrap();
            let alone = policy.select(&tags);
            assert!(alone.index.is_some(), "{spec:?}");
            assert_eq!(policy.select_in(&list), alone, "{spec:?}");
        }
    }
}
