//! "did you mean …?": the known word nearest to a mistyped one, when it is near enough to be
//! the likely intent.

/// The candidate closest to `word` by edit distance (case-insensitive), if at most a third of
/// the word's length (at least one) edits away; ties go to the first candidate.
pub fn nearest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let word_lower = word.to_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| {
            (
                strsim::damerau_levenshtein(&word_lower, &c.to_lowercase()),
                c,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `; did you mean `x`?` for appending to a message, or nothing.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    nearest(word, candidates)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_words_are_suggested_and_far_ones_are_not() {
        let keys = ["semver", "filterTags", "exclude", "digest"];
        assert_eq!(nearest("semvar", keys), Some("semver"));
        assert_eq!(nearest("filtertags", keys), Some("filterTags"));
        assert_eq!(nearest("filterTag", keys), Some("filterTags"));
        assert_eq!(nearest("excldue", keys), Some("exclude"));
        assert_eq!(nearest("branch", keys), None);
        assert_eq!(nearest("x", ["y", "zz"]), Some("y"));
        assert_eq!(
            did_you_mean("team-a:ap", ["team-a:app"]),
            "; did you mean `team-a:app`?"
        );
        assert_eq!(did_you_mean("prod", ["staging"]), "");
    }
}
