//! Lower-case hex of a number without `fmt`, for values made on every request (the request
//! id, a file's entity-tag): `format!("{:x}")` costs about a thousand instructions a call.

/// Appends `v` in lower-case hex, without leading zeros (as `{:x}` writes it).
pub fn push_u64(out: &mut String, v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    let mut at = buf.len();
    let mut v = v;
    loop {
        at -= 1;
        buf[at] = DIGITS[(v & 15) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    out.extend(buf[at..].iter().map(|&b| char::from(b)));
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_what_fmt_writes() {
        for v in [
            0,
            1,
            15,
            16,
            255,
            0xdead_beef,
            u64::MAX,
            1 << 63,
            12_345_678_901,
        ] {
            let mut s = String::from("x");
            super::push_u64(&mut s, v);
            assert_eq!(s, format!("x{v:x}"));
        }
    }
}
