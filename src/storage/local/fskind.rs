//! What kind of filesystem the media root (or the data dir) is on, from `statfs`: a network
//! or FUSE filesystem may stall, so it never gets the non-blocking fast path.

use std::path::Path;

/// f_type is i64 on 64-bit Linux but 32 bits wide (and signed on some) on 32-bit targets.
#[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
pub(super) fn magic_of(s: &rustix::fs::StatFs) -> i64 {
    (s.f_type as i64) & 0xFFFF_FFFF
}

/// What kind of filesystem `path` is on (`"local"`, `"nfs"`, …), or `"unknown"`.
pub fn fs_kind_of(path: &Path) -> &'static str {
    rustix::fs::statfs(path)
        .map(|s| fs_kind(magic_of(&s)))
        .unwrap_or("unknown")
}

/// Names the filesystem behind a `statfs` magic number; anything reached over a network (or
/// through FUSE, which may be) is not "local" and never gets the non-blocking fast path.
pub(super) fn fs_kind(magic: i64) -> &'static str {
    match magic {
        0x6969 => "nfs",
        0x517B | 0xFF53_4D42 | 0xFE53_4D42 => "smb",
        0x6573_5546 => "fuse",
        0x00C3_6400 => "ceph",
        0x0102_1997 => "9p",
        0x5346_414F | 0x6B41_4653 => "afs",
        0x0187 => "autofs",
        0x0116_1970 | 0x7461_636F | 0x564C | 0x7375_7245 => "cluster",
        _ => "local",
    }
}
