//! Pure: holds that respect a person's rollback.
//!
//! tagsmith remembers, per target, file and marker, the value it last delivered there
//! ([`Written`]). When a run finds that marker reading something else, and a person (not
//! tagsmith) committed on the branch since tagsmith's commit, and the person's value is older
//! than tagsmith's under the policy's own ordering, the person rolled back: tagsmith does not
//! write its selection over it. It holds the marker ([`Hold`]) until the policy selects a tag
//! newer than the one rolled back from, or until someone releases it.
//!
//! A person moving a marker to a newer value by hand is not a rollback: no hold, and tagsmith
//! writes its selection as before. The IO (reading the record, asking Git who committed) is the
//! caller's; this module only decides.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::{ImageRef, PolicyId};
use crate::rewrite::{Change, Part};

/// Bumped when the record's shape changes; a record of another version is started afresh.
pub const VERSION: u32 = 1;

/// A delivered change as its record needs it: the file, the marker (policy and part), its
/// line and the value written; borrowed from a [`Change`] or from a run's report of it.
#[derive(Debug, Clone)]
pub struct Wrote<'a> {
    pub file: std::borrow::Cow<'a, str>,
    /// `ns:name`.
    pub policy: std::borrow::Cow<'a, str>,
    pub part: Part,
    pub line: usize,
    pub new: &'a str,
}

impl<'a> From<&'a Change> for Wrote<'a> {
    fn from(change: &'a Change) -> Self {
        Self {
            file: change.file.to_string_lossy(),
            policy: change.policy.to_string().into(),
            part: change.part,
            line: change.line,
            new: &change.new,
        }
    }
}

/// Where a marker is: its file (relative to the repository's root) and the marker's id with
/// its part (`team-a:app:tag`), and its line at the time (lines move when people edit a file,
/// so a record also matches the only one of its file and marker on another line).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MarkerKey {
    pub file: String,
    pub marker: String,
    pub line: usize,
}

impl MarkerKey {
    pub fn of(change: &Change) -> Self {
        Self::of_wrote(&Wrote::from(change))
    }

    fn of_wrote(wrote: &Wrote<'_>) -> Self {
        Self {
            file: wrote.file.clone().into_owned(),
            marker: format!("{}{}", wrote.policy, wrote.part.suffix()),
            line: wrote.line,
        }
    }

    /// The policy part of the marker id (`ns:name`, without the part's suffix).
    pub fn policy(&self) -> &str {
        match self.marker.match_indices(':').nth(1) {
            Some((at, _)) => &self.marker[..at],
            None => &self.marker,
        }
    }

    fn same_marker(&self, other: &Self) -> bool {
        self.file == other.file && self.marker == other.marker
    }
}

impl std::fmt::Display for MarkerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} ({})", self.file, self.line, self.marker)
    }
}

/// What tagsmith last delivered to a marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Written {
    pub key: MarkerKey,
    pub value: String,
    /// The tag the policy had selected, by which newer selections are ordered.
    pub tag: Option<String>,
    /// The commit that delivered it.
    pub commit: String,
    pub at_ms: u64,
}

/// A marker tagsmith leaves as a person set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    pub key: MarkerKey,
    /// The value tagsmith had written, which the person rolled back from.
    pub from: String,
    /// Its tag: the hold ends when the policy selects a newer one.
    pub from_tag: Option<String>,
    /// The person's value.
    pub to: String,
    pub since_ms: u64,
}

impl Hold {
    pub fn policy(&self) -> &str {
        self.key.policy()
    }
}

/// One target's record: what tagsmith wrote, and the holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HoldBook {
    pub version: u32,
    pub written: Vec<Written>,
    pub holds: Vec<Hold>,
    /// A commit whose tree holds every file the record names: while the branch reads that
    /// commit, no file can have gone, and a run need not look for them again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked: Option<String>,
}

/// Finds by exact key, else the only entry of the same file and marker (its line moved).
/// `items` are sorted by key, as a book keeps them: a run with thousands of changes looks
/// each one up in thousands of records.
fn find<T>(items: &[T], key: &MarkerKey, key_of: impl Fn(&T) -> &MarkerKey) -> Option<usize> {
    if let Ok(i) = items.binary_search_by(|t| key_of(t).cmp(key)) {
        return Some(i);
    }
    let (start, end) = same_marker_range(items, key, &key_of);
    (end - start == 1).then_some(start)
}

fn written_key(w: &Written) -> &MarkerKey {
    &w.key
}

/// The entries of `items` (sorted by key) of `key`'s file and marker, on any line: adjacent,
/// since keys order by file, then marker, then line.
fn same_marker_range<T>(
    items: &[T],
    key: &MarkerKey,
    key_of: &impl Fn(&T) -> &MarkerKey,
) -> (usize, usize) {
    let want = (key.file.as_str(), key.marker.as_str());
    let start = items.partition_point(|t| {
        let k = key_of(t);
        (k.file.as_str(), k.marker.as_str()) < want
    });
    let end = items.partition_point(|t| {
        let k = key_of(t);
        (k.file.as_str(), k.marker.as_str()) <= want
    });
    (start, end)
}

/// The tag a marker's value carries, when its part has one.
pub fn tag_of(part: Part, value: &str) -> Option<String> {
    match part {
        Part::Tag => Some(value.to_string()),
        Part::Full => value
            .parse::<ImageRef>()
            .ok()
            .and_then(|r| r.tag.map(|t| t.to_string())),
        Part::Name | Part::Digest => None,
    }
}

/// What to do with one planned change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Write it.
    Write,
    /// Write it: the policy now selects a tag newer than the one rolled back from.
    Ends(Hold),
    /// Leave the marker: it is held (since an earlier run).
    Held(Hold),
    /// Leave the marker: a person rolled it back; a hold starts.
    Starts(Hold),
}

impl Verdict {
    pub fn writes(&self) -> bool {
        matches!(self, Self::Write | Self::Ends(_))
    }
}

/// What the caller knows beyond the record: how the policy orders tags, and what Git says.
pub struct Facts<'a> {
    /// Whether tag `a` is newer than tag `b` under the marker's policy (false when the policy
    /// is not configured or would select neither).
    pub newer: &'a dyn Fn(&PolicyId, &str, &str) -> bool,
    /// Whether tagsmith's commit is in the history of the branch read and a person committed
    /// there after it: only then can a differing value be a person's doing.
    pub person_committed_since: &'a dyn Fn(&str) -> bool,
    pub now_ms: u64,
}

/// The verdict on one planned change (`old` is what the marker reads now, `new` the
/// selection's value).
pub fn decide(book: &HoldBook, change: &Change, facts: &Facts<'_>) -> Verdict {
    let key = MarkerKey::of(change);
    let new_tag = tag_of(change.part, &change.new);
    let newer_than = |from: Option<&str>| match (new_tag.as_deref(), from) {
        (Some(new), Some(from)) => new != from && (facts.newer)(&change.policy, new, from),
        _ => false,
    };
    if let Some(i) = find(&book.holds, &key, |h| &h.key) {
        let hold = &book.holds[i];
        return if newer_than(hold.from_tag.as_deref()) {
            Verdict::Ends(hold.clone())
        } else {
            Verdict::Held(hold.clone())
        };
    }
    let Some(i) = find(&book.written, &key, |w| &w.key) else {
        return Verdict::Write;
    };
    let written = &book.written[i];
    if written.value == change.old
        || newer_than(written.tag.as_deref())
        || !(facts.person_committed_since)(&written.commit)
    {
        return Verdict::Write;
    }
    // The person's value against tagsmith's: only a step back is held. A value without a tag
    // (a digest or name marker), or one the policy would never select, cannot be shown newer.
    let person_tag = tag_of(change.part, &change.old);
    let rolled_back = match (person_tag.as_deref(), written.tag.as_deref()) {
        (Some(person), Some(ours)) => {
            person != ours && !(facts.newer)(&change.policy, person, ours)
        }
        _ => true,
    };
    if !rolled_back {
        return Verdict::Write;
    }
    Verdict::Starts(Hold {
        key,
        from: written.value.clone(),
        from_tag: written.tag.clone(),
        to: change.old.clone(),
        since_ms: facts.now_ms,
    })
}

impl std::fmt::Debug for Facts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Facts")
            .field("now_ms", &self.now_ms)
            .finish_non_exhaustive()
    }
}

impl HoldBook {
    /// A record of another version counts as none. Records come back sorted by key, which
    /// lookups rely on (a file edited by hand may not be).
    pub fn current(mut self) -> Self {
        if self.version == VERSION {
            self.holds.sort_by(|a, b| a.key.cmp(&b.key));
            self.written.sort_by(|a, b| a.key.cmp(&b.key));
            self
        } else {
            Self {
                version: VERSION,
                ..Self::default()
            }
        }
    }

    /// Takes in the verdicts of a run: holds that started are added, those that ended removed.
    pub fn note(&mut self, verdicts: &[Verdict]) {
        self.version = VERSION;
        for verdict in verdicts {
            match verdict {
                Verdict::Starts(hold) => {
                    self.holds.retain(|h| h.key != hold.key);
                    self.holds.push(hold.clone());
                }
                Verdict::Ends(hold) => self.holds.retain(|h| h != hold),
                Verdict::Write | Verdict::Held(_) => {}
            }
        }
        self.holds.sort_by(|a, b| a.key.cmp(&b.key));
    }

    /// Records changes delivered by `commit`. Each change replaces the record of its marker
    /// (found as [`find`] finds it, among the records before and those this call adds), or
    /// adds one.
    pub fn delivered(&mut self, changes: &[Change], commit: &str, now_ms: u64) {
        let wrote: Vec<Wrote<'_>> = changes.iter().map(Wrote::from).collect();
        self.delivered_values(&wrote, commit, now_ms);
    }

    /// [`Self::delivered`] of changes as the record needs them.
    pub fn delivered_values(&mut self, changes: &[Wrote<'_>], commit: &str, now_ms: u64) {
        self.version = VERSION;
        self.written.sort_by(|a, b| a.key.cmp(&b.key));
        let mut added: Vec<Written> = Vec::new();
        // The added records by key and by file and marker, since they are not sorted.
        let mut exact: HashMap<MarkerKey, usize> = HashMap::new();
        let mut same: HashMap<(String, String), Vec<usize>> = HashMap::new();
        for change in changes {
            let key = MarkerKey::of_wrote(change);
            let written = Written {
                key: key.clone(),
                value: change.new.to_string(),
                tag: tag_of(change.part, change.new),
                commit: commit.to_string(),
                at_ms: now_ms,
            };
            if let Ok(i) = self.written.binary_search_by(|w| w.key.cmp(&key)) {
                self.written[i] = written;
                continue;
            }
            if let Some(&i) = exact.get(&key) {
                added[i] = written;
                continue;
            }
            let (start, end) = same_marker_range(&self.written, &key, &written_key);
            let group = (key.file.clone(), key.marker.clone());
            let in_added = same.get(&group).map_or(&[][..], Vec::as_slice);
            match (end - start, in_added) {
                (1, []) => self.written[start] = written,
                (0, [i]) => {
                    let i = *i;
                    exact.remove(&added[i].key);
                    exact.insert(key, i);
                    added[i] = written;
                }
                _ => {
                    exact.insert(key, added.len());
                    same.entry(group).or_default().push(added.len());
                    added.push(written);
                }
            }
        }
        self.written.extend(added);
        self.written.sort_by(|a, b| a.key.cmp(&b.key));
    }

    /// Forgets the records of files that are gone (deleted or moved): a moved file's markers
    /// are new to tagsmith.
    pub fn retain_files(&mut self, exists: impl Fn(&Path) -> bool) -> Vec<Hold> {
        let gone: Vec<Hold> = self
            .holds
            .iter()
            .filter(|h| !exists(Path::new(&h.key.file)))
            .cloned()
            .collect();
        self.holds.retain(|h| exists(Path::new(&h.key.file)));
        self.written.retain(|w| exists(Path::new(&w.key.file)));
        gone
    }

    /// Lifts the holds of `policy` (all of them, or those in `file`), and forgets what
    /// tagsmith wrote there, so the next run writes the selection without seeing a rollback.
    pub fn release(&mut self, policy: &str, file: Option<&str>) -> Vec<Hold> {
        let matches =
            |key: &MarkerKey| key.policy() == policy && file.is_none_or(|f| key.file == f);
        let released: Vec<Hold> = self
            .holds
            .iter()
            .filter(|h| matches(&h.key))
            .cloned()
            .collect();
        self.holds.retain(|h| !matches(&h.key));
        self.written
            .retain(|w| !released.iter().any(|h| h.key.same_marker(&w.key)));
        released
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn change(old: &str, new: &str) -> Change {
        Change {
            file: PathBuf::from("apps/app.yaml"),
            line: 7,
            policy: "team-a:app".parse().unwrap(),
            part: Part::Tag,
            old: old.into(),
            new: new.into(),
        }
    }

    fn semver_newer(_: &PolicyId, a: &str, b: &str) -> bool {
        let parse = |s: &str| -> Vec<u64> { s.split('.').map(|p| p.parse().unwrap()).collect() };
        parse(a) > parse(b)
    }

    fn facts<'a>(person: &'a dyn Fn(&str) -> bool) -> Facts<'a> {
        Facts {
            newer: &semver_newer,
            person_committed_since: person,
            now_ms: 42,
        }
    }

    fn wrote(value: &str) -> HoldBook {
        let mut book = HoldBook::default();
        book.delivered(&[change("1.0.0", value)], "c0ffee", 1);
        book
    }

    /// The records `delivered` leaves, found one change at a time by a linear search over
    /// all records (the lookup's meaning, without its index).
    fn delivered_by_scanning(book: &HoldBook, changes: &[Change]) -> Vec<Written> {
        let mut written = book.written.clone();
        for change in changes {
            let key = MarkerKey::of(change);
            let record = Written {
                key: key.clone(),
                value: change.new.clone(),
                tag: tag_of(change.part, &change.new),
                commit: "c2".into(),
                at_ms: 2,
            };
            let found = written.iter().position(|w| w.key == key).or_else(|| {
                let same: Vec<usize> = (0..written.len())
                    .filter(|&i| written[i].key.same_marker(&key))
                    .collect();
                (same.len() == 1).then(|| same[0])
            });
            match found {
                Some(i) => written[i] = record,
                None => written.push(record),
            }
        }
        written.sort_by(|a, b| a.key.cmp(&b.key));
        written
    }

    #[test]
    fn delivered_finds_each_marker_as_a_scan_of_all_records_would() {
        // Files, markers and lines drawn so that exact keys, moved lines, one marker on
        // several lines of a file, and markers new in this delivery all occur.
        let at = |i: usize, line: usize, policy: &str, new: &str| Change {
            file: PathBuf::from(format!("apps/{}.yaml", i % 3)),
            line,
            policy: policy.parse().unwrap(),
            part: if i.is_multiple_of(2) {
                Part::Tag
            } else {
                Part::Full
            },
            old: "1.0.0".into(),
            new: new.into(),
        };
        let policies = ["team-a:app", "team-a:web", "team-b:app"];
        let mut book = HoldBook::default();
        let before: Vec<Change> = (0..12)
            .map(|i| at(i, 1 + i % 4, policies[i % 3], "1.1.0"))
            .collect();
        book.delivered(&before, "c1", 1);
        for round in 0..4usize {
            let changes: Vec<Change> = (0..15)
                .map(|i| {
                    let j = i * 7 + round;
                    at(j, 1 + (j * 5) % 6, policies[(j / 2) % 3], "1.2.0")
                })
                .collect();
            let want = delivered_by_scanning(&book, &changes);
            book.delivered(&changes, "c2", 2);
            assert_eq!(book.written, want, "round {round}");
        }
    }

    #[test]
    fn a_rollback_by_a_person_starts_a_hold() {
        let book = wrote("1.3.0");
        let verdict = decide(&book, &change("1.2.0", "1.3.0"), &facts(&|c| c == "c0ffee"));
        let Verdict::Starts(hold) = verdict else {
            panic!("{verdict:?}")
        };
        assert_eq!((hold.from.as_str(), hold.to.as_str()), ("1.3.0", "1.2.0"));
        assert_eq!(hold.policy(), "team-a:app");
        assert_eq!(hold.since_ms, 42);
    }

    #[test]
    fn no_hold_without_a_record_or_without_a_persons_commit() {
        let fresh = HoldBook::default();
        assert_eq!(
            decide(&fresh, &change("1.2.0", "1.3.0"), &facts(&|_| true)),
            Verdict::Write
        );
        // tagsmith's commit is not in the branch's history (an unmerged pull request), or
        // only tagsmith committed since: the value is not a person's rollback.
        let book = wrote("1.3.0");
        assert_eq!(
            decide(&book, &change("1.2.0", "1.3.0"), &facts(&|_| false)),
            Verdict::Write
        );
    }

    #[test]
    fn a_person_bumping_to_a_newer_value_is_not_held() {
        let book = wrote("1.3.0");
        assert_eq!(
            decide(&book, &change("1.5.0", "1.3.0"), &facts(&|_| true)),
            Verdict::Write
        );
    }

    #[test]
    fn a_newer_selection_than_the_one_rolled_back_from_writes_and_ends_the_hold() {
        let mut book = wrote("1.3.0");
        let start = decide(&book, &change("1.2.0", "1.3.0"), &facts(&|_| true));
        book.note(std::slice::from_ref(&start));
        assert_eq!(book.holds.len(), 1);
        // The same selection again, or an older one: still held.
        let again = decide(&book, &change("1.2.0", "1.3.0"), &facts(&|_| true));
        assert!(matches!(again, Verdict::Held(_)), "{again:?}");
        assert!(!again.writes());
        // 1.4.0 > 1.3.0 lets it go.
        let ends = decide(&book, &change("1.2.0", "1.4.0"), &facts(&|_| true));
        assert!(matches!(ends, Verdict::Ends(_)), "{ends:?}");
        assert!(ends.writes());
        book.note(&[ends]);
        assert!(book.holds.is_empty());
    }

    #[test]
    fn a_newer_selection_at_the_first_sight_of_a_rollback_is_written() {
        let book = wrote("1.3.0");
        assert_eq!(
            decide(&book, &change("1.2.0", "1.4.0"), &facts(&|_| true)),
            Verdict::Write
        );
    }

    #[test]
    fn a_record_follows_its_marker_to_another_line() {
        let book = wrote("1.3.0");
        let mut moved = change("1.2.0", "1.3.0");
        moved.line = 9;
        assert!(matches!(
            decide(&book, &moved, &facts(&|_| true)),
            Verdict::Starts(_)
        ));
    }

    #[test]
    fn full_references_are_ordered_by_their_tags() {
        let mut full = change("reg/app:1.0.0", "reg/app:1.3.0");
        full.part = Part::Full;
        let mut book = HoldBook::default();
        book.delivered(std::slice::from_ref(&full), "c1", 1);
        assert_eq!(book.written[0].tag.as_deref(), Some("1.3.0"));
        let back = Change {
            old: "reg/app:1.2.0".into(),
            new: "reg/app:1.3.0".into(),
            ..full
        };
        assert!(matches!(
            decide(&book, &back, &facts(&|_| true)),
            Verdict::Starts(_)
        ));
    }

    #[test]
    fn release_lifts_the_hold_and_forgets_the_write() {
        let mut book = wrote("1.3.0");
        let start = decide(&book, &change("1.2.0", "1.3.0"), &facts(&|_| true));
        book.note(&[start]);
        assert!(book.release("team-b:other", None).is_empty());
        assert!(
            book.release("team-a:app", Some("elsewhere.yaml"))
                .is_empty()
        );
        assert_eq!(book.release("team-a:app", Some("apps/app.yaml")).len(), 1);
        assert!(book.holds.is_empty() && book.written.is_empty());
        assert_eq!(
            decide(&book, &change("1.2.0", "1.3.0"), &facts(&|_| true)),
            Verdict::Write
        );
    }

    #[test]
    fn records_of_files_that_are_gone_are_forgotten() {
        let mut book = wrote("1.3.0");
        let start = decide(&book, &change("1.2.0", "1.3.0"), &facts(&|_| true));
        book.note(&[start]);
        assert!(book.retain_files(|_| true).is_empty());
        assert_eq!(book.retain_files(|_| false).len(), 1);
        assert!(book.holds.is_empty() && book.written.is_empty());
    }

    #[test]
    fn the_commit_a_record_was_checked_against_is_kept_and_optional() {
        let mut book = wrote("1.3.0");
        let plain = serde_json::to_string(&book).unwrap();
        assert!(!plain.contains("checked"), "{plain}");
        // A record written before the field existed reads as never checked.
        let old: HoldBook = serde_json::from_str(&plain).unwrap();
        assert_eq!(old.checked, None);
        book.checked = Some("c0ffee".into());
        let back: HoldBook = serde_json::from_str(&serde_json::to_string(&book).unwrap()).unwrap();
        assert_eq!(back, book);
    }

    #[test]
    fn a_record_of_another_version_starts_afresh() {
        let mut book = wrote("1.3.0");
        book.version = VERSION + 1;
        assert_eq!(book.current().written, Vec::new());
        assert_eq!(MarkerKey::of(&change("a", "b")).policy(), "team-a:app");
    }
}
