//! Alphabetical order: byte-wise, as Flux compares strings.

use std::cmp::Ordering;

use super::Order;

/// `Greater` when `a` should win over `b`.
pub(super) fn compare(order: Order, a: &str, b: &str) -> Ordering {
    let ord = a.as_bytes().cmp(b.as_bytes());
    match order {
        Order::Asc => ord,
        Order::Desc => ord.reverse(),
    }
}
