use super::*;

fn id(n: u32) -> String {
    format!("{n:064x}")
}

fn ann(n: u32, cluster: Option<&str>) -> Announcement {
    Announcement {
        instance: format!("node{n} ({}).{}", &id(n)[..8], "_streamhub._tcp.local."),
        id: id(n),
        name: format!("node{n}"),
        addresses: vec![IpAddr::from([10, 77, 0, n as u8])],
        port: 8443,
        api: Some(1),
        cluster: cluster.map(str::to_string),
        fingerprint: None,
    }
}

fn table() -> PeerTable {
    PeerTable::new(&id(0), Some("tag".into()), &["box.lan:8443".to_string()])
}

#[test]
fn own_other_cluster_and_bad_ids_are_skipped() {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let mut t = table();
    assert_eq!(
        t.announce(ann(0, Some("tag")), now, wall),
        Err(Skipped::Own)
    );
    assert_eq!(
        t.announce(ann(1, Some("other")), now, wall),
        Err(Skipped::OtherCluster)
    );
    assert_eq!(
        t.announce(ann(1, None), now, wall),
        Err(Skipped::OtherCluster)
    );
    let mut bad = ann(1, Some("tag"));
    bad.id = "ABC".into();
    assert_eq!(t.announce(bad, now, wall), Err(Skipped::BadId));
    let mut upper = ann(1, Some("tag"));
    upper.id = upper.id.to_uppercase().replace('0', "A");
    assert_eq!(t.announce(upper, now, wall), Err(Skipped::BadId));
    assert_eq!(t.mdns_len(), 0);
    // A node without a key sees only other keyless nodes.
    let mut keyless = PeerTable::new(&id(0), None, &[]);
    assert_eq!(keyless.announce(ann(1, None), now, wall), Ok(()));
    assert_eq!(
        keyless.announce(ann(2, Some("tag")), now, wall),
        Err(Skipped::OtherCluster)
    );
}

#[test]
fn a_known_id_is_updated_in_place() {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let mut t = table();
    t.announce(ann(1, Some("tag")), now, wall).expect("added");
    let mut again = ann(1, Some("tag"));
    again.addresses = vec![IpAddr::from([10, 77, 0, 99])];
    t.announce(again, now, wall).expect("updated");
    assert_eq!(t.mdns_len(), 1);
    let list = t.list(now);
    assert_eq!(list.len(), 2, "one mDNS peer and the static one");
    assert_eq!(list[0].addresses, vec!["10.77.0.99:8443".to_string()]);
    assert_eq!(list[0].source, Source::Mdns);
    assert!(list[0].online);
    assert_eq!(list[1].source, Source::Static);
    assert_eq!(list[1].id, None);
    assert_eq!(list[1].addresses, vec!["box.lan:8443".to_string()]);
}

#[test]
fn the_table_is_capped_and_keeps_the_peers_it_has() {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let mut t = table();
    for n in 1..=(MAX_PEERS as u32 + 200) {
        let r = t.announce(ann(n, Some("tag")), now, wall);
        assert_eq!(r.is_ok(), n as usize <= MAX_PEERS, "{n}");
    }
    assert_eq!(t.mdns_len(), MAX_PEERS);
    assert_eq!(t.skipped_full(), 200);
    // The first ones are still there, and still update.
    t.announce(ann(1, Some("tag")), now, wall)
        .expect("known id");
    assert!(t
        .list(now)
        .iter()
        .any(|p| p.id.as_deref() == Some(&id(1)[..])));
    // Huge announcements are cut down to size.
    let mut t = table();
    let mut big = ann(1, Some("tag"));
    big.name = "x".repeat(10_000) + "\u{7}";
    big.addresses = (0..=255).map(|i| IpAddr::from([10, 0, 0, i])).collect();
    t.announce(big, now, wall).expect("added");
    let p = &t.list(now)[0];
    assert_eq!(p.name.len(), MAX_NAME);
    assert_eq!(p.addresses.len(), MAX_ADDRESSES);
}

#[test]
fn withdrawn_peers_go_offline_then_expire_and_free_their_slot() {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let mut t = table();
    for n in 1..=MAX_PEERS as u32 {
        t.announce(ann(n, Some("tag")), now, wall).expect("added");
    }
    t.withdraw(&ann(1, Some("tag")).instance, now);
    let p = t
        .list(now)
        .into_iter()
        .find(|p| p.id.as_deref() == Some(&id(1)[..]))
        .expect("still listed");
    assert!(!p.online);
    // Just gone: it keeps its place for a while (it may be back in a moment) ...
    assert_eq!(
        t.announce(ann(500, Some("tag")), now, wall),
        Err(Skipped::Full)
    );
    // ... then a newcomer takes it; then the table is all online and full.
    let soon = now + GIVE_WAY_AFTER;
    t.announce(ann(500, Some("tag")), soon, wall)
        .expect("the offline entry gives way");
    assert!(t
        .list(soon)
        .iter()
        .all(|p| p.id.as_deref() != Some(&id(1)[..])));
    assert_eq!(
        t.announce(ann(501, Some("tag")), soon, wall),
        Err(Skipped::Full)
    );
    assert_eq!(t.mdns_len(), MAX_PEERS);
    // Offline entries are forgotten once their time is up.
    t.withdraw(&ann(2, Some("tag")).instance, now);
    let later = now + OFFLINE_TTL;
    assert!(t
        .list(later)
        .iter()
        .all(|p| p.id.as_deref() != Some(&id(2)[..])));
    t.expire(later);
    assert_eq!(t.mdns_len(), MAX_PEERS - 1);
}

#[test]
fn a_peer_announced_again_is_online_again() {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let later = now + OFFLINE_TTL;
    let mut t = table();
    t.announce(ann(1, Some("tag")), now, wall).expect("added");
    t.all_offline(now);
    assert!(!t.list(now)[0].online);
    t.announce(ann(1, Some("tag")), now, wall).expect("again");
    assert!(
        t.list(later)[0].online,
        "re-announced entries do not expire"
    );
}

#[test]
fn after_a_responder_restart_a_flood_does_not_take_the_real_peers_places() {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let mut t = table();
    for n in 1..=MAX_PEERS as u32 {
        t.announce(ann(n, Some("tag")), now, wall).expect("added");
    }
    t.all_offline(now);
    // A flood right after the restart finds no room; the real peer answers again ...
    assert_eq!(
        t.announce(ann(999, Some("tag")), now, wall),
        Err(Skipped::Full)
    );
    t.announce(ann(1, Some("tag")), now, wall).expect("back");
    // ... and once the others have stayed silent, newcomers take their places, not its.
    let soon = now + GIVE_WAY_AFTER;
    for n in 1000..1000 + MAX_PEERS as u32 - 1 {
        t.announce(ann(n, Some("tag")), soon, wall).expect("room");
    }
    assert_eq!(
        t.announce(ann(2000, Some("tag")), soon, wall),
        Err(Skipped::Full)
    );
    assert!(t
        .list(soon)
        .iter()
        .any(|p| p.id.as_deref() == Some(&id(1)[..]) && p.online));
    assert_eq!(t.mdns_len(), MAX_PEERS);
}

#[test]
fn names_lose_control_and_reordering_characters() {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let mut t = table();
    let mut a = ann(1, Some("tag"));
    a.name = "\u{202e}evil\u{202c}\u{1b}[2J\u{200b}box".into();
    t.announce(a, now, wall).unwrap();
    assert_eq!(t.list(now)[0].name, "evil[2Jbox");
}

#[test]
fn a_proved_address_outlives_announcements_that_claim_another() {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let mut t = table();
    t.announce(ann(2, Some("tag")), now, wall).unwrap();
    t.proved(&id(2), "10.77.0.2:8443");
    // A spoof: node 2's id with the attacker's address (its cache flush left nothing else).
    let mut spoof = ann(2, Some("tag"));
    spoof.addresses = vec![IpAddr::from([10, 77, 0, 10])];
    t.announce(spoof, now, wall).unwrap();
    let listed = t.list(now);
    assert_eq!(listed[0].id.as_deref(), Some(id(2).as_str()));
    assert_eq!(listed[0].addresses, ["10.77.0.2:8443", "10.77.0.10:8443"]);
    // Proved where it is announced: listed once, first.
    t.proved(&id(2), "10.77.0.10:8443");
    assert_eq!(t.list(now)[0].addresses, ["10.77.0.10:8443"]);
    // An id not in the table is not added by a proof.
    t.proved(&id(3), "10.77.0.3:8443");
    assert_eq!(t.list(now).len(), 2);
}
