//! Semver tags and Flux-compatible (Masterminds) ranges.
//!
//! A tag is a version when Flux's `version.ParseVersion` (fluxcd/pkg `version/version.go`)
//! accepts it: the tag must have at least two dots anywhere (it splits into three parts at
//! dots), and Masterminds' `NewVersion` must then coerce it (`version.go`, `coerceNewVersion`):
//! `v?N(.N)?(.N)?(-pre)?(+build)?`, leading zeros allowed, missing numbers are 0. So
//! `16.1-alpine3.19` is `16.1.0-alpine3.19` and `1.2+build.5` is `1.2.0`. Precedence is
//! Masterminds' `Compare`, which is semver 2.0 except that a numeric prerelease identifier too
//! large for 64 bits compares as text.
//! Ranges are parsed and evaluated here, mirroring Masterminds' constraint semantics, except that
//! a prerelease is accepted by an OR group as a whole when any comparison in it names a
//! prerelease (so `>= 1.0.0-0 <= 2.0.0` admits `1.0.1-beta`), as Flux users expect.

use std::cmp::Ordering;
use std::fmt;

use thiserror::Error;

/// Why a tag is not a semver tag a policy may consider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSemver {
    /// Fewer than two dots, or not `v?N[.N[.N]]` with optional `-prerelease` and `+build`.
    Shape,
    /// A number does not fit in 64 bits.
    TooLarge,
    /// The prerelease or build part breaks semver 2.0 (empty identifier, leading zero, bad character).
    Suffix,
}

impl fmt::Display for NotSemver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Shape => "not a version: needs two dots and the form N[.N[.N]][-pre][+build]",
            Self::TooLarge => "a number is larger than 64 bits",
            Self::Suffix => "invalid prerelease or build suffix",
        })
    }
}

/// A version as far as precedence goes: build metadata is validated and dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// The prerelease without its `-`; empty for a release.
    pub pre: String,
}

impl Version {
    /// Parses an image tag as Flux does: at least two dots in the whole tag, then `v?N`, up to
    /// two more `.N`, optional `-prerelease` and `+build`; leading zeros allowed.
    pub fn parse_tag(tag: &str) -> Result<Self, NotSemver> {
        // fluxcd/pkg version.ParseVersion: `strings.SplitN(v, ".", 3)` must give three parts;
        // the dots may be in the prerelease or build.
        if tag.bytes().filter(|&b| b == b'.').count() < 2 {
            return Err(NotSemver::Shape);
        }
        let s = tag.strip_prefix('v').unwrap_or(tag);
        let core_end = s.find(['-', '+']).unwrap_or(s.len());
        let (core, suffix) = s.split_at(core_end);
        let mut numbers = [0u64; 3];
        for (i, part) in core.split('.').enumerate() {
            let slot = numbers.get_mut(i).ok_or(NotSemver::Shape)?;
            *slot = parse_number(part)?;
        }
        let pre = parse_suffix(suffix).map_err(|()| NotSemver::Suffix)?;
        let [major, minor, patch] = numbers;
        Ok(Self {
            major,
            minor,
            patch,
            pre,
        })
    }

    /// Masterminds' `Version.Compare` (build metadata never counts).
    pub fn precedence(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => compare_prerelease(&self.pre, &other.pre),
            })
    }

    fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }
}

/// Masterminds `comparePrerelease`: identifier by identifier; a missing one sorts first.
fn compare_prerelease(a: &str, b: &str) -> Ordering {
    let mut a = a.split('.');
    let mut b = b.split('.');
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match compare_identifier(x, y) {
                Ordering::Equal => {}
                other => return other,
            },
        }
    }
}

/// Masterminds `comparePrePart`: numbers (as `strconv.ParseUint` reads them, so at most 64 bits)
/// below text, numbers by value, text byte-wise.
fn compare_identifier(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let number = |s: &str| {
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.as_bytes().cmp(b.as_bytes()),
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if self.is_prerelease() {
            write!(f, "-{}", self.pre)?;
        }
        Ok(())
    }
}

fn parse_number(part: &str) -> Result<u64, NotSemver> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NotSemver::Shape);
    }
    part.parse().map_err(|_| NotSemver::TooLarge)
}

fn is_identifier_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

/// `-pre`, `+build` or `-pre+build` (or nothing) into the prerelease; build is only validated.
/// Masterminds' loose pattern and `validatePrerelease` / `validateMetadata`: dot-separated,
/// non-empty identifiers of `[0-9A-Za-z-]`, no leading zero on a numeric prerelease identifier.
fn parse_suffix(suffix: &str) -> Result<String, ()> {
    let (pre, build) = match suffix.split_once('+') {
        Some((pre, build)) => (pre, Some(build)),
        None => (suffix, None),
    };
    if let Some(build) = build
        && !build
            .split('.')
            .all(|id| !id.is_empty() && id.bytes().all(is_identifier_byte))
    {
        return Err(());
    }
    let pre = match pre.strip_prefix('-') {
        Some(p) => p,
        None if pre.is_empty() => return Ok(String::new()),
        None => return Err(()),
    };
    let valid = pre.split('.').all(|id| {
        let numeric = id.bytes().all(|b| b.is_ascii_digit());
        !id.is_empty()
            && id.bytes().all(is_identifier_byte)
            && !(numeric && id.len() > 1 && id.starts_with('0'))
    });
    if valid { Ok(pre.to_string()) } else { Err(()) }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid semver range {input:?}: {reason} at column {column}")]
pub struct RangeError {
    pub input: String,
    /// 1-based, in characters.
    pub column: usize,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Tilde,
    Caret,
}

/// Which parts of a range version were wildcards or left out (`1.x`, `1.2`, `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wild {
    None,
    Patch,
    Minor,
    All,
}

#[derive(Debug, Clone)]
struct Comparator {
    op: Op,
    version: Version,
    wild: Wild,
}

#[derive(Debug, Clone)]
struct Group {
    comparators: Vec<Comparator>,
    allows_prerelease: bool,
}

/// A parsed range: OR groups of AND-ed comparisons.
#[derive(Debug, Clone)]
pub struct Range {
    source: String,
    groups: Vec<Group>,
}

/// Why a version is outside a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    OutOfRange,
    /// The version is a prerelease and no group of the range names a prerelease.
    Prerelease,
}

impl Range {
    pub fn parse(input: &str) -> Result<Self, RangeError> {
        Parser::new(input).range()
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, v: &Version) -> bool {
        self.check(v).is_ok()
    }

    pub fn check(&self, v: &Version) -> Result<(), Miss> {
        let candidates = self
            .groups
            .iter()
            .filter(|g| g.allows_prerelease || !v.is_prerelease());
        let mut any_candidate = false;
        for group in candidates {
            any_candidate = true;
            if group.comparators.iter().all(|c| c.matches(v)) {
                return Ok(());
            }
        }
        Err(if any_candidate {
            Miss::OutOfRange
        } else {
            Miss::Prerelease
        })
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Comparator {
    fn matches(&self, v: &Version) -> bool {
        let c = &self.version;
        let minor_wild = matches!(self.wild, Wild::Minor);
        let patch_wild = matches!(self.wild, Wild::Patch);
        if self.wild == Wild::All {
            // Masterminds constraints.go: `*` (or `x`) is the version 0.0.0 (with any prerelease
            // given) marked dirty but neither minor- nor patch-dirty, and each operator's
            // function treats that case as below; so `^*` is only 0.0.0 and `<=*` only 0.0.x.
            let ord = v.precedence(c);
            return match self.op {
                Op::Eq | Op::Tilde | Op::Ge => ord != Ordering::Less,
                Op::Caret => ord != Ordering::Less && (v.major, v.minor, v.patch) == (0, 0, 0),
                Op::Ne => ord != Ordering::Equal,
                Op::Gt => ord == Ordering::Greater,
                Op::Lt => ord == Ordering::Less,
                Op::Le => v.major == 0 && v.minor == 0,
            };
        }
        match self.op {
            Op::Eq if self.wild == Wild::None => v.precedence(c) == Ordering::Equal,
            Op::Eq | Op::Tilde => {
                if v.precedence(c) == Ordering::Less {
                    return false;
                }
                let zero = c.major == 0 && c.minor == 0 && c.patch == 0;
                if zero && !minor_wild && !patch_wild {
                    return true;
                }
                v.major == c.major && (minor_wild || v.minor == c.minor)
            }
            Op::Ne => match self.wild {
                Wild::None => v.precedence(c) != Ordering::Equal,
                Wild::Minor => v.major != c.major,
                _ => v.major != c.major || v.minor != c.minor || v.pre != c.pre,
            },
            Op::Gt => match self.wild {
                Wild::None => v.precedence(c) == Ordering::Greater,
                _ if v.major != c.major => v.major > c.major,
                Wild::Minor => false,
                _ => v.minor > c.minor,
            },
            Op::Lt => v.precedence(c) == Ordering::Less,
            Op::Ge => v.precedence(c) != Ordering::Less,
            Op::Le => match self.wild {
                Wild::None => v.precedence(c) != Ordering::Greater,
                _ if v.major != c.major => v.major < c.major,
                Wild::Minor => true,
                _ => v.minor <= c.minor,
            },
            Op::Caret => {
                if v.precedence(c) == Ordering::Less {
                    return false;
                }
                if c.major > 0 || minor_wild {
                    return v.major == c.major;
                }
                if v.major > 0 {
                    return false;
                }
                if c.minor > 0 || patch_wild {
                    return v.minor == c.minor;
                }
                v.minor == 0 && v.patch == c.patch
            }
        }
    }
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

fn is_delimiter(b: u8) -> bool {
    b.is_ascii_whitespace() || b == b',' || b == b'|'
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Self { input, pos: 0 }
    }

    fn error(&self, at: usize, reason: impl Into<String>) -> RangeError {
        RangeError {
            input: self.input.to_string(),
            column: self.input[..at].chars().count() + 1,
            reason: reason.into(),
        }
    }

    fn unexpected_token(&self, at: usize) -> RangeError {
        let rest = &self.input[at..];
        let end = rest.bytes().position(is_delimiter).unwrap_or(rest.len());
        let token = if end == 0 {
            &rest[..rest.chars().next().map_or(0, char::len_utf8)]
        } else {
            &rest[..end]
        };
        if token.is_empty() {
            self.error(at, "unexpected end")
        } else {
            self.error(at, format!("unexpected {token:?}"))
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.input[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn range(mut self) -> Result<Range, RangeError> {
        if self.input.trim().is_empty() {
            return Err(self.error(0, "empty range"));
        }
        let mut groups = vec![self.group()?];
        while self.eat("||") {
            groups.push(self.group()?);
        }
        if self.pos < self.input.len() {
            return Err(self.unexpected_token(self.pos));
        }
        Ok(Range {
            source: self.input.to_string(),
            groups,
        })
    }

    fn group(&mut self) -> Result<Group, RangeError> {
        self.skip_ws();
        if matches!(self.peek(), None | Some(b'|')) {
            return Err(self.error(self.pos, "expected a comparison"));
        }
        let mut comparators = Vec::new();
        loop {
            self.item(&mut comparators)?;
            let spaced = self.skip_ws();
            match self.peek() {
                None => break,
                Some(b'|') if self.input[self.pos..].starts_with("||") => break,
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                    if matches!(self.peek(), None | Some(b'|') | Some(b',')) {
                        return Err(self.error(self.pos, "expected a comparison after ','"));
                    }
                }
                Some(_) if spaced => {}
                Some(_) => return Err(self.unexpected_token(self.pos)),
            }
        }
        let allows_prerelease = comparators.iter().any(|c| c.version.is_prerelease());
        Ok(Group {
            comparators,
            allows_prerelease,
        })
    }

    fn op(&mut self) -> Option<Op> {
        const OPS: [(&str, Op); 11] = [
            ("!=", Op::Ne),
            (">=", Op::Ge),
            ("=>", Op::Ge),
            ("<=", Op::Le),
            ("=<", Op::Le),
            ("~>", Op::Tilde),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("=", Op::Eq),
            ("~", Op::Tilde),
            ("^", Op::Caret),
        ];
        OPS.iter().find(|(s, _)| self.eat(s)).map(|&(_, op)| op)
    }

    /// One comparison, or a hyphen range `A - B` (which becomes `>= A, <= B`).
    fn item(&mut self, out: &mut Vec<Comparator>) -> Result<(), RangeError> {
        let op = self.op();
        self.skip_ws();
        let (version, wild) = self.partial_version()?;
        if op.is_none() {
            let save = self.pos;
            if self.skip_ws() && self.eat("-") && self.skip_ws() {
                let (upper, upper_wild) = self.partial_version()?;
                out.push(Comparator {
                    op: Op::Ge,
                    version,
                    wild,
                });
                out.push(Comparator {
                    op: Op::Le,
                    version: upper,
                    wild: upper_wild,
                });
                return Ok(());
            }
            self.pos = save;
        }
        out.push(Comparator {
            op: op.unwrap_or(Op::Eq),
            version,
            wild,
        });
        Ok(())
    }

    /// `v?N(.N(.N)?)?(-pre)?(+build)?` where each N may be `x`, `X` or `*`.
    fn partial_version(&mut self) -> Result<(Version, Wild), RangeError> {
        let start = self.pos;
        let rest = &self.input[start..];
        let len = rest.bytes().position(is_delimiter).unwrap_or(rest.len());
        let token = &rest[..len];
        let bad = || self.unexpected_token(start);
        let body = token.strip_prefix('v').unwrap_or(token);
        let core_end = body.find(['-', '+']).unwrap_or(body.len());
        let (core, suffix) = body.split_at(core_end);
        let mut numbers = [0u64; 3];
        let mut wild = Wild::None;
        let mut count = 0;
        for (i, part) in core.split('.').enumerate() {
            if i >= 3 {
                return Err(bad());
            }
            count = i + 1;
            if matches!(part, "x" | "X" | "*") {
                if wild == Wild::None {
                    wild = [Wild::All, Wild::Minor, Wild::Patch][i];
                }
                continue;
            }
            let n = parse_number(part).map_err(|e| match e {
                NotSemver::TooLarge => {
                    self.error(start, format!("number in {token:?} is larger than 64 bits"))
                }
                _ => bad(),
            })?;
            if wild == Wild::None {
                numbers[i] = n;
            }
        }
        if wild == Wild::None {
            wild = match count {
                1 => Wild::Minor,
                2 => Wild::Patch,
                _ => Wild::None,
            };
        }
        let pre = parse_suffix(suffix).map_err(|()| bad())?;
        self.pos = start + len;
        let [major, minor, patch] = numbers;
        Ok((
            Version {
                major,
                minor,
                patch,
                pre,
            },
            wild,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse_tag(s).unwrap()
    }

    #[test]
    fn tags_need_two_dots_and_up_to_three_numbers() {
        assert_eq!(v("v2025.07.03").to_string(), "2025.7.3");
        assert_eq!(Version::parse_tag("1.2"), Err(NotSemver::Shape));
        // Flux counts dots anywhere, then Masterminds fills in the missing numbers.
        assert_eq!(v("16.1-alpine3.19").to_string(), "16.1.0-alpine3.19");
        assert_eq!(v("1.2+build.5").to_string(), "1.2.0");
        assert_eq!(v("1-rc.1.2").to_string(), "1.0.0-rc.1.2");
        assert_eq!(Version::parse_tag("1.2-5"), Err(NotSemver::Shape));
        assert_eq!(Version::parse_tag("1.2.3.4"), Err(NotSemver::Shape));
        assert_eq!(Version::parse_tag("V1.2.3"), Err(NotSemver::Shape));
        assert_eq!(Version::parse_tag("1.2.3-"), Err(NotSemver::Suffix));
        assert_eq!(Version::parse_tag("1.2.3-01"), Err(NotSemver::Suffix));
        assert_eq!(Version::parse_tag("1.2.3+"), Err(NotSemver::Suffix));
        assert_eq!(
            Version::parse_tag("99999999999999999999.0.0"),
            Err(NotSemver::TooLarge)
        );
        assert_eq!(v("18446744073709551615.0.0").major, u64::MAX);
        assert_eq!(v("1.2.3+build.5").pre, "");
    }

    #[test]
    fn prerelease_precedence_follows_semver_2() {
        let order = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
        ];
        for pair in order.windows(2) {
            assert_eq!(
                v(pair[0]).precedence(&v(pair[1])),
                Ordering::Less,
                "{pair:?}"
            );
        }
        // rc.10 < rc10 < rc9: numeric identifiers sort below alphanumeric ones, which sort by ASCII.
        assert_eq!(
            v("1.0.0-rc.10").precedence(&v("1.0.0-rc10")),
            Ordering::Less
        );
        assert_eq!(v("1.0.0-rc10").precedence(&v("1.0.0-rc9")), Ordering::Less);
        assert_eq!(
            v("1.0.0-rc.9").precedence(&v("1.0.0-rc.10")),
            Ordering::Less
        );
        assert_eq!(v("v1.0.0").precedence(&v("1.0.0")), Ordering::Equal);
        // Masterminds comparePrePart reads identifiers with strconv.ParseUint: one above 64 bits
        // is text, so it sorts after every number and among texts byte-wise.
        assert_eq!(
            v("1.0.0-18446744073709551615").precedence(&v("1.0.0-18446744073709551616")),
            Ordering::Less
        );
        assert_eq!(
            v("1.0.0-100000000000000000000").precedence(&v("1.0.0-99999999999999999999")),
            Ordering::Less
        );
        assert_eq!(v("1.2.3+a").precedence(&v("1.2.3+b")), Ordering::Equal);
    }

    #[test]
    fn errors_name_the_bad_part_and_column() {
        let e = Range::parse(">= bar").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"invalid semver range ">= bar": unexpected "bar" at column 4"#
        );
        let e = Range::parse("1.0.0p").unwrap_err();
        assert_eq!((e.column, e.reason.as_str()), (1, r#"unexpected "1.0.0p""#));
        let e = Range::parse(">1 || ").unwrap_err();
        assert_eq!((e.column, e.reason.as_str()), (7, "expected a comparison"));
        let e = Range::parse(">1, ").unwrap_err();
        assert_eq!(e.reason, "expected a comparison after ','");
        let e = Range::parse(">=1 - 2").unwrap_err();
        assert_eq!((e.column, e.reason.as_str()), (5, r#"unexpected "-""#));
        assert!(Range::parse("   ").unwrap_err().reason.contains("empty"));
        assert!(Range::parse("1.2.3.4").is_err());
        assert!(Range::parse("1 |").is_err());
    }

    #[test]
    fn separators_comma_space_and_hyphen() {
        let r = Range::parse(">= 1.0.0 , < 2").unwrap();
        assert!(r.matches(&v("1.5.0")) && !r.matches(&v("2.0.0")));
        let r = Range::parse("1.2 - 1.4.5").unwrap();
        assert!(r.matches(&v("1.2.0")) && r.matches(&v("1.4.5")) && !r.matches(&v("1.4.6")));
        // Without spaces the hyphen starts a prerelease.
        let r = Range::parse("1.2-1.4.5").unwrap();
        assert!(!r.matches(&v("1.3.0")));
        let r = Range::parse(">1.0.0||<0.5").unwrap();
        assert!(r.matches(&v("0.4.0")) && r.matches(&v("1.0.1")) && !r.matches(&v("0.7.0")));
        assert_eq!(r.as_str(), ">1.0.0||<0.5");
    }

    #[test]
    fn prerelease_misses_say_why() {
        let r = Range::parse(">=1.0.0").unwrap();
        assert_eq!(r.check(&v("1.1.0-rc.1")), Err(Miss::Prerelease));
        assert_eq!(r.check(&v("0.1.0")), Err(Miss::OutOfRange));
        let r = Range::parse(">=1.0.0-0 <2.0.0").unwrap();
        assert_eq!(r.check(&v("1.1.0-rc.1")), Ok(()));
        assert_eq!(r.check(&v("2.1.0-rc.1")), Err(Miss::OutOfRange));
    }

    #[test]
    fn wildcard_forms() {
        for (range, yes, no) in [
            ("*", "0.0.1", None),
            ("x", "3.0.0", None),
            // Masterminds constraints.go constraintCaret: for `^*` the constraint is 0.0.0 and
            // only the major-0, minor-0, patch-0 path matches (its doc comment says "any", its
            // code does not).
            ("^*", "0.0.0", Some("3.0.0")),
            ("<=*", "0.0.9", Some("0.1.0")),
            ("!=*", "1.0.0", Some("0.0.0")),
            ("~*", "2.1.1", None),
            ("1.x", "1.9.0", Some("2.0.0")),
            ("1.X.x", "1.0.0", Some("0.9.0")),
            ("~1.2", "1.2.9", Some("1.3.0")),
            ("^0.2.3", "0.2.9", Some("0.3.0")),
            ("^0.0.3", "0.0.3", Some("0.0.4")),
            ("^0.0", "0.0.9", Some("0.1.0")),
            ("^0", "0.9.0", Some("1.0.0")),
            ("=1.2.3", "1.2.3", Some("1.2.4")),
            ("<=1.x", "1.9.9", Some("2.0.0")),
            (">1", "2.0.0", Some("1.9.0")),
            ("!=1.2.3", "1.2.4", Some("1.2.3")),
            ("v1.0.x", "1.0.1", Some("1.1.0")),
        ] {
            let r = Range::parse(range).unwrap();
            assert!(r.matches(&v(yes)), "{range} should match {yes}");
            if let Some(no) = no {
                assert!(!r.matches(&v(no)), "{range} should not match {no}");
            }
        }
    }
}
