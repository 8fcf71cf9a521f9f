//! The README's quick start is the crate docs' first example, which runs as
//! a doctest: kept identical here, the README's cannot rot unnoticed.

#![allow(clippy::unwrap_used)]

/// The lines of the first ```` ```rust ```` block (or bare ```` ``` ```` in
/// doc comments) of `text`, without the fence.
fn first_code_block(text: &str, fence: &str) -> Vec<String> {
    text.lines()
        .skip_while(|line| line.trim() != fence)
        .skip(1)
        .take_while(|line| line.trim() != "```")
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_quick_start_is_the_doctested_one() {
    let readme = include_str!("../README.md");
    let lib = include_str!("../src/lib.rs");
    let docs: String = lib
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n");

    let in_readme = first_code_block(readme, "```rust");
    let doctest: Vec<String> = first_code_block(&docs, "```")
        .into_iter()
        // Lines rustdoc hides: set-up the reader does not copy.
        .filter(|line| !line.starts_with("# ") && line != "#")
        .collect();
    assert!(!doctest.is_empty());
    assert_eq!(in_readme, doctest);
}
