//! Unit tests of search and paging: substring and case, escaping of hostile queries,
//! ranking, type and folder filters, sort orders, pages.

use super::model::RawList;
use super::tests::{found, fx, indexed, put, search};
use super::LibraryError;

#[tokio::test]
async fn search_is_substring_case_insensitive_and_escaped() {
    let f = fx();
    for n in [
        "Holiday 2020.mp4",
        "holiday-cut.mkv",
        "100% real.mp4",
        "a_b.txt",
        "axb.txt",
        r"back\slash.txt",
        "say \"hi\".mp3",
        "NEAR OR AND.mp4",
        "日本語のファイル.mp4",
    ] {
        put(&f.root, &format!("s/{n}"), b"1");
    }
    f.lib.scan_now().await.unwrap();
    assert_eq!(
        found(&f.lib, "HOLIDAY").await,
        ["s/Holiday 2020.mp4", "s/holiday-cut.mkv"]
    );
    assert_eq!(found(&f.lib, "day-c").await, ["s/holiday-cut.mkv"]);
    assert_eq!(
        found(&f.lib, "%").await,
        ["s/100% real.mp4"],
        "% is literal"
    );
    assert_eq!(found(&f.lib, "_").await, ["s/a_b.txt"], "_ is literal");
    assert_eq!(found(&f.lib, "a_b").await, ["s/a_b.txt"]);
    // A backslash cannot be in a MediaPath name: such files are not addressable, not indexed.
    assert_eq!(found(&f.lib, "\\").await, Vec::<String>::new());
    assert_eq!(found(&f.lib, "0%").await, ["s/100% real.mp4"]);
    assert_eq!(found(&f.lib, "\"hi\"").await, ["s/say \"hi\".mp3"]);
    assert_eq!(found(&f.lib, "OR AND").await, ["s/NEAR OR AND.mp4"]);
    assert_eq!(found(&f.lib, "ファイル").await, ["s/日本語のファイル.mp4"]);
    for hostile in [
        "\"",
        "*",
        "NEAR(a b)",
        "name:x",
        "-x",
        "a OR",
        "(",
        "^",
        "'; DROP TABLE media; --",
        "%%%",
        "\\\\",
        "{a b}",
        "x\u{202e}y",
    ] {
        let raw = RawList {
            q: Some(hostile),
            ..Default::default()
        };
        assert!(search(&f.lib, "", raw).await.is_ok(), "{hostile}");
    }
    let long = "x".repeat(201);
    let raw = RawList {
        q: Some(&long),
        ..Default::default()
    };
    assert!(matches!(
        search(&f.lib, "", raw).await,
        Err(LibraryError::BadQuery(_))
    ));
    assert_eq!(indexed(&f), 9, "the table survived");
}

#[tokio::test]
async fn search_ranks_exact_and_prefix_first_and_filters_by_type_and_folder() {
    let f = fx();
    for p in [
        "x/the cat.mp4",
        "x/cat.mp4",
        "x/catalog.txt",
        "y/cat.mp3",
        "y/cats/readme.txt",
    ] {
        put(&f.root, p, b"1");
    }
    f.lib.scan_now().await.unwrap();
    let raw = RawList {
        q: Some("cat"),
        ..Default::default()
    };
    let got: Vec<String> = search(&f.lib, "x", raw)
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(got, ["x/cat.mp4", "x/catalog.txt", "x/the cat.mp4"]);
    let raw = RawList {
        q: Some("cat"),
        class: Some("audio"),
        ..Default::default()
    };
    let got = search(&f.lib, "", raw).await.unwrap();
    assert_eq!(got.entries.len(), 1);
    assert_eq!(got.entries[0].path, "y/cat.mp3");
    let raw = RawList {
        q: Some("cat"),
        class: Some("dir"),
        ..Default::default()
    };
    assert_eq!(
        search(&f.lib, "", raw).await.unwrap().entries[0].path,
        "y/cats"
    );
    for bad in [
        RawList {
            class: Some("movies"),
            ..Default::default()
        },
        RawList {
            sort: Some("rowid"),
            ..Default::default()
        },
        RawList {
            page: Some("0"),
            ..Default::default()
        },
        RawList {
            page: Some("-1"),
            ..Default::default()
        },
        RawList {
            per_page: Some("1001"),
            ..Default::default()
        },
        RawList {
            per_page: Some("ten"),
            ..Default::default()
        },
    ] {
        assert!(matches!(
            search(&f.lib, "", bad).await,
            Err(LibraryError::BadQuery(_))
        ));
    }
}

#[tokio::test]
async fn sort_and_paging() {
    let f = fx();
    for i in 0..25u8 {
        put(
            &f.root,
            &format!("p/f{i:02}.bin"),
            &vec![0; usize::from(i) * 10 % 97],
        );
    }
    put(&f.root, "p/zdir/x", b"");
    f.lib.scan_now().await.unwrap();
    let lib = &f.lib;
    let page = |sort: Option<&'static str>, page: &'static str, per: &'static str| async move {
        search(
            lib,
            "p",
            RawList {
                sort,
                page: Some(page),
                per_page: Some(per),
                ..Default::default()
            },
        )
        .await
        .unwrap()
    };
    let p3 = page(None, "3", "10").await;
    assert_eq!((p3.total, p3.pages(), p3.entries.len()), (26, 3, 6));
    assert_eq!(
        page(None, "1", "10").await.entries[0].name,
        "zdir",
        "folders first"
    );
    let p9 = page(None, "9", "10").await;
    assert_eq!(
        (p9.total, p9.entries.len()),
        (26, 0),
        "past the end: empty, total kept"
    );
    let all = page(Some("-size"), "1", "100").await;
    let sizes: Vec<u64> = all.entries.iter().map(|e| e.size).collect();
    let mut sorted = sizes.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(sizes, sorted);
    let names: Vec<String> = page(Some("-name"), "1", "3")
        .await
        .entries
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["zdir", "f24.bin", "f23.bin"]);
    // Duration unknown for all: still a stable name order.
    let d = page(Some("duration"), "1", "2").await;
    assert_eq!(d.entries[0].name, "f00.bin");
}

#[tokio::test]
async fn search_with_an_explicit_sort_and_pages_past_the_end() {
    let f = fx();
    for i in 0..12u8 {
        put(
            &f.root,
            &format!("q/ab{i:02}.bin"),
            &vec![0; usize::from(i)],
        );
    }
    f.lib.scan_now().await.unwrap();
    for q in ["ab", "ab0"] {
        let raw = RawList {
            q: Some(q),
            sort: Some("-size"),
            per_page: Some("5"),
            page: Some("2"),
            ..Default::default()
        };
        let p = search(&f.lib, "", raw).await.unwrap();
        let want = if q == "ab" { (12, 5) } else { (10, 5) };
        assert_eq!((p.total, p.entries.len() as u64), want, "{q}");
        let sizes: Vec<u64> = p.entries.iter().map(|e| e.size).collect();
        let first = if q == "ab" { 6 } else { 4 };
        assert_eq!(
            sizes,
            (first - 4..=first).rev().collect::<Vec<u64>>(),
            "{q}"
        );
        let raw = RawList {
            q: Some(q),
            per_page: Some("5"),
            page: Some("9"),
            ..Default::default()
        };
        let p = search(&f.lib, "", raw).await.unwrap();
        assert_eq!((p.total, p.entries.len()), (want.0, 0), "{q} past the end");
    }
}

#[test]
fn cols_n_counts_the_selected_columns() {
    assert_eq!(super::query::COLS.split(',').count(), super::query::COLS_N);
}
