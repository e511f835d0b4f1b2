//! Errors in messages by errno name (`ENOSPC`), never by number: what an operator can look up.

/// `"ENOSPC: No space left on device"` for an OS error, the plain text otherwise.
pub fn errno_message(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let text = std::io::Error::from_raw_os_error(n).to_string();
            // std appends " (os error N)"; the name says it better.
            let text = text.split(" (os error").next().unwrap_or(&text).to_string();
            format!("{}: {text}", errno_name(n))
        }
        None => e.to_string(),
    }
}

/// The symbolic name of a Linux errno value.
pub fn errno_name(n: i32) -> String {
    use rustix::io::Errno;
    const NAMES: &[(Errno, &str)] = &[
        (Errno::PERM, "EPERM"),
        (Errno::NOENT, "ENOENT"),
        (Errno::INTR, "EINTR"),
        (Errno::IO, "EIO"),
        (Errno::NXIO, "ENXIO"),
        (Errno::BADF, "EBADF"),
        (Errno::AGAIN, "EAGAIN"),
        (Errno::NOMEM, "ENOMEM"),
        (Errno::ACCESS, "EACCES"),
        (Errno::BUSY, "EBUSY"),
        (Errno::EXIST, "EEXIST"),
        (Errno::XDEV, "EXDEV"),
        (Errno::NODEV, "ENODEV"),
        (Errno::NOTDIR, "ENOTDIR"),
        (Errno::ISDIR, "EISDIR"),
        (Errno::INVAL, "EINVAL"),
        (Errno::NFILE, "ENFILE"),
        (Errno::MFILE, "EMFILE"),
        (Errno::FBIG, "EFBIG"),
        (Errno::NOSPC, "ENOSPC"),
        (Errno::SPIPE, "ESPIPE"),
        (Errno::ROFS, "EROFS"),
        (Errno::MLINK, "EMLINK"),
        (Errno::NAMETOOLONG, "ENAMETOOLONG"),
        (Errno::NOSYS, "ENOSYS"),
        (Errno::NOTEMPTY, "ENOTEMPTY"),
        (Errno::LOOP, "ELOOP"),
        (Errno::STALE, "ESTALE"),
        (Errno::DQUOT, "EDQUOT"),
        (Errno::OPNOTSUPP, "EOPNOTSUPP"),
        (Errno::TIMEDOUT, "ETIMEDOUT"),
        (Errno::HOSTDOWN, "EHOSTDOWN"),
        (Errno::HOSTUNREACH, "EHOSTUNREACH"),
        (Errno::CONNREFUSED, "ECONNREFUSED"),
        (Errno::NOLCK, "ENOLCK"),
        (Errno::TXTBSY, "ETXTBSY"),
        (Errno::OVERFLOW, "EOVERFLOW"),
    ];
    NAMES
        .iter()
        .find(|(e, _)| e.raw_os_error() == n)
        .map(|(_, name)| (*name).to_string())
        .unwrap_or_else(|| format!("errno {n}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_not_numbers() {
        let e = std::io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        let m = errno_message(&e);
        assert!(m.starts_with("ENOSPC: "), "{m}");
        assert!(!m.contains("os error"), "{m}");
        assert_eq!(errno_message(&std::io::Error::other("plain")), "plain");
    }
}
