//! Numerical order: tags read as Go's `strconv.ParseFloat(tag, 64)` reads them, as Flux does
//! (image-reflector-controller `internal/policy/numerical.go`).
//!
//! The grammar is Go's (`strconv/atof.go`, `readFloat`, `special`, `underscoreOK`): an optional
//! sign, decimal digits with an optional `.` and `e` exponent, or `0x` hex digits with an
//! optional `.` and a required `p` exponent; `_` only between digits (or after `0x`); `inf`,
//! `infinity` and `nan` in any case. Decimal values are rounded by Rust's parser, which rounds
//! correctly as Go's does; hex values by a port of Go's `atofHex`.

use std::cmp::Ordering;

use super::Order;

/// Why a tag is not a candidate of a numerical policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reject {
    /// `ParseFloat` fails with a syntax error.
    Syntax,
    /// `ParseFloat` gives an infinity or NaN (an overflow is a range error in Go); skipped, as
    /// they would make the order meaningless.
    NotFinite,
}

/// The tag as a finite number.
pub(super) fn parse(tag: &str) -> Result<f64, Reject> {
    if special(tag) {
        return Err(Reject::NotFinite);
    }
    let n = match read_float(tag).ok_or(Reject::Syntax)? {
        Parsed::Decimal(digits) => digits.parse::<f64>().map_err(|_| Reject::Syntax)?,
        Parsed::Hex(hex) => hex.value(),
    };
    if n.is_finite() {
        Ok(n)
    } else {
        Err(Reject::NotFinite)
    }
}

/// Go's `special`: `[+-]?(inf|infinity)` or `nan`, any case, and nothing else.
fn special(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let unsigned = lower.strip_prefix(['+', '-']).unwrap_or(&lower);
    matches!(unsigned, "inf" | "infinity") || lower == "nan"
}

enum Parsed {
    /// The decimal text with underscores removed, in a form Rust's parser reads.
    Decimal(String),
    Hex(HexFloat),
}

struct HexFloat {
    negative: bool,
    mantissa: u64,
    exp: i64,
    truncated: bool,
}

/// Go's `readFloat`, which must consume the whole string, and `underscoreOK`.
fn read_float(s: &str) -> Option<Parsed> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut negative = false;
    if let Some(&c) = b.first()
        && (c == b'+' || c == b'-')
    {
        negative = c == b'-';
        i = 1;
    }
    let hex = i + 2 < b.len() && b[i] == b'0' && b[i + 1].eq_ignore_ascii_case(&b'x');
    if hex {
        i += 2;
    }
    let (max_digits, exp_char) = if hex { (16, b'p') } else { (19, b'e') };
    let mut underscores = false;
    let mut saw_dot = false;
    let mut saw_digits = false;
    let mut nd: i64 = 0;
    let mut nd_mant: i64 = 0;
    let mut dp: i64 = 0;
    let mut mantissa: u64 = 0;
    let mut truncated = false;
    while i < b.len() {
        let c = b[i];
        let digit = match c {
            b'_' => {
                underscores = true;
                i += 1;
                continue;
            }
            b'.' if saw_dot => break,
            b'.' => {
                saw_dot = true;
                dp = nd;
                i += 1;
                continue;
            }
            b'0'..=b'9' => u64::from(c - b'0'),
            b'a'..=b'f' | b'A'..=b'F' if hex => u64::from(c.to_ascii_lowercase() - b'a' + 10),
            _ => break,
        };
        saw_digits = true;
        i += 1;
        if digit == 0 && nd == 0 {
            // Leading zeros only move the point.
            dp -= 1;
            continue;
        }
        nd += 1;
        if nd_mant < max_digits {
            mantissa = mantissa * if hex { 16 } else { 10 } + digit;
            nd_mant += 1;
        } else if digit != 0 {
            truncated = true;
        }
    }
    if !saw_digits {
        return None;
    }
    if !saw_dot {
        dp = nd;
    }
    if hex {
        dp *= 4;
        nd_mant *= 4;
    }
    if i < b.len() && b[i].to_ascii_lowercase() == exp_char {
        i += 1;
        let mut sign = 1;
        match b.get(i) {
            Some(b'+') => i += 1,
            Some(b'-') => {
                sign = -1;
                i += 1;
            }
            _ => {}
        }
        if !b.get(i).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let mut e: i64 = 0;
        while let Some(&c) = b.get(i) {
            match c {
                b'_' => underscores = true,
                b'0'..=b'9' if e < 10_000 => e = e * 10 + i64::from(c - b'0'),
                b'0'..=b'9' => {}
                _ => break,
            }
            i += 1;
        }
        dp += e * sign;
    } else if hex {
        return None;
    }
    if i != b.len() || (underscores && !underscore_ok(s)) {
        return None;
    }
    if hex {
        let exp = if mantissa == 0 { 0 } else { dp - nd_mant };
        return Some(Parsed::Hex(HexFloat {
            negative,
            mantissa,
            exp,
            truncated,
        }));
    }
    Some(Parsed::Decimal(s.replace('_', "")))
}

/// Go's `underscoreOK`: `_` only between digits, or between a base prefix and a digit.
fn underscore_ok(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s).as_bytes();
    #[derive(PartialEq)]
    enum Saw {
        Start,
        Digit,
        Underscore,
        Other,
    }
    let mut saw = Saw::Start;
    let mut i = 0;
    let mut hex = false;
    if s.len() >= 2 && s[0] == b'0' && matches!(s[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = Saw::Digit;
        hex = s[1].eq_ignore_ascii_case(&b'x');
    }
    for &c in &s[i..] {
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = Saw::Digit;
        } else if c == b'_' {
            if saw != Saw::Digit {
                return false;
            }
            saw = Saw::Underscore;
        } else if saw == Saw::Underscore {
            return false;
        } else {
            saw = Saw::Other;
        }
    }
    saw != Saw::Underscore
}

impl HexFloat {
    /// Go's `atofHex` for float64: round to nearest even with a sticky bit; an overflow is an
    /// infinity (a range error in Go), an underflow zero.
    fn value(&self) -> f64 {
        const MANT_BITS: u32 = 52;
        const BIAS: i64 = -1023;
        const MAX_EXP: i64 = (1 << 11) + BIAS - 2;
        const MIN_EXP: i64 = BIAS + 1;
        let mut mantissa = self.mantissa;
        let mut exp = self.exp + i64::from(MANT_BITS);
        while mantissa != 0 && mantissa >> (MANT_BITS + 2) == 0 {
            mantissa <<= 1;
            exp -= 1;
        }
        if self.truncated {
            mantissa |= 1;
        }
        while mantissa >> (1 + MANT_BITS + 2) != 0 {
            mantissa = (mantissa >> 1) | (mantissa & 1);
            exp += 1;
        }
        while mantissa > 1 && exp < MIN_EXP - 2 {
            mantissa = (mantissa >> 1) | (mantissa & 1);
            exp += 1;
        }
        let mut round = mantissa & 3;
        mantissa >>= 2;
        round |= mantissa & 1;
        exp += 2;
        if round == 3 {
            mantissa += 1;
            if mantissa == 1 << (1 + MANT_BITS) {
                mantissa >>= 1;
                exp += 1;
            }
        }
        if mantissa >> MANT_BITS == 0 {
            exp = BIAS;
        }
        let sign = if self.negative { -1.0 } else { 1.0 };
        if exp > MAX_EXP {
            return sign * f64::INFINITY;
        }
        let exp_field = u64::try_from(exp - BIAS).unwrap_or(0) & ((1 << 11) - 1);
        let bits = (mantissa & ((1 << MANT_BITS) - 1)) | (exp_field << MANT_BITS);
        sign * f64::from_bits(bits)
    }
}

/// `Greater` when `a` should win over `b`.
pub(super) fn compare(order: Order, a: f64, b: f64) -> Ordering {
    // Both are finite, so partial_cmp always answers; -0 and 0 are equal, as in Go.
    let ord = a.partial_cmp(&b).unwrap_or(Ordering::Equal);
    match order {
        Order::Asc => ord,
        Order::Desc => ord.reverse(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_like_go_parse_float() {
        // Expected values from Go's strconv/atof_test.go (atoftests), read as float64.
        for (text, want) in [
            ("-62", -62.0),
            ("1e3", 1000.0),
            ("53.47333823144817", 53.47333823144817),
            ("+1", 1.0),
            ("1e23", 1e23),
            ("1E23", 1e23),
            ("100000000000000000000000", 1e23),
            ("1e-100", 1e-100),
            ("123456789e-350", 0.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("0x1p0", 1.0),
            ("0x1p-2", 0.25),
            ("0x1.8p1", 3.0),
            ("0X.8P1", 1.0),
            ("0x1fFe2.p0", 131042.0),
            ("0x1_0p0", 16.0),
            ("0x_1p0", 1.0),
            ("1_23.50_0_0e+1_2", 1.235e14),
            ("20240101_1200", 202401011200.0),
            ("0x1p-1074", 5e-324),
            ("0x1p-1075", 0.0),
            ("0x1.fffffffffffff7fffp1023", f64::MAX),
            ("0x1.00000000000008p0", 1.0),
            ("0x1.00000000000018p0", 1.0000000000000004),
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
        for text in [
            "", "+", ".", "e5", "1e", "1e+", "1.2.3", "0x1", "0x", "0x.p1", "_1", "1_", "1__2",
            "1_.5", "1._5", "1_e5", "0x1_p1", "1 ", "0b101", "0o17", "1,5", "+-1", "infx", "in",
            "latest",
        ] {
            assert_eq!(parse(text), Err(Reject::Syntax), "{text:?}");
        }
        for text in [
            "inf",
            "-Inf",
            "+INFINITY",
            "nan",
            "NaN",
            "1e309",
            "0x1p1024",
            "-1e400",
            "0x1.fffffffffffff8p1023",
        ] {
            assert_eq!(parse(text), Err(Reject::NotFinite), "{text:?}");
        }
        // Go's special() takes no sign before "nan".
        assert_eq!(parse("+nan"), Err(Reject::Syntax));
        assert_eq!(parse("-0").map(f64::is_sign_negative), Ok(true));
    }

    #[test]
    fn zero_signs_compare_equal() {
        // -0 and 0 are the same number; the tie is then broken by the tag.
        assert_eq!(compare(Order::Asc, -0.0, 0.0), Ordering::Equal);
    }
}
