//! Accounts over a real database file: users and passwords, sessions, tokens, deletion.

use super::*;
use crate::db::Db;

fn accounts() -> (tempfile::TempDir, Accounts) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    (dir, Accounts::new(db))
}

#[test]
fn users_passwords_and_sessions() {
    let (_d, a) = accounts();
    let bob = a.add_user("bob", "correct horse", Role::Member).unwrap();
    assert!(matches!(
        a.add_user("BOB", "whatever12", Role::Member),
        Err(AuthError::UserExists(_))
    ));
    assert_eq!(a.verify("bob", "correct horse").unwrap().name, "bob");
    assert!(matches!(
        a.verify("bob", "wrong"),
        Err(AuthError::BadCredentials)
    ));
    assert!(matches!(
        a.verify("nobody", "x"),
        Err(AuthError::BadCredentials)
    ));
    let s = a.create_session(&bob, 60).unwrap();
    assert_eq!(a.session(&s.token).unwrap().unwrap().1, s.csrf);
    a.set_password("bob", "battery staple").unwrap();
    assert!(
        a.session(&s.token).unwrap().is_none(),
        "password change ends sessions"
    );
    assert!(a.verify("bob", "battery staple").is_ok());
}

#[test]
fn validation() {
    let (_d, a) = accounts();
    for name in ["", "a b", "x/y", &"n".repeat(65)] {
        assert!(matches!(
            a.add_user(name, "longenough", Role::Member),
            Err(AuthError::Invalid { field: "name", .. })
        ));
    }
    assert!(matches!(
        a.add_user("ok", "short", Role::Member),
        Err(AuthError::Invalid {
            field: "password",
            ..
        })
    ));
}

#[test]
fn tokens_expire_and_are_scoped() {
    let (_d, a) = accounts();
    let admin = a.add_user("root", "password1", Role::Admin).unwrap();
    let bob = a.add_user("bob", "password2", Role::Member).unwrap();
    let (t, secret) = a.create_token(&bob, "script", None).unwrap();
    assert_eq!(a.token_user(&secret).unwrap().unwrap().name, "bob");
    assert!(a.token_user("sht_nope").unwrap().is_none());
    let (_, expired) = a.create_token(&bob, "old", Some(-1)).unwrap();
    assert!(a.token_user(&expired).unwrap().is_none());
    assert_eq!(a.list_tokens(Some(admin.id)).unwrap().len(), 0);
    assert_eq!(a.list_tokens(None).unwrap().len(), 2);
    let (_, admin_secret) = a.create_token(&admin, "a", None).unwrap();
    let admin_tok = a.list_tokens(Some(admin.id)).unwrap()[0].id;
    assert!(matches!(
        a.delete_token(admin_tok, &bob),
        Err(AuthError::NotFound)
    ));
    assert!(a.token_user(&admin_secret).unwrap().is_some());
    a.delete_token(t.id, &admin).unwrap();
    assert!(a.token_user(&secret).unwrap().is_none());
}

#[test]
fn last_admin_stays_and_delete_cascades() {
    let (_d, a) = accounts();
    a.add_user("root", "password1", Role::Admin).unwrap();
    let bob = a.add_user("bob", "password2", Role::Member).unwrap();
    let (_, secret) = a.create_token(&bob, "t", None).unwrap();
    assert!(matches!(a.delete_user("root"), Err(AuthError::LastAdmin)));
    a.delete_user("bob").unwrap();
    assert!(a.token_user(&secret).unwrap().is_none());
    assert!(matches!(
        a.delete_user("bob"),
        Err(AuthError::NoSuchUser(_))
    ));
}

#[test]
fn change_user_keeps_the_last_admin_and_ends_other_sessions() {
    use super::UserChange;
    let (_d, a) = accounts();
    let root = a.add_user("root", "password1", Role::Admin).unwrap();
    let bob = a.add_user("bob", "password2", Role::Member).unwrap();
    let demote = || UserChange {
        role: Some(Role::Member),
        ..UserChange::default()
    };
    assert!(matches!(
        a.change_user("root", demote()),
        Err(AuthError::LastAdmin)
    ));
    assert_eq!(a.list_users().unwrap()[1].role, Role::Admin);
    let promoted = a
        .change_user(
            "BOB",
            UserChange {
                role: Some(Role::Admin),
                ..UserChange::default()
            },
        )
        .unwrap();
    assert_eq!(
        (promoted.name.as_str(), promoted.role),
        ("bob", Role::Admin)
    );
    // With two admins, one may step down.
    assert_eq!(a.change_user("root", demote()).unwrap().role, Role::Member);

    let kept = a.create_session(&bob, 60).unwrap();
    let ended = a.create_session(&bob, 60).unwrap();
    let (_, tok) = a.create_token(&bob, "t", None).unwrap();
    let other = a.create_session(&root, 60).unwrap();
    let short = UserChange {
        password: Some("short".into()),
        ..UserChange::default()
    };
    assert!(matches!(
        a.change_user("bob", short),
        Err(AuthError::Invalid {
            field: "password",
            ..
        })
    ));
    assert!(a.session(&ended.token).unwrap().is_some());
    a.change_user(
        "bob",
        UserChange {
            password: Some("new password".into()),
            keep_session: Some(kept.token.clone()),
            ..UserChange::default()
        },
    )
    .unwrap();
    assert!(a.session(&kept.token).unwrap().is_some());
    assert!(a.session(&ended.token).unwrap().is_none());
    assert!(a.session(&other.token).unwrap().is_some());
    assert!(a.token_user(&tok).unwrap().is_some(), "tokens are kept");
    assert!(a.verify("bob", "new password").is_ok());
    assert!(matches!(
        a.verify("bob", "password2"),
        Err(AuthError::BadCredentials)
    ));
    assert!(matches!(
        a.change_user("nobody", UserChange::default()),
        Err(AuthError::NoSuchUser(_))
    ));
}
