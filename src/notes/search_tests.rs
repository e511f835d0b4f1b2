//! Search and visibility tests (SQLite): FTS5 ranking, snippets, prefixes, hostile
//! input, filters, paging, visibility everywhere, query plans, and 10k notes.

use super::testutil::{conn, content, public, store, user};
use super::*;

fn q(text: &str) -> SearchQuery {
    SearchQuery {
        q: text.to_string(),
        ..SearchQuery::default()
    }
}

/// The highlighted words of a hit's snippet.
fn marked(hit: &SearchHit) -> Vec<&str> {
    hit.snippet
        .iter()
        .flatten()
        .filter(|f| f.hit)
        .map(|f| f.text.as_str())
        .collect()
}

fn titles(page: &SearchPage) -> Vec<&str> {
    page.items.iter().map(|h| h.title.as_str()).collect()
}

#[test]
fn sqlite_has_fts5_and_the_migrations_are_valid() {
    let c = conn();
    let fts5: i64 = c
        .query_row("SELECT sqlite_compileoption_used('ENABLE_FTS5')", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(fts5, 1);
    crate::db::migrations::migrations().validate().unwrap();
    let version: usize = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        version,
        crate::db::migrations::FILES.len(),
        "conn() is fully migrated"
    );
}

#[test]
fn ranked_search_with_prefix_and_snippet() {
    let (mut c, s) = (conn(), store());
    let ann = user(&c, "ann");
    s.create(
        &mut c,
        public("Cooking", "a recipe that mentions streaming once"),
        &ann,
    )
    .unwrap();
    s.create(
        &mut c,
        public("Streaming setup", "how the box streams media"),
        &ann,
    )
    .unwrap();
    s.create(&mut c, public("Unrelated", "nothing to see"), &ann)
        .unwrap();
    let page = s.search(&c, &q("stream*"), None).unwrap();
    assert_eq!(
        titles(&page),
        ["Streaming setup", "Cooking"],
        "title matches rank first"
    );
    let hit = &page.items[1];
    assert_eq!(marked(hit), ["streaming"]);
    assert!(
        page.items[0].score.unwrap() < hit.score.unwrap(),
        "bm25: lower is better"
    );
    assert_eq!(titles(&s.search(&c, &q("STRE*"), None).unwrap()).len(), 2);
    assert_eq!(
        titles(&s.search(&c, &q("recipe streaming"), None).unwrap()),
        ["Cooking"]
    );
    assert!(
        s.search(&c, &q("stre"), None).unwrap().items.is_empty(),
        "no prefix without *"
    );
}

#[test]
fn hostile_queries_never_error() {
    let (mut c, s) = (conn(), store());
    let ann = user(&c, "ann");
    s.create(
        &mut c,
        public("and or", "a \"quoted\" (paren) body: col:x NEAR(a b)"),
        &ann,
    )
    .unwrap();
    for text in [
        "\"", "AND OR (", "NEAR(", "*", "col:x", "'", "-x", "^a", "a\"b", "(((", "x OR", "\u{0}",
        "title:*", "\"\"*",
    ] {
        let res = s.search(&c, &q(text), None);
        assert!(res.is_ok(), "{text:?}: {res:?}");
    }
    assert_eq!(s.search(&c, &q("AND OR ("), None).unwrap().items.len(), 1);
    let mut many = q("x");
    many.tags = (0..17).map(|i| i.to_string()).collect();
    assert!(matches!(
        s.search(&c, &many, None),
        Err(NoteError::Invalid { field: "tag", .. })
    ));
    assert_eq!(s.search(&c, &q("\"quoted\""), None).unwrap().items.len(), 1);
}

#[test]
fn filters_paging_deletes_and_reindexing() {
    let (mut c, s) = (conn(), store());
    let ann = user(&c, "ann");
    let bob = user(&c, "bob");
    let mut ids = Vec::new();
    for i in 0..5 {
        let tags: &[&str] = if i % 2 == 0 {
            &["even", "all"]
        } else {
            &["all"]
        };
        let who = if i < 3 { &ann } else { &bob };
        ids.push(
            s.create(
                &mut c,
                content(
                    &format!("note {i}"),
                    "common words",
                    tags,
                    Visibility::Public,
                ),
                who,
            )
            .unwrap(),
        );
    }
    let mut tq = q("common");
    tq.tags = vec!["EVEN ".into()];
    assert_eq!(s.search(&c, &tq, None).unwrap().items.len(), 3);
    tq.tags.push("all".into());
    assert_eq!(s.search(&c, &tq, None).unwrap().items.len(), 3);
    let mut aq = q("");
    aq.author = Some("BOB".into());
    assert_eq!(
        titles(&s.search(&c, &aq, None).unwrap()),
        ["note 4", "note 3"],
        "listing: newest first"
    );
    let mut vq = q("common");
    vq.visibility = Some(Visibility::Private);
    assert!(s.search(&c, &vq, None).unwrap().items.is_empty());

    let mut pq = q("common");
    pq.per_page = 2;
    let (p1, p3) = (s.search(&c, &pq, None).unwrap(), {
        pq.page = 3;
        s.search(&c, &pq, None).unwrap()
    });
    assert!(p1.has_more && p1.items.len() == 2);
    assert!(!p3.has_more && p3.items.len() == 1);

    let n0 = &ids[0];
    let edit = Changes {
        body: Some("fresh vocabulary".into()),
        ..Changes::default()
    };
    let n0b = s.update(&mut c, &n0.id, &n0.rev, edit, &ann).unwrap();
    assert_eq!(
        titles(&s.search(&c, &q("vocabulary"), None).unwrap()),
        ["note 0"]
    );
    assert_eq!(
        s.search(&c, &q("common"), None).unwrap().items.len(),
        4,
        "old text unindexed"
    );
    s.delete(&mut c, &n0.id, &n0b.rev, &ann).unwrap();
    assert!(s
        .search(&c, &q("vocabulary"), None)
        .unwrap()
        .items
        .is_empty());
    assert_eq!(s.search(&c, &q(""), None).unwrap().items.len(), 4);
}

#[test]
fn private_notes_stay_out_of_search_tags_and_analytics() {
    let (mut c, s) = (conn(), store());
    let ann = user(&c, "ann");
    let bob = user(&c, "bob");
    let p = s
        .create(
            &mut c,
            content(
                "secret plan",
                "zebra",
                &["hidden", "shared"],
                Visibility::Private,
            ),
            &ann,
        )
        .unwrap();
    s.create(
        &mut c,
        content("open plan", "zebra", &["shared"], Visibility::Public),
        &bob,
    )
    .unwrap();
    s.view(&mut c, &p.id, Some(&ann)).unwrap();
    for viewer in [None, Some(bob.id)] {
        assert_eq!(
            titles(&s.search(&c, &q("zebra"), viewer).unwrap()),
            ["open plan"]
        );
        assert_eq!(
            titles(&s.search(&c, &q(""), viewer).unwrap()),
            ["open plan"]
        );
        let tags = s.tags(&c, viewer).unwrap();
        assert_eq!(
            tags,
            [TagCount {
                tag: "shared".into(),
                count: 1
            }]
        );
        let a = s.analytics(&c, viewer, 7, 10).unwrap();
        assert!(a.most_viewed.is_empty());
        assert_eq!(a.most_edited.len(), 1);
        assert!(a.top_contributors.iter().all(|c| c.name == "bob"));
        assert!(a
            .events_per_day
            .iter()
            .all(|d| d.kind == "created" && d.count == 1));
        assert!(a.top_tags.iter().all(|t| t.tag != "hidden"));
    }
    assert_eq!(
        s.search(&c, &q("zebra"), Some(ann.id)).unwrap().items.len(),
        2
    );
    let tags = s.tags(&c, Some(ann.id)).unwrap();
    assert_eq!(
        tags[0],
        TagCount {
            tag: "shared".into(),
            count: 2
        }
    );
    assert_eq!(
        s.analytics(&c, Some(ann.id), 7, 10).unwrap().most_viewed[0].id,
        p.id
    );
}

/// The attack pass's finding: a note made private kept its past views in everyone's events
/// per day. Its events now count where the note is now, both ways.
#[test]
fn analytics_and_filters_use_their_indexes() {
    let c = conn();
    for (sql, index) in stats::PLANNED {
        let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let plan: Vec<String> = st
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let plan = plan.join(" | ");
        assert!(plan.contains(index), "{sql}\n  plan: {plan}");
        assert!(
            !plan.contains("SCAN notes ") || plan.contains("USING INDEX"),
            "{plan}"
        );
    }
}

#[test]
fn ten_thousand_notes_still_find_the_right_top_hit() {
    let (mut c, s) = (conn(), store());
    let ann = user(&c, "ann");
    let words = [
        "media", "stream", "garden", "kitchen", "router", "backup", "invoice", "holiday",
    ];
    for i in 0..10_000usize {
        let body = format!(
            "{} {} {} note number {i}",
            words[i % 8],
            words[(i / 8) % 8],
            words[(i / 64) % 8]
        );
        let title = format!("{} {}", words[(i * 7) % 8], i);
        s.create(
            &mut c,
            content(&title, &body, &[words[i % 8]], Visibility::Public),
            &ann,
        )
        .unwrap();
    }
    s.create(
        &mut c,
        public("Zanzibar holiday", "ferry times and the router password"),
        &ann,
    )
    .unwrap();
    let page = s.search(&c, &q("zanzi* holiday"), None).unwrap();
    assert_eq!(page.items[0].title, "Zanzibar holiday");
    let page = s.search(&c, &q("router"), None).unwrap();
    assert_eq!(page.items.len(), 20);
    assert!(page.has_more);
    let mut tagged = q("garden");
    tagged.tags = vec!["media".into()];
    assert!(s
        .search(&c, &tagged, None)
        .unwrap()
        .items
        .iter()
        .all(|h| h.tags == ["media"]));
    assert_eq!(s.tags(&c, None).unwrap().len(), 8);
    assert_eq!(s.analytics(&c, None, 1, 5).unwrap().most_edited.len(), 5);
}

#[test]
fn common_words_rank_title_hits_first_and_rare_words_use_bm25() {
    let (mut c, s) = (conn(), store());
    let ann = user(&c, "ann");
    s.create(
        &mut c,
        public("Printer manual", "the common printer needs toner"),
        &ann,
    )
    .unwrap();
    for i in 0..600 {
        s.create(
            &mut c,
            public(&format!("note {i}"), &format!("a common word in note {i}")),
            &ann,
        )
        .unwrap();
    }
    s.create(&mut c, public("Common room", "keys are kept here"), &ann)
        .unwrap();
    // "common" is in every note: the cheap ranking, title hits first, then newest.
    let page = s.search(&c, &q("common"), None).unwrap();
    assert_eq!(page.items[0].title, "Common room");
    assert_eq!(page.items[1].title, "note 599");
    assert!(page.items[0].score.unwrap() < page.items[1].score.unwrap());
    assert_eq!(marked(&page.items[1]), ["common"]);
    // "common printer": one common word is enough for the cheap ranking; the AND still holds.
    let page = s.search(&c, &q("common printer"), None).unwrap();
    assert_eq!(titles(&page), ["Printer manual"]);
    // A rare word is ranked by bm25 (a real score) with the same results.
    let page = s.search(&c, &q("toner"), None).unwrap();
    assert_eq!(titles(&page), ["Printer manual"]);
    assert!(page.items[0].score.unwrap() < 0.0 && page.items[0].score.unwrap() > -100.0);
    // Paging through the cheap ranking is stable and complete.
    let mut seen = std::collections::HashSet::new();
    for p in 1..=31 {
        let mut query = q("common");
        query.page = p;
        let page = s.search(&c, &query, None).unwrap();
        for h in &page.items {
            assert!(seen.insert(h.id.clone()), "{} twice", h.title);
        }
        assert_eq!(page.has_more, p < 31, "page {p}");
    }
    assert_eq!(seen.len(), 602);
}
