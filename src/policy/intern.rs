//! Compiled parts of policies (ranges, filters, exclude lists), shared between every policy
//! that spells them the same. A monorepo often has thousands of policies with the same range
//! and the default exclude pattern: compiling each once keeps one regex (and one set of its
//! search caches, which the `regex` crate keeps per `Regex` value, clones included) instead of
//! one per policy.
//!
//! Entries are weak: a part no policy holds any more (after a config reload) is freed, and its
//! entry dropped the next time the table is tidied.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, Weak};

/// Tidying starts at this many entries and then waits until the table has doubled.
const FIRST_TIDY: usize = 64;

pub(super) struct Interner<K, V> {
    table: Mutex<Table<K, V>>,
}

struct Table<K, V> {
    entries: HashMap<K, Weak<V>>,
    tidy_at: usize,
}

impl<K: Hash + Eq, V> Interner<K, V> {
    pub(super) fn new() -> Self {
        Self {
            table: Mutex::new(Table {
                entries: HashMap::new(),
                tidy_at: FIRST_TIDY,
            }),
        }
    }

    /// The shared value for `key`, made by `make` when no live one exists. A failure is not
    /// remembered: the next call with the same key tries again (and fails the same way).
    pub(super) fn get_or_try<E>(
        &self,
        key: K,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<Arc<V>, E> {
        let mut table = self
            .table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(live) = table.entries.get(&key).and_then(Weak::upgrade) {
            return Ok(live);
        }
        let value = Arc::new(make()?);
        if table.entries.len() >= table.tidy_at {
            table.entries.retain(|_, weak| weak.strong_count() > 0);
            table.tidy_at = (table.entries.len() * 2).max(FIRST_TIDY);
        }
        table.entries.insert(key, Arc::downgrade(&value));
        Ok(value)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entries
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_share_one_value_while_it_is_held() {
        let interner: Interner<String, String> = Interner::new();
        let make = || Ok::<_, ()>("value".to_string());
        let a = interner.get_or_try("k".into(), make).unwrap();
        let b = interner.get_or_try("k".into(), make).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let other = interner.get_or_try("j".into(), make).unwrap();
        assert!(!Arc::ptr_eq(&a, &other));
        drop((a, b));
        let again = interner
            .get_or_try("k".into(), || Ok::<_, ()>("new".to_string()))
            .unwrap();
        assert_eq!(*again, "new", "a value nobody holds is made again");
    }

    #[test]
    fn failures_are_not_kept_and_dead_entries_are_tidied() {
        let interner: Interner<usize, usize> = Interner::new();
        assert_eq!(
            interner.get_or_try(1, || Err::<usize, _>("bad")),
            Err("bad")
        );
        assert_eq!(*interner.get_or_try(1, || Ok::<_, ()>(7)).unwrap(), 7);
        for i in 0..10 * FIRST_TIDY {
            drop(interner.get_or_try(i + 10, || Ok::<_, ()>(i)).unwrap());
        }
        assert!(
            interner.len() <= 2 * FIRST_TIDY,
            "{} entries kept for values nobody holds",
            interner.len()
        );
    }
}
