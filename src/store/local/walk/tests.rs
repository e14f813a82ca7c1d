use super::*;
use crate::store::local::key::listing_start;

fn tree(keys: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for key in keys {
        let path = dir.path().join(key);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, key).expect("write");
    }
    dir
}

fn walk(root: &Path, prefix: &str, after: Option<&str>, limit: usize) -> Vec<String> {
    let start = listing_start(root, prefix).expect("valid prefix");
    keys_in_order(&start, after, limit)
        .expect("walk")
        .into_iter()
        .map(|f| f.key)
        .collect()
}

#[test]
fn keys_come_out_in_byte_order_across_directories() {
    let mut keys = vec!["a/b", "a-c", "a.d", "a0", "a/a/z", "b", "a/b0", "A"];
    let dir = tree(&keys);
    keys.sort_unstable();
    assert_eq!(walk(dir.path(), "", None, 100), keys);
}

#[test]
fn the_cursor_skips_whole_subtrees_and_resumes_inside_one() {
    let dir = tree(&["a/1", "a/2", "b/1", "b/2", "b/3/x", "c"]);
    assert_eq!(walk(dir.path(), "", Some("b/2"), 100), ["b/3/x", "c"]);
    assert_eq!(walk(dir.path(), "", Some("a/"), 100).len(), 6);
    assert_eq!(walk(dir.path(), "", Some("a/2"), 2), ["b/1", "b/2"]);
    assert_eq!(walk(dir.path(), "", Some("zzz"), 2), Vec::<String>::new());
}

#[test]
fn a_partial_prefix_filters_the_first_directory_only() {
    let dir = tree(&["q/10", "q/11/x", "q/2", "q/1-a", "r/1"]);
    assert_eq!(
        walk(dir.path(), "q/1", None, 100),
        ["q/1-a", "q/10", "q/11/x"]
    );
    assert_eq!(walk(dir.path(), "q/", None, 100).len(), 4);
    assert_eq!(
        walk(dir.path(), "nothing/", None, 100),
        Vec::<String>::new()
    );
}

#[test]
fn temporary_files_and_empty_directories_are_not_listed() {
    let dir = tree(&["q/1"]);
    fs::write(dir.path().join("q/.bucketq-tmp-1-2"), "partial").expect("write");
    fs::create_dir_all(dir.path().join("q/empty/deeper")).expect("mkdir");
    assert_eq!(walk(dir.path(), "", None, 100), ["q/1"]);
    assert!(
        dir.path().join("q/.bucketq-tmp-1-2").exists(),
        "a fresh temporary file belongs to a running writer and stays"
    );
}

#[test]
fn stale_temporary_files_are_removed_by_a_listing() {
    let dir = tree(&["q/1"]);
    let stale = dir.path().join("q/.bucketq-tmp-1-3");
    let file = fs::File::create(&stale).expect("create");
    let long_ago = SystemTime::now() - STALE_TEMP_AGE - Duration::from_secs(60);
    file.set_modified(long_ago).expect("set mtime");
    drop(file);
    assert_eq!(walk(dir.path(), "", None, 100), ["q/1"]);
    assert!(!stale.exists(), "a crashed writer's file is swept");
}

#[test]
fn empty_subdirectories_do_not_cut_a_page_short() {
    // The empty directories sort first and take room in the first pass; the page still
    // holds `limit` keys, read in a second pass.
    let dir = tree(&["q/1", "q/2", "q/3", "q/4"]);
    for empty in ["q/0a", "q/0b/deeper", "q/0c"] {
        fs::create_dir_all(dir.path().join(empty)).expect("mkdir");
    }
    fs::write(dir.path().join("q/0c/.bucketq-tmp-1-4"), "partial").expect("write");
    assert_eq!(walk(dir.path(), "", None, 2), ["q/1", "q/2"]);
    assert_eq!(walk(dir.path(), "", Some("q/2"), 2), ["q/3", "q/4"]);
    assert_eq!(walk(dir.path(), "q/0", None, 2), Vec::<String>::new());
}

#[test]
fn a_pass_keeps_only_the_smallest_entries_it_has_room_for() {
    let names: Vec<String> = (0..50).map(|n| format!("{:02}", (n * 17) % 50)).collect();
    let keys: Vec<String> = names.iter().map(|n| format!("q/{n}")).collect();
    let dir = tree(&keys.iter().map(String::as_str).collect::<Vec<_>>());
    let q = dir.path().join("q");
    let mut filter = Filter {
        name_prefix: "",
        cursor: Cursor::Before,
        resume: None,
    };
    let sort_names =
        |pass: &Pass| -> Vec<String> { pass.entries.iter().map(|e| e.sort_name.clone()).collect() };

    let pass = smallest_entries(&q, &filter, 5).expect("read");
    assert_eq!(sort_names(&pass), ["00", "01", "02", "03", "04"]);
    assert!(pass.more, "45 entries were left out");

    filter.resume = Some("04".into());
    let pass = smallest_entries(&q, &filter, 5).expect("read");
    assert_eq!(sort_names(&pass), ["05", "06", "07", "08", "09"]);

    filter.cursor = Cursor::Within(b"47");
    let pass = smallest_entries(&q, &filter, 5).expect("read");
    assert_eq!(sort_names(&pass), ["48", "49"]);
    assert!(!pass.more, "nothing was left out");
}

#[test]
fn the_cursor_admits_an_entry_only_if_it_can_hold_a_later_key() {
    // (cursor's rest, name, is_dir, admitted)
    let cases = [
        ("a0", "a", true, false), // every a/… sorts before a0
        ("a0", "a", false, false),
        ("a0", "a0", false, false), // the cursor itself
        ("a0", "a0", true, true),   // a0/… follows a0
        ("a0", "a-", true, false),
        ("a0", "a1", false, true),
        ("a0", "b", true, true),
        ("a/b", "a", true, true), // the cursor lies inside
        ("a/b", "a", false, false),
        ("a/b", "a-", true, false),
        ("a/b", "a.", true, false),
        ("a/b", "a0", false, true),
        ("a/", "a", true, true),
        ("", "-", false, true),
    ];
    for (rest, name, is_dir, admitted) in cases {
        assert_eq!(
            Cursor::Within(rest.as_bytes()).admits(name.as_bytes(), is_dir),
            admitted,
            "cursor {rest:?}, {name:?} (directory: {is_dir})"
        );
        assert!(Cursor::Before.admits(name.as_bytes(), is_dir));
    }
}

#[test]
fn sort_names_compare_as_if_built() {
    let names = [
        "a", "a-", "a.b", "a0", "ab", "b", "é", "日本", "-", "0", "~",
    ];
    let others = [
        "", "a", "a-", "a.", "a/", "a/b", "a/-", "a0", "a0/", "ab", "é/", "é0", "日", "/", "-",
        "~~",
    ];
    for name in names {
        for other in others.iter().copied().chain(names) {
            for is_dir in [false, true] {
                let built = if is_dir {
                    format!("{name}/")
                } else {
                    name.to_owned()
                };
                assert_eq!(
                    compare_sort_name(name.as_bytes(), is_dir, other.as_bytes()),
                    built.as_str().cmp(other),
                    "{built:?} against {other:?}"
                );
            }
        }
    }
}

/// A tree of nested keys whose segments differ only around the bytes that sort near `/`
/// (`-`, `.`, `0`), plus unicode, empty directories and a flat directory of tasks; the
/// keys, sorted.
fn tangled_tree() -> (tempfile::TempDir, Vec<String>) {
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    let segments = [
        "a", "a-", "a-b", "a.b", "a0", "ab", "b", "B", "é", "日本", "-", "0", "a b", "~",
    ];
    let mut rng = StdRng::seed_from_u64(6);
    let mut keys: Vec<String> = (0..160)
        .map(|_| {
            let depth = rng.gen_range(1..=3);
            let path: Vec<&str> = (0..depth)
                .map(|_| *segments.choose(&mut rng).expect("segments"))
                .collect();
            path.join("/")
        })
        .collect();
    keys.extend((0..60).map(|n| format!("q/{:08}.task", (n * 37) % 60)));
    keys.sort_unstable();
    keys.dedup();
    // A name is a file or a directory, not both: drop keys that lead to others.
    let keys: Vec<String> = keys
        .iter()
        .filter(|k| !keys.iter().any(|other| other.starts_with(&format!("{k}/"))))
        .cloned()
        .collect();
    let dir = tree(&keys.iter().map(String::as_str).collect::<Vec<_>>());
    for empty in ["a/a-e", "a/0/e", "q/0", "q/00000010.e/x", "é/0", "a-/a-/e"] {
        let path = dir.path().join(empty);
        if path.ancestors().all(|p| !p.is_file()) {
            fs::create_dir_all(&path).expect("mkdir");
        }
    }
    assert!(keys.len() > 100, "{} keys", keys.len());
    (dir, keys)
}

/// What a listing must return, by brute force.
fn expected(keys: &[String], prefix: &str, after: Option<&str>, limit: usize) -> Vec<String> {
    keys.iter()
        .filter(|k| k.starts_with(prefix) && after.map_or(true, |a| k.as_str() > a))
        .take(limit)
        .cloned()
        .collect()
}

#[test]
fn pages_match_a_sorted_listing_at_every_boundary() {
    let (dir, keys) = tangled_tree();
    for prefix in [
        "",
        "a",
        "a/",
        "a-",
        "a/a",
        "é",
        "日本/",
        "q/",
        "q/0000001",
        "zz",
    ] {
        for limit in [1, 2, 3, 7, 1000] {
            let mut after: Option<String> = None;
            let mut listed = Vec::new();
            loop {
                let page = walk(dir.path(), prefix, after.as_deref(), limit);
                assert_eq!(
                    page,
                    expected(&keys, prefix, after.as_deref(), limit),
                    "prefix {prefix:?} after {after:?} limit {limit}"
                );
                if page.len() < limit {
                    listed.extend(page);
                    break;
                }
                after = page.last().cloned();
                listed.extend(page);
            }
            assert_eq!(listed, expected(&keys, prefix, None, usize::MAX));
        }
    }
}

#[test]
fn cursors_that_are_not_keys_resume_in_order() {
    let (dir, keys) = tangled_tree();
    let cursors = [
        "",
        "-",
        "0",
        "a",
        "a ",
        "a-",
        "a-/",
        "a.",
        "a/",
        "a/a-",
        "a/a/",
        "a/zzz",
        "a0/",
        "b/",
        "q/",
        "q/0",
        "q/00000030",
        "é",
        "é/",
        "日",
        "~",
        "\u{10FFFF}",
    ];
    for after in cursors {
        for limit in [1, 4, 1000] {
            for prefix in ["", "a", "a/"] {
                assert_eq!(
                    walk(dir.path(), prefix, Some(after), limit),
                    expected(&keys, prefix, Some(after), limit),
                    "prefix {prefix:?} after {after:?} limit {limit}"
                );
            }
        }
    }
}

#[cfg(unix)]
#[test]
fn a_symbolic_link_loop_ends() {
    let dir = tree(&["q/1"]);
    std::os::unix::fs::symlink(dir.path().join("q"), dir.path().join("q/loop")).expect("symlink");
    let keys = walk(dir.path(), "", None, 100_000);
    assert!(keys.len() > 1 && keys.len() < 1000, "{} keys", keys.len());
    assert!(keys.iter().all(|k| k.len() <= MAX_KEY_BYTES));
}
