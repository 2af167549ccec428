//! Fixed 32-byte name fields (group names, private group names, member names).

pub const NAME_LEN: usize = 32;
/// Longest group name (the field keeps one byte for the NUL).
pub const MAX_GROUP_NAME_CHARS: usize = NAME_LEN - 1;

/// A name field as it travels: NUL-terminated text padded to 32 bytes.
pub type Name = [u8; NAME_LEN];

/// A name field holding `text` cut to 31 bytes and padded with zeros.
pub fn name_field(text: &[u8]) -> Name {
    let mut field = [0u8; NAME_LEN];
    let len = text.len().min(MAX_GROUP_NAME_CHARS);
    field[..len].copy_from_slice(&text[..len]);
    field
}

/// The text of a name field: the bytes before the first NUL (all 32 if there is none).
pub fn name_text(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// True for the bytes a group or private name may hold (`$` .. `~`).
pub fn is_name_byte(b: u8) -> bool {
    (0x24..=0x7e).contains(&b)
}

/// A legal group name for `SP_join`/`SP_leave`: 1..31 bytes, each a name byte.
pub fn is_legal_group_name(text: &[u8]) -> bool {
    !text.is_empty() && text.len() <= MAX_GROUP_NAME_CHARS && text.iter().all(|&b| is_name_byte(b))
}

/// `#private#daemon` as the daemon hands it out.
pub fn private_group_name(private: &[u8], daemon: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + private.len() + daemon.len());
    out.push(b'#');
    out.extend_from_slice(private);
    out.push(b'#');
    out.extend_from_slice(daemon);
    out
}

/// Splits `#private#daemon` into its two parts; `None` when the text is not of that shape.
pub fn split_private_group(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = text.strip_prefix(b"#")?;
    let cut = rest.iter().position(|&b| b == b'#')?;
    Some((&rest[..cut], &rest[cut + 1..]))
}

/// A group name naming a private group: routing treats every name starting with `#` so.
pub fn is_private_group(text: &[u8]) -> bool {
    text.first() == Some(&b'#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_cuts_and_pads() {
        let f = name_field(b"g1");
        assert_eq!(&f[..3], b"g1\0");
        assert!(f[2..].iter().all(|&b| b == 0));
        let long = [b'a'; 40];
        let f = name_field(&long);
        assert_eq!(name_text(&f).len(), 31);
        assert_eq!(f[31], 0);
    }

    #[test]
    fn group_name_rules() {
        assert!(is_legal_group_name(b"g1"));
        assert!(is_legal_group_name(&[b'~'; 31]));
        assert!(!is_legal_group_name(b""));
        assert!(!is_legal_group_name(&[b'a'; 32]));
        assert!(!is_legal_group_name(b"a b"));
        assert!(!is_legal_group_name(b"a#b"));
        assert!(!is_legal_group_name(b"caf\xc3\xa9"));
    }

    #[test]
    fn private_groups() {
        let pg = private_group_name(b"alice", b"localhost");
        assert_eq!(pg, b"#alice#localhost");
        assert_eq!(split_private_group(&pg), Some((&b"alice"[..], &b"localhost"[..])));
        assert_eq!(split_private_group(b"alice#x"), None);
        assert_eq!(split_private_group(b"#alice"), None);
    }
}
