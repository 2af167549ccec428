//! The monitor's datagrams: a query to a daemon's ring port and the daemon's reply.
//!
//! Both start with a 12-byte header, integers big-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | magic `"SM"` (the ring's packets say `"SR"`, link probes `"SL"`) |
//! | 2 | 1 | format version ([`VERSION`]) |
//! | 3 | 1 | kind: 1 query, 2 reply |
//! | 4 | 8 | nonce, chosen by the querier and echoed in the reply |
//!
//! A query is the header alone. A reply is the header followed by the daemon's status
//! document, JSON in UTF-8 (see [`super::document`]), at most [`MAX_DOCUMENT`] bytes so
//! that the whole datagram stays under 60 KB.

pub const MAGIC: [u8; 2] = *b"SM";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 12;
/// Largest status document a reply carries.
pub const MAX_DOCUMENT: usize = 60 * 1024 - HEADER_LEN;
/// Largest reply datagram.
pub const MAX_REPLY: usize = HEADER_LEN + MAX_DOCUMENT;

const KIND_QUERY: u8 = 1;
const KIND_REPLY: u8 = 2;

/// A status request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    pub nonce: u64,
}

/// A status answer: the query's nonce and the daemon's document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'a> {
    pub nonce: u64,
    pub document: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryError {
    /// Shorter than the header, or a query with bytes after it.
    Length(usize),
    /// Not a monitor datagram at all.
    Magic,
    Version(u8),
    /// A query where a reply was expected, or the other way round, or an unknown kind.
    Kind(u8),
    /// The document is not UTF-8.
    Text,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Length(n) => write!(f, "monitor datagram of {n} bytes"),
            QueryError::Magic => write!(f, "not a monitor datagram"),
            QueryError::Version(v) => write!(f, "monitor format version {v}, not {VERSION}"),
            QueryError::Kind(k) => write!(f, "unexpected monitor datagram kind {k}"),
            QueryError::Text => write!(f, "status document is not UTF-8"),
        }
    }
}

impl std::error::Error for QueryError {}

/// Whether `bytes` claims to be a monitor datagram (checked before the ring's and the link
/// layer's decoders, which would refuse it).
pub fn is_monitor(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

fn header(kind: u8, nonce: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..2].copy_from_slice(&MAGIC);
    h[2] = VERSION;
    h[3] = kind;
    h[4..].copy_from_slice(&nonce.to_be_bytes());
    h
}

/// The nonce of a datagram of kind `kind`, and what follows the header.
fn split(bytes: &[u8], kind: u8) -> Result<(u64, &[u8]), QueryError> {
    if bytes.len() < HEADER_LEN {
        return Err(QueryError::Length(bytes.len()));
    }
    if !is_monitor(bytes) {
        return Err(QueryError::Magic);
    }
    if bytes[2] != VERSION {
        return Err(QueryError::Version(bytes[2]));
    }
    if bytes[3] != kind {
        return Err(QueryError::Kind(bytes[3]));
    }
    let nonce = u64::from_be_bytes(bytes[4..HEADER_LEN].try_into().expect("8 bytes"));
    Ok((nonce, &bytes[HEADER_LEN..]))
}

pub fn encode_query(query: Query) -> [u8; HEADER_LEN] {
    header(KIND_QUERY, query.nonce)
}

pub fn decode_query(bytes: &[u8]) -> Result<Query, QueryError> {
    match split(bytes, KIND_QUERY)? {
        (nonce, []) => Ok(Query { nonce }),
        _ => Err(QueryError::Length(bytes.len())),
    }
}

/// The reply datagram; `document` is at most [`MAX_DOCUMENT`] bytes (the document builder
/// keeps it so).
pub fn encode_reply(out: &mut Vec<u8>, reply: Reply<'_>) {
    debug_assert!(reply.document.len() <= MAX_DOCUMENT);
    out.clear();
    out.extend_from_slice(&header(KIND_REPLY, reply.nonce));
    out.extend_from_slice(reply.document.as_bytes());
}

pub fn decode_reply(bytes: &[u8]) -> Result<Reply<'_>, QueryError> {
    let (nonce, rest) = split(bytes, KIND_REPLY)?;
    let document = std::str::from_utf8(rest).map_err(|_| QueryError::Text)?;
    Ok(Reply { nonce, document })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_round_trip_and_layout() {
        let bytes = encode_query(Query {
            nonce: 0x0102_0304_0506_0708,
        });
        assert_eq!(bytes, *b"SM\x01\x01\x01\x02\x03\x04\x05\x06\x07\x08");
        assert!(is_monitor(&bytes));
        assert_eq!(
            decode_query(&bytes),
            Ok(Query {
                nonce: 0x0102_0304_0506_0708
            })
        );
    }

    #[test]
    fn reply_round_trip() {
        let mut out = Vec::new();
        encode_reply(
            &mut out,
            Reply {
                nonce: 7,
                document: "{\"a\":1}",
            },
        );
        assert_eq!(&out[..4], b"SM\x01\x02");
        assert_eq!(
            decode_reply(&out),
            Ok(Reply {
                nonce: 7,
                document: "{\"a\":1}"
            })
        );
    }

    #[test]
    fn malformed_datagrams_are_errors() {
        let query = encode_query(Query { nonce: 1 });
        assert_eq!(decode_query(&query[..11]), Err(QueryError::Length(11)));
        let mut long = query.to_vec();
        long.push(0);
        assert_eq!(decode_query(&long), Err(QueryError::Length(13)));
        let mut other = query;
        other[0] = b'X';
        assert_eq!(decode_query(&other), Err(QueryError::Magic));
        let mut ring = query;
        ring[..2].copy_from_slice(b"SR");
        assert!(!is_monitor(&ring));
        let mut version = query;
        version[2] = 9;
        assert_eq!(decode_query(&version), Err(QueryError::Version(9)));
        // A reply is no query, and a query no reply.
        assert_eq!(decode_reply(&query), Err(QueryError::Kind(1)));
        let mut reply = Vec::new();
        encode_reply(
            &mut reply,
            Reply {
                nonce: 1,
                document: "",
            },
        );
        assert_eq!(decode_query(&reply), Err(QueryError::Kind(2)));
        reply.extend_from_slice(&[0xff, 0xfe]);
        assert_eq!(decode_reply(&reply), Err(QueryError::Text));
        assert_eq!(decode_query(&[]), Err(QueryError::Length(0)));
    }
}
