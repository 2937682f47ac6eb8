//! Git's rules for reference names (git-check-ref-format(1)), checked without libgit2: the
//! configuration is read before libgit2 has finished starting (see [`super::ready`]), and
//! waiting for it there would put its start-up back on every command's path.

/// Whether `name` (a full name such as `refs/heads/main`) is a valid reference name, as
/// libgit2's `git_reference_is_valid_name` answers for names under `refs/`.
pub fn is_valid(name: &str) -> bool {
    if name.is_empty() || name.ends_with('.') || name.contains("@{") {
        return false;
    }
    if name
        .bytes()
        .any(|b| b < 0x20 || b == 0x7f || b" ~^:?*[\\".contains(&b))
    {
        return false;
    }
    let mut parts = 0;
    for part in name.split('/') {
        // Empty parts: a leading, trailing or doubled `/`.
        if part.is_empty() || part.starts_with('.') || part.ends_with(".lock") {
            return false;
        }
        if part.contains("..") {
            return false;
        }
        parts += 1;
    }
    // One level (`main`) is valid only as an all-caps name such as `HEAD`, or `@` (HEAD's
    // shorthand); tagsmith asks only about names under `refs/`.
    parts > 1 || name == "@" || name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_as_libgit2_does() {
        let names = [
            "refs/heads/main",
            "refs/heads/feature/x-1.2",
            "refs/heads/tagsmith/prod",
            "refs/tags/v1.2.3",
            "refs/heads/@",
            "refs/heads/a@b",
            "refs/heads/a@{b",
            "refs/heads/",
            "refs/heads//a",
            "refs/heads/.hidden",
            "refs/heads/a/.b",
            "refs/heads/a..b",
            "refs/heads/a.",
            "refs/heads/a.lock",
            "refs/heads/a.lock/b",
            "refs/heads/a b",
            "refs/heads/a~1",
            "refs/heads/a^",
            "refs/heads/a:b",
            "refs/heads/a?",
            "refs/heads/a*",
            "refs/heads/a[b",
            "refs/heads/a\\b",
            "refs/heads/a\tb",
            "refs/heads/a\u{7f}",
            "refs/heads/ünïcode",
            "refs/heads/-dash",
            "refs/heads/a/b/c",
            "/refs/heads/a",
            "refs/heads/a/",
            "@",
            "@@",
            "HEAD",
            "main",
            "refs",
            "",
        ];
        let differ: Vec<(&str, bool)> = names
            .iter()
            .filter(|n| is_valid(n) != git2::Reference::is_valid_name(n))
            .map(|n| (*n, git2::Reference::is_valid_name(n)))
            .collect();
        assert!(differ.is_empty(), "libgit2 answers otherwise: {differ:?}");
    }
}
