//! Connection set-up: connect request, auth list, auth choice and accept (spec section 2).

use super::consts::*;

/// Client versions as one number: major*10000 + minor*100 + patch. The bytes are signed, as
/// the original daemon reads them, so a byte of 0x80 or more counts as negative.
pub fn version_number(major: u8, minor: u8, patch: u8) -> i32 {
    major as i8 as i32 * 10_000 + minor as i8 as i32 * 100 + patch as i8 as i32
}
/// Oldest client a daemon accepts (3.1.0).
pub const OLDEST_CLIENT: i32 = 30_100;
/// Clients from this version on send a patch byte.
const FIRST_WITH_PATCH: i32 = 31_401;
/// Clients from this version on are told the daemon's patch version.
const FIRST_TOLD_PATCH: i32 = 31_500;
/// Clients from this version on negotiate authentication.
const FIRST_WITH_AUTH: i32 = 31_600;

/// Byte the accept message starts with.
pub const ACCEPT_BYTE: u8 = 1;
/// Size of the auth choice a client sends: three 30-byte method slots.
pub const AUTH_CHOICE_LEN: usize = MAX_AUTH_NAME * MAX_AUTH_METHODS;
/// Largest auth list length a client accepts.
pub const MAX_AUTH_LIST_LEN: usize = AUTH_CHOICE_LEN;

/// The connect request of a 5.0.1 client.
pub fn encode_connect_request(private_name: &[u8], group_membership: bool, priority: i32) -> Vec<u8> {
    let name = &private_name[..private_name.len().min(MAX_PRIVATE_NAME)];
    let mut flags = 0u8;
    if group_membership {
        flags |= 0x01;
    }
    if priority >= 1 {
        flags |= 0x10;
    }
    let mut out = Vec::with_capacity(5 + name.len());
    out.extend_from_slice(&[SPREAD_MAJOR, SPREAD_MINOR, SPREAD_PATCH, flags, name.len() as u8]);
    out.extend_from_slice(name);
    out
}

/// A connect request as a daemon reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    pub version: i32,
    pub group_membership: bool,
    /// Stored, no effect (as in 5.0.1).
    pub priority: i32,
    /// Empty: the daemon invents a name.
    pub private_name: Vec<u8>,
}

impl ConnectRequest {
    /// Whether this client negotiates authentication (else it is authorised at once).
    pub fn negotiates_auth(&self) -> bool {
        self.version >= FIRST_WITH_AUTH
    }
}

/// Why a daemon refuses a connect request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectRefusal {
    /// The request was not all there: close without a reply.
    Incomplete,
    /// Reply with this one reject byte, then close.
    Reject(i32),
}

/// Longest connect request: major, minor, patch, flags, name length, name.
pub const MAX_CONNECT_REQUEST_LEN: usize = 5 + MAX_PRIVATE_NAME;

/// How many bytes the connect request starting with `prefix` has, once enough of it is there
/// to tell (its first two bytes, and the length byte). Lets a daemon take exactly the request
/// off the stream; the length byte is taken as signed, as the daemon reads it.
pub fn connect_request_len(prefix: &[u8]) -> Option<usize> {
    let [major, minor, ..] = prefix else {
        return None;
    };
    let fixed = if version_number(*major, *minor, 0) >= FIRST_WITH_PATCH {
        5
    } else {
        4
    };
    let name_len = *prefix.get(fixed - 1)? as i8;
    Some(fixed + name_len.max(0) as usize)
}

/// Reads a connect request from everything the client had sent when the daemon looked (the
/// request must arrive whole, as with the original daemon).
pub fn parse_connect_request(bytes: &[u8]) -> Result<ConnectRequest, ConnectRefusal> {
    let [major, minor, rest @ ..] = bytes else {
        return Err(ConnectRefusal::Incomplete);
    };
    let (patch, rest) = if version_number(*major, *minor, 0) >= FIRST_WITH_PATCH {
        match rest {
            [patch, rest @ ..] => (*patch, rest),
            [] => return Err(ConnectRefusal::Incomplete),
        }
    } else {
        (0, rest)
    };
    let version = version_number(*major, *minor, patch);
    if version < OLDEST_CLIENT {
        return Err(ConnectRefusal::Reject(REJECT_VERSION));
    }
    let [flags, name_len, name @ ..] = rest else {
        return Err(ConnectRefusal::Incomplete);
    };
    // Both bytes are signed in the original.
    let flags = *flags as i8 as i32;
    let name_len = *name_len as i8 as i32;
    if !(0..=MAX_PRIVATE_NAME as i32).contains(&name_len) || name.len() != name_len as usize {
        return Err(ConnectRefusal::Reject(REJECT_ILLEGAL_NAME));
    }
    if !name.iter().all(|&b| super::name::is_name_byte(b)) {
        return Err(ConnectRefusal::Reject(REJECT_ILLEGAL_NAME));
    }
    Ok(ConnectRequest {
        version,
        group_membership: flags % 2 == 1,
        priority: flags / 16,
        private_name: name.to_vec(),
    })
}

/// The auth list a daemon offers: each enabled method followed by a space, after a length byte.
pub fn encode_auth_list(methods: &[&str]) -> Vec<u8> {
    let mut list = Vec::new();
    for m in methods {
        list.extend_from_slice(m.as_bytes());
        list.push(b' ');
    }
    list.truncate(MAX_AUTH_LIST_LEN);
    let mut out = Vec::with_capacity(1 + list.len());
    out.push(list.len() as u8);
    out.extend_from_slice(&list);
    out
}

/// The client's choice: up to three NUL-padded 30-byte method names.
pub fn encode_auth_choice(methods: &[&[u8]]) -> [u8; AUTH_CHOICE_LEN] {
    let mut out = [0u8; AUTH_CHOICE_LEN];
    for (slot, m) in out.chunks_mut(MAX_AUTH_NAME).zip(methods.iter()) {
        let len = m.len().min(MAX_AUTH_NAME - 1);
        slot[..len].copy_from_slice(&m[..len]);
    }
    out
}

/// Method names of an auth choice, up to the first empty slot.
pub fn parse_auth_choice(choice: &[u8; AUTH_CHOICE_LEN]) -> Vec<&[u8]> {
    choice
        .chunks(MAX_AUTH_NAME)
        .map(super::name::name_text)
        .take_while(|name| !name.is_empty())
        .collect()
}

/// The accept message for a client of `client_version` given `private_group` (no NUL).
pub fn encode_accept(client_version: i32, private_group: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + private_group.len());
    out.extend_from_slice(&[ACCEPT_BYTE, SPREAD_MAJOR, SPREAD_MINOR]);
    if client_version >= FIRST_TOLD_PATCH {
        out.push(SPREAD_PATCH);
    }
    out.push(private_group.len() as u8);
    out.extend_from_slice(private_group);
    out
}

/// One reject byte as sent instead of the auth list or the accept.
pub fn reject_byte(code: i32) -> u8 {
    code as i8 as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_request_vector() {
        let req = encode_connect_request(b"alice", true, 0);
        assert_eq!(req, [0x05, 0x00, 0x01, 0x01, 0x05, b'a', b'l', b'i', b'c', b'e']);
        assert_eq!(
            encode_connect_request(b"abcdefghijkl", false, 1)[3..5],
            [0x10, 10]
        );
        let parsed = parse_connect_request(&req).unwrap();
        assert_eq!(parsed.version, 50_001);
        assert!(parsed.group_membership);
        assert_eq!(parsed.private_name, b"alice");
        assert!(parsed.negotiates_auth());
    }

    #[test]
    fn auth_vectors() {
        assert_eq!(encode_auth_list(&["NULL"]), b"\x05NULL ");
        let choice = encode_auth_choice(&[b"NULL"]);
        assert_eq!(&choice[..5], b"NULL\0");
        assert!(choice[4..].iter().all(|&b| b == 0));
        assert_eq!(parse_auth_choice(&choice), vec![&b"NULL"[..]]);
        assert_eq!(parse_auth_choice(&[0; AUTH_CHOICE_LEN]).len(), 0);
    }

    #[test]
    fn accept_vector() {
        let acc = encode_accept(50_001, b"#alice#localhost");
        let mut want = vec![0x01, 0x05, 0x00, 0x01, 0x10];
        want.extend_from_slice(b"#alice#localhost");
        assert_eq!(acc, want);
        assert_eq!(encode_accept(31_400, b"#a#b")[..4], [1, 5, 0, 4]);
        assert_eq!(encode_accept(31_500, b"#a#b")[..5], [1, 5, 0, 1, 4]);
    }

    #[test]
    fn old_clients() {
        // 3.14: no patch byte.
        let r = parse_connect_request(&[3, 14, 1, 2, b'a', b'b']).unwrap();
        assert_eq!((r.version, r.private_name.as_slice()), (31_400, &b"ab"[..]));
        assert!(!r.negotiates_auth());
        // 3.15.2: patch byte, no auth.
        let r = parse_connect_request(&[3, 15, 2, 0, 0]).unwrap();
        assert_eq!(r.version, 31_502);
        assert!(!r.group_membership);
        assert_eq!(
            parse_connect_request(&[3, 0, 1, 0]),
            Err(ConnectRefusal::Reject(REJECT_VERSION))
        );
        // Version bytes are signed: a major of 0x80 or more is a very old client, and a minor
        // of 0xff lowers the version.
        let too_old = Err(ConnectRefusal::Reject(REJECT_VERSION));
        assert_eq!(parse_connect_request(&[0xff, 0, 1, 0, 0]), too_old);
        assert_eq!(parse_connect_request(&[0x80, 0, 1, 0, 0]), too_old);
        assert_eq!(
            parse_connect_request(&[5, 0xff, 1, 0, 0]).unwrap().version,
            49_901
        );
    }

    #[test]
    fn request_lengths() {
        assert_eq!(
            connect_request_len(&encode_connect_request(b"alice", true, 0)),
            Some(10)
        );
        assert_eq!(connect_request_len(&[5, 0, 1, 0]), None);
        assert_eq!(connect_request_len(&[5, 0, 1, 0, 0]), Some(5));
        assert_eq!(connect_request_len(&[3, 14, 1, 2, b'a']), Some(6));
        assert_eq!(connect_request_len(&[5, 0, 1, 0, 0x90]), Some(5));
        assert_eq!(connect_request_len(&[5]), None);
    }

    #[test]
    fn bad_names() {
        let reject = Err(ConnectRefusal::Reject(REJECT_ILLEGAL_NAME));
        assert_eq!(parse_connect_request(&[5, 0, 1, 0, 11]), reject);
        assert_eq!(parse_connect_request(&[5, 0, 1, 0, 0x80]), reject);
        assert_eq!(parse_connect_request(&[5, 0, 1, 0, 3, b'a', b'b']), reject);
        assert_eq!(parse_connect_request(&[5, 0, 1, 0, 2, b'a', b'#']), reject);
        assert_eq!(parse_connect_request(&[5, 0, 1, 0, 2, b'a', b' ']), reject);
        assert_eq!(parse_connect_request(&[5, 0]), Err(ConnectRefusal::Incomplete));
        assert_eq!(
            parse_connect_request(&[5, 0, 1, 0]),
            Err(ConnectRefusal::Incomplete)
        );
        assert_eq!(reject_byte(REJECT_ILLEGAL_NAME), 0xfb);
        assert_eq!(reject_byte(REJECT_AUTH), 0xf7);
    }
}
