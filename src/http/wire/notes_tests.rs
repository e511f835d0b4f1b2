//! Golden bytes of the notes answers: what clients have always received.

use super::*;
use crate::notes::{Content, EventKind, Hlc, Visibility};

fn json(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap()
}

fn stamp() -> Hlc {
    Hlc::new(1_700_000_000_000, 2, "n1")
}

#[test]
fn note_bytes() {
    let n = Note {
        id: "abc".into(),
        rev: "r2".into(),
        title: "T <b>".into(),
        body: "body".into(),
        tags: vec!["x".into()],
        visibility: Visibility::Public,
        deleted: false,
        author: "ann".into(),
        updated: stamp(),
        created_at: 1,
        changed_at: 2,
        conflicts: vec!["r1b".into()],
        contributors: vec![Contributor {
            name: "ann".into(),
            revisions: 2,
        }],
        views: 3,
        edits: 4,
        owner_id: Some(9),
        owner: Some("bea".into()),
    };
    assert_eq!(
        json(&NoteJson::from(&n)),
        concat!(
            r#"{"id":"abc","rev":"r2","title":"T <b>","body":"body","tags":["x"],"#,
            r#""visibility":"public","deleted":false,"author":"ann","owner":"bea","#,
            r#""updated":"2023-11-14T22:13:20.000Z","created_at":"1970-01-01T00:00:00.001Z","#,
            r#""changed_at":"1970-01-01T00:00:00.002Z","#,
            r#""conflicts":["r1b"],"contributors":[{"name":"ann","revisions":2}],"#,
            r#""views":3,"edits":4}"#
        ),
        "owner_id never leaves the server; times are RFC 3339, never the HLC"
    );
}

#[test]
fn search_page_bytes() {
    let hit = SearchHit {
        id: "abc".into(),
        rev: "r2".into(),
        title: "T".into(),
        tags: vec![],
        visibility: Visibility::Private,
        author: "ann".into(),
        owner: None,
        updated: stamp(),
        changed_at: 5,
        conflicts: 0,
        snippet: Some(vec![
            Fragment {
                text: "a ".into(),
                hit: false,
            },
            Fragment {
                text: "word".into(),
                hit: true,
            },
        ]),
        score: Some(-1.5),
    };
    let page = SearchPage {
        items: vec![hit.clone()],
        page: 1,
        per_page: 20,
        has_more: false,
    };
    assert_eq!(
        json(&SearchPageJson::from(&page)),
        concat!(
            r#"{"has_more":false,"items":[{"author":"ann","#,
            r#""changed_at":"1970-01-01T00:00:00.005Z","conflicts":0,"#,
            r#""id":"abc","owner":null,"rev":"r2","score":-1.5,"snippet":[{"hit":false,"text":"a "},"#,
            r#"{"hit":true,"text":"word"}],"tags":[],"title":"T","#,
            r#""updated":"2023-11-14T22:13:20.000Z","visibility":"private"}],"#,
            r#""page":1,"per_page":20}"#
        )
    );
    let listed = SearchHit {
        snippet: None,
        score: None,
        ..hit
    };
    let j = json(&SearchHitJson::from(&listed));
    assert!(j.contains(r#""score":null,"snippet":null"#), "{j}");
}

#[test]
fn history_and_revision_bytes() {
    let info = RevisionInfo {
        rev: "r2".into(),
        parents: vec!["r1".into()],
        gen: 2,
        hlc: stamp(),
        title: "T".into(),
        visibility: Visibility::Public,
        deleted: false,
        author: "ann".into(),
        leaf: true,
        current: true,
    };
    assert_eq!(
        json(&RevisionsJson {
            revisions: vec![RevisionInfoJson::from(&info)]
        }),
        concat!(
            r#"{"revisions":[{"at":"2023-11-14T22:13:20.000Z","author":"ann","current":true,"#,
            r#""deleted":false,"gen":2,"leaf":true,"parents":["r1"],"rev":"r2","#,
            r#""title":"T","visibility":"public"}]}"#
        )
    );
    let content = Content {
        title: "T".into(),
        body: "B".into(),
        tags: vec!["t".into()],
        visibility: Visibility::Private,
    };
    let r = Revision::build("abc", &[], content, false, stamp(), "ann");
    assert_eq!(
        json(&RevisionJson::from(&r)),
        format!(
            concat!(
                r#"{{"at":"2023-11-14T22:13:20.000Z","author":"ann","body":"B","deleted":false,"#,
                r#""gen":1,"note_id":"abc","parents":[],"rev":"{}","#,
                r#""tags":["t"],"title":"T","visibility":"private"}}"#
            ),
            r.rev
        )
    );
}

#[test]
fn events_tags_and_analytics_bytes() {
    let e = Event {
        id: 4,
        kind: EventKind::SyncedOut,
        rev: Some("r2".into()),
        actor: None,
        at: 9,
    };
    assert_eq!(
        json(&EventsJson {
            events: vec![EventJson::from(&e)]
        }),
        r#"{"events":[{"actor":null,"at":"1970-01-01T00:00:00.009Z","id":4,"kind":"synced_out","rev":"r2"}]}"#
    );
    let tag = TagCount {
        tag: "x".into(),
        count: 2,
    };
    assert_eq!(
        json(&TagsJson {
            tags: vec![TagCountJson::from(&tag)]
        }),
        r#"{"tags":[{"count":2,"tag":"x"}]}"#
    );
    let a = Analytics {
        days: 30,
        events_per_day: vec![DayCount {
            day: "2024-01-02".into(),
            kind: "viewed".into(),
            count: 3,
        }],
        most_viewed: vec![NoteCount {
            id: "abc".into(),
            title: "T".into(),
            count: 3,
        }],
        most_edited: vec![],
        top_tags: vec![tag],
        top_contributors: vec![Contributor {
            name: "ann".into(),
            revisions: 1,
        }],
        searches: 7,
    };
    assert_eq!(
        json(&AnalyticsJson::from(&a)),
        concat!(
            r#"{"days":30,"events_per_day":[{"count":3,"day":"2024-01-02","kind":"viewed"}],"#,
            r#""most_edited":[],"most_viewed":[{"count":3,"id":"abc","title":"T"}],"#,
            r#""searches":7,"top_contributors":[{"name":"ann","revisions":1}],"#,
            r#""top_tags":[{"count":2,"tag":"x"}]}"#
        )
    );
}
