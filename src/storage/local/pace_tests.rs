//! The pace's rules, driven with made-up times (no clock, no sockets: exact on a loaded box).
use super::*;

const K: u64 = 1024;
const MIB: u64 = 1024 * K;
const BIG: u64 = 1 << 40;

/// One consumer turn at `t`: it asks, the chunk is read (the budget grants every grown
/// chunk) and goes out at once. Returns the chunk's size.
fn turn(p: &mut Pace, t: Instant) -> u64 {
    p.asked(t);
    let (n, _) = p.next(t, BIG, false, Some);
    p.out(t, n as u64);
    n as u64
}

/// A pace 100 ms into its stream (past the small start), with one chunk out at the time
/// returned.
fn past_the_start() -> (Pace, Instant) {
    let t = Instant::now() + ms(100);
    let mut p = Pace::new(64 * K);
    turn(&mut p, t);
    (p, t)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn a_stream_starts_small_then_grows_while_its_consumer_keeps_up() {
    let t0 = Instant::now();
    let mut p = Pace::new(64 * K);
    // A range of one chunk or less is one read, not a small start.
    let mut one = Pace::new(64 * K);
    assert_eq!(one.next(t0, 64 * K, false, Some).0 as u64, 64 * K);
    // Quarter chunks for the first 50 ms, even for a consumer that asks at once.
    let mut t = t0;
    for _ in 0..10 {
        assert_eq!(turn(&mut p, t), 16 * K, "{:?} after the start", t - t0);
        t += ms(4);
    }
    t = t0 + ms(51);
    assert_eq!(
        turn(&mut p, t),
        64 * K,
        "neither fast nor slow: the base size"
    );
    // Asking again within 2 ms doubles the chunk, up to 1 MiB.
    let sizes: Vec<u64> = (1..=6).map(|i| turn(&mut p, t + ms(i))).collect();
    assert_eq!(sizes, [128 * K, 256 * K, 512 * K, MIB, MIB, MIB]);
    // Without the budget's lease a fast consumer reads the base size.
    p.asked(t + ms(7));
    assert_eq!(
        p.next(t + ms(7), BIG, false, |_| None::<()>).0 as u64,
        64 * K
    );
}

#[test]
fn a_slow_turn_keeps_reads_small_for_a_second_unless_8_mib_go_out_quickly() {
    let (mut p, t0) = past_the_start();
    let mut t = t0;
    // A consumer that took 60 ms (its socket was full): quarter chunks, also when it then
    // asks quickly, for a second, as long as it has taken less than 8 MiB since.
    t += ms(60);
    let mut taken = 0;
    while taken + 16 * K < 8 * MIB {
        t += Duration::from_micros(100);
        let n = turn(&mut p, t);
        assert_eq!(n, 16 * K, "after {taken} bytes");
        taken += n;
    }
    assert!(t - t0 < ms(1000));
    // The 8 MiB went out within the second: a fast client that stalled once. It grows.
    let mut grew = 0;
    for _ in 0..4 {
        t += Duration::from_micros(100);
        let n = turn(&mut p, t);
        if n > 16 * K {
            grew = n;
            break;
        }
    }
    assert!(grew > 16 * K, "still quarter chunks after 8 MiB");
}

#[test]
fn a_slow_player_never_grows() {
    // A player at ~200 KB/s behind a 4 MiB socket buffer: bursts of a third of it taken
    // quickly, then a slow turn. Its reads stay small for as long as it plays.
    let mut t = Instant::now();
    let mut p = Pace::new(64 * K);
    for _ in 0..60 {
        t += ms(3000);
        let mut burst = 0;
        while burst < 1400 * K {
            let n = turn(&mut p, t);
            assert_eq!(n, 16 * K, "a player's burst grew");
            burst += n;
            t += Duration::from_micros(100);
        }
    }
}

#[test]
fn a_slow_disk_is_not_a_slow_consumer() {
    let (mut p, mut t) = past_the_start();
    // The consumer asks 1 ms after the last chunk went out; the disk read takes 80 ms.
    // The read-ahead started when it came back is not a turn and grows nothing.
    p.asked(t + ms(1));
    let (ahead, _) = p.next(t + ms(80), BIG, true, Some);
    assert_eq!(ahead as u64, 64 * K);
    t += ms(80);
    p.out(t, ahead as u64);
    // The consumer asked quickly: a fast turn, whatever the disk took.
    p.asked(t + ms(1));
    let (n, _) = p.next(t + ms(90), BIG, false, Some);
    assert_eq!(
        n as u64,
        128 * K,
        "the disk's 80 ms counted as the consumer's"
    );
}
