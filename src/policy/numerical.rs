//! Numerical order: tags read as 64-bit floats, as Flux does.

use std::cmp::Ordering;

use super::Order;

/// The tag as a finite number, or `None` (NaN and infinities would make the order meaningless).
pub(super) fn parse(tag: &str) -> Option<f64> {
    let first = *tag.as_bytes().first()?;
    // Rust would also accept "inf" and "NaN"; only digits, signs and '.' may start a number tag.
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return None;
    }
    tag.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// `Greater` when `a` should win over `b`.
pub(super) fn compare(order: Order, a: f64, b: f64) -> Ordering {
    // Both are finite, so partial_cmp always answers; -0 and 0 are equal, unlike total_cmp.
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
    fn numbers_parse_like_flux() {
        assert_eq!(parse("-62"), Some(-62.0));
        assert_eq!(parse("1e3"), Some(1000.0));
        assert_eq!(parse("53.47333823144817"), Some(53.47333823144817));
        assert_eq!(parse("inf"), None);
        assert_eq!(parse("NaN"), None);
        assert_eq!(parse("1e999"), None);
        assert_eq!(parse("1.2.3"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn zero_signs_compare_equal() {
        // -0 and 0 are the same number; the tie is then broken by the tag.
        assert_eq!(compare(Order::Asc, -0.0, 0.0), Ordering::Equal);
    }
}
