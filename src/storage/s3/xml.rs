//! The few S3 XML answers streamhub reads (ListObjectsV2, CreateMultipartUpload, errors):
//! flat documents whose fields are found by tag name, so no XML library is linked. Text is
//! unescaped (the five entities and character references); anything else is not S3's.

/// The elements `<tag>…</tag>` in `doc`, in order (their inner text, still escaped).
pub(super) fn elements<'a>(doc: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(&after[..j]);
        rest = &after[j + close.len()..];
    }
    out
}

/// The unescaped text of the first `<tag>` in `doc`.
pub(super) fn field(doc: &str, tag: &str) -> Option<String> {
    elements(doc, tag).first().map(|t| unescape(t))
}

pub(super) fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let Some(end) = after.find(';') else {
            out.push_str(after);
            return out;
        };
        let entity = &after[1..end];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_fields() {
        let doc = "<ListBucketResult><Contents><Key>a &amp; b&#233;.txt</Key><Size>3</Size>\
                   </Contents><Contents><Key>c</Key><Size>0</Size></Contents>\
                   <CommonPrefixes><Prefix>d/</Prefix></CommonPrefixes>\
                   <NextContinuationToken>t&lt;1</NextContinuationToken></ListBucketResult>";
        let c = elements(doc, "Contents");
        assert_eq!(c.len(), 2);
        assert_eq!(field(c[0], "Key").as_deref(), Some("a & bé.txt"));
        assert_eq!(field(c[1], "Size").as_deref(), Some("0"));
        assert_eq!(field(doc, "NextContinuationToken").as_deref(), Some("t<1"));
        assert_eq!(field(doc, "Nope"), None);
        assert_eq!(unescape("x &bogus; &#xZZ;"), "x &bogus; &#xZZ;");
    }
}
