//! Whether a TCP peer is reading what we send, from the bytes it has acknowledged
//! (`TCP_INFO`), for the stall scan (`stall`). A frame's age alone misjudges slow players:
//! Linux wakes a writer only once a third of the send buffer is free, so a player reading
//! 200 KB/s through a few MB of buffer leaves a frame waiting for seconds at a time, and an
//! attack pass got such a player closed as "stopped reading".
use std::os::fd::RawFd;
use std::sync::{Mutex, PoisonError};

/// Taking at least this many bytes a second counts as reading.
pub const MIN_RATE: u64 = 16 * 1024;
/// A judgement compares two samples at least this far apart (ms). A reader's count grows in
/// steps: its kernel announces room only once about two segments are free, and a loopback
/// segment is 64 KiB, so a 200 KB/s reader showed no progress in some half seconds.
pub const WINDOW_MS: u64 = 2000;

/// Bytes of ours the peer has acknowledged; `None` for a socket that is not TCP or is gone.
#[allow(unsafe_code)]
pub fn bytes_acked(fd: RawFd) -> Option<u64> {
    #[cfg(all(target_os = "linux", any(target_env = "gnu", target_env = "musl")))]
    {
        // SAFETY: getsockopt writes at most `len` bytes into `info`, a plain C struct owned
        // here; a closed or foreign descriptor makes it fail, which is handled.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        // Kernels before 4.1 do not fill the field in.
        let wanted = std::mem::offset_of!(libc::tcp_info, tcpi_bytes_acked) + 8;
        (r == 0 && len as usize >= wanted).then_some(info.tcpi_bytes_acked)
    }
    #[cfg(not(all(target_os = "linux", any(target_env = "gnu", target_env = "musl"))))]
    {
        let _ = fd;
        None
    }
}

/// The last sample of one connection: (bytes acknowledged, when, in `stall::now_ms`).
#[derive(Default)]
pub struct Progress {
    sample: Mutex<Option<(u64, u64)>>,
}

impl Progress {
    /// Whether the peer is reading, given `acked` now. True while it cannot be judged yet (no
    /// sample, or one younger than `WINDOW_MS`); with no figure (`None`) false, so the frame's
    /// age decides alone.
    pub fn reading(&self, acked: Option<u64>, now: u64) -> bool {
        let Some(acked) = acked else {
            return false;
        };
        let mut sample = self.sample.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((before, at)) = *sample else {
            *sample = Some((acked, now));
            return true;
        };
        let elapsed = now.saturating_sub(at);
        if elapsed < WINDOW_MS {
            return true;
        }
        // A new window also for a peer judged not reading and not closed (the scan closes one
        // per turn): keeping its sample made every such connection closable at once, the
        // scans closed them in one burst, a reconnecting attacker's connections all came back
        // together and matured together, and a probe waited for the next wave: 3.0 s against
        // 1.5 s in the 40-address HTTP/2 attack (test_abuse_stall's third case).
        *sample = Some((acked, now));
        acked.saturating_sub(before).saturating_mul(1000) >= MIN_RATE.saturating_mul(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    /// A connected pair whose server side has filled everything the client will take.
    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (server, client)
    }

    fn fill(s: &mut TcpStream) {
        let chunk = vec![7u8; 64 * 1024];
        while s.write(&chunk).is_ok() {}
    }

    #[test]
    fn a_peer_that_reads_nothing_is_told_from_one_that_reads() {
        let (mut idle, _idle_client) = pair();
        let (mut busy, mut busy_client) = pair();
        fill(&mut idle);
        fill(&mut busy);
        let reader = std::thread::spawn(move || {
            // ~1 MB/s: far under what the socket could do, far over MIN_RATE.
            let mut buf = vec![0u8; 16 * 1024];
            busy_client
                .set_read_timeout(Some(Duration::from_secs(3)))
                .unwrap();
            for _ in 0..150 {
                if busy_client.read(&mut buf).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        // What was in flight is acknowledged within a few hundred ms (the receive window
        // grows as data arrives); the scan first samples a frame 2 s old.
        std::thread::sleep(Duration::from_millis(500));
        let (p_idle, p_busy) = (Progress::default(), Progress::default());
        let acked = |s: &TcpStream| bytes_acked(s.as_raw_fd());
        assert!(acked(&idle).is_some(), "TCP_INFO has bytes_acked");
        assert!(
            p_idle.reading(acked(&idle), 10_000),
            "no judgement from one sample"
        );
        assert!(p_busy.reading(acked(&busy), 10_000));
        for _ in 0..12 {
            std::thread::sleep(Duration::from_millis(100));
            fill(&mut busy);
        }
        assert!(p_idle.reading(acked(&idle), 11_900), "nor within WINDOW_MS");
        assert!(!p_idle.reading(acked(&idle), 12_000));
        assert!(p_busy.reading(acked(&busy), 12_000));
        reader.join().unwrap();
        assert!(
            !Progress::default().reading(None, 1),
            "no figure: the age decides"
        );
    }
}
