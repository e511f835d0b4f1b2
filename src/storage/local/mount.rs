//! Whether the media root is a mount point (`storage.require_mount`): an NFS root whose
//! server was not mounted at boot is the empty folder beneath it, on the system disk, and
//! nothing may be written there.

use std::fs::File;

use rustix::fs::{AtFlags, StatxAttributes, StatxFlags};

/// What a root that must be a mount point, and is not, answers (start-up and `/readyz`).
pub(crate) const NOT_A_MOUNT: &str = "the media root is not a mount point \
    (storage.require_mount = true): its filesystem is not mounted there, so nothing is read \
    from or written to the folder beneath; mount it (check the NFS/SMB server and the fstab \
    entry), or set storage.require_mount = false";

/// Whether `dir` is the root of a mount: the kernel says so (`STATX_ATTR_MOUNT_ROOT`, Linux
/// 5.8+, also for bind mounts of the same filesystem), or else its device differs from its
/// parent's. None when neither can be told.
pub(crate) fn is_mount_point(dir: &File) -> Option<bool> {
    if let Ok(st) = rustix::fs::statx(dir, "", AtFlags::EMPTY_PATH, StatxFlags::empty()) {
        if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) {
            return Some(st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT));
        }
    }
    let own = rustix::fs::fstat(dir).ok()?;
    let parent = rustix::fs::statat(dir, "..", AtFlags::empty()).ok()?;
    // "/" is its own parent, and a mount point.
    Some(own.st_dev != parent.st_dev || own.st_ino == parent.st_ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_folder_is_not_a_mount_point_and_the_root_is() {
        let tmp = tempfile::tempdir().unwrap();
        let sub = tmp.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let dir = File::open(&sub).unwrap();
        assert_eq!(is_mount_point(&dir), Some(false));
        let slash = File::open("/").unwrap();
        assert_eq!(is_mount_point(&slash), Some(true));
    }
}
