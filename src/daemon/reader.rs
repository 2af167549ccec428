//! Cuts a session's byte stream into validated requests, without copying them when they come
//! in batches.
//!
//! Reads go into a buffer (small until the session's reads fill it, then large). Complete frames are handed on as [`Frame`]s: when they fill
//! a good part of the buffer, the buffer itself becomes shared and the frames point into it
//! (the unfinished tail moves to a fresh buffer); a few small frames are copied out instead,
//! so a slow receiver holding one small message does not pin a whole buffer.

use std::sync::Arc;

use crate::node::{ClientRequest, Frame};
use crate::wire::request::{body_len, classify_request, InvalidRequest, RequestKind};
use crate::wire::{Header, HEADER_LEN};

/// Read buffer of a session that sends little (most sessions: keeps idle ones cheap).
const SMALL_BUFFER: usize = 16 * 1024;
/// Read buffer of a session whose reads have filled its buffer (grown further for a frame that
/// does not fit). A batch of frames covering a quarter of the buffer is shared in place
/// rather than copied; below an eighth free, the unfinished tail moves to the front.
const LARGE_BUFFER: usize = 128 * 1024;

pub struct RequestReader {
    buf: Vec<u8>,
    /// Bytes of `buf` holding data.
    filled: usize,
    /// Bytes of `buf` already handed on as frames.
    parsed: usize,
    /// The last buffer given away, reused once every frame in it is gone.
    shared: Option<Arc<Vec<u8>>>,
    /// Frames found by the current call: kind, header, range in `buf`.
    found: Vec<(RequestKind, Header, std::ops::Range<usize>)>,
    /// A read has filled the buffer: the session sends fast and gets the large buffer.
    large: bool,
}

impl Default for RequestReader {
    fn default() -> Self {
        RequestReader::new()
    }
}

impl RequestReader {
    pub fn new() -> RequestReader {
        RequestReader {
            buf: vec![0; SMALL_BUFFER],
            filled: 0,
            parsed: 0,
            shared: None,
            found: Vec::new(),
            large: false,
        }
    }

    fn buffer_len(&self) -> usize {
        if self.large {
            LARGE_BUFFER
        } else {
            SMALL_BUFFER
        }
    }

    /// Where the next read goes (never empty).
    pub fn space(&mut self) -> &mut [u8] {
        &mut self.buf[self.filled..]
    }

    /// `n` bytes were read into [`RequestReader::space`].
    pub fn filled(&mut self, n: usize) {
        self.filled += n;
        debug_assert!(self.filled <= self.buf.len());
        if self.filled == self.buf.len() {
            self.large = true;
        }
    }

    /// Appends up to `max` complete requests now buffered to `out`, in order; `Ok(true)` when
    /// more complete requests are left. A request failing validation ends the stream: the
    /// requests before it are still appended. `own_private_group` is the session's
    /// `#private#daemon`.
    pub fn take_requests(
        &mut self,
        own_private_group: &[u8],
        max: usize,
        out: &mut Vec<ClientRequest>,
    ) -> Result<bool, InvalidRequest> {
        let batch_start = self.parsed;
        let mut verdict = Ok(false);
        // Size of the frame the unfinished tail starts (0: not known yet).
        let mut pending = 0;
        while self.filled - self.parsed >= HEADER_LEN {
            if self.found.len() == max {
                verdict = Ok(true);
                break;
            }
            let at = self.parsed;
            let raw: &[u8; HEADER_LEN] = self.buf[at..at + HEADER_LEN].try_into().expect("header length");
            let (header, foreign) = Header::decode(raw);
            let kind = match classify_request(&header, own_private_group) {
                Ok(kind) => kind,
                Err(e) => {
                    verdict = Err(e);
                    break;
                }
            };
            let len = HEADER_LEN + body_len(&header);
            if self.filled - at < len {
                pending = len;
                break;
            }
            if foreign {
                // Everything the daemon sends is in its own order; `hint` stays as written.
                self.buf[at..at + HEADER_LEN].copy_from_slice(&header.encode());
            }
            self.found.push((kind, header, at..at + len));
            self.parsed += len;
        }
        self.hand_on(batch_start, out);
        if verdict != Ok(true) {
            // (Requests left over need no room: the caller handles them before reading again.)
            self.make_room(pending);
        }
        verdict
    }

    fn hand_on(&mut self, batch_start: usize, out: &mut Vec<ClientRequest>) {
        if self.found.is_empty() {
            return;
        }
        let (buf, base) = if self.parsed - batch_start >= self.buffer_len() / 4 {
            let next = self.fresh_buffer();
            let full = std::mem::replace(&mut self.buf, next);
            let tail = self.filled - self.parsed;
            self.buf[..tail].copy_from_slice(&full[self.parsed..self.filled]);
            self.filled = tail;
            self.parsed = 0;
            let full = Arc::new(full);
            self.shared = Some(full.clone());
            (full, 0)
        } else {
            (Arc::new(self.buf[batch_start..self.parsed].to_vec()), batch_start)
        };
        out.extend(self.found.drain(..).map(|(kind, header, range)| ClientRequest {
            kind,
            header,
            frame: Frame::new(buf.clone(), range.start - base..range.end - base),
        }));
    }

    /// The buffer given away last time if nobody holds it any more, else a new one.
    fn fresh_buffer(&mut self) -> Vec<u8> {
        let len = self.buffer_len();
        match self.shared.take().map(Arc::try_unwrap) {
            Some(Ok(old)) if old.len() >= len => old,
            _ => vec![0; len],
        }
    }

    /// Keeps room to read the rest of a frame of `pending` bytes and a fair amount more.
    fn make_room(&mut self, pending: usize) {
        let len = self.buffer_len();
        let min_space = len / 8;
        let tail = self.filled - self.parsed;
        let size = self.buf.len();
        if size >= len && size - self.filled >= min_space && size - self.parsed >= pending {
            return;
        }
        self.buf.copy_within(self.parsed..self.filled, 0);
        self.parsed = 0;
        self.filled = tail;
        let wanted = len.max(pending + min_space);
        if self.buf.len() < wanted {
            self.buf.resize(wanted, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::header::hint_for_mess_type;
    use crate::wire::name::name_field;
    use crate::wire::request::InvalidRequest;
    use crate::wire::{AGREED_MESS, JOIN_MESS, SAFE_MESS};

    const ME: &[u8] = b"#alice#localhost";

    fn message(msg_type: u32, group: &[u8], payload_len: usize) -> Vec<u8> {
        let h = Header {
            msg_type,
            sender: name_field(ME),
            num_groups: 1,
            hint: hint_for_mess_type(7),
            data_len: payload_len as i32,
        };
        let mut m = h.encode().to_vec();
        m.extend_from_slice(&name_field(group));
        m.extend((0..payload_len).map(|i| i as u8));
        m
    }

    /// Reads `bytes` in as many reads as the buffer needs, taking requests after each.
    fn feed(r: &mut RequestReader, bytes: &[u8]) -> Vec<ClientRequest> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let space = r.space();
            let n = space.len().min(rest.len());
            space[..n].copy_from_slice(&rest[..n]);
            r.filled(n);
            rest = &rest[n..];
            assert!(!r.take_requests(ME, usize::MAX, &mut out).unwrap());
        }
        out
    }

    /// One read of `bytes` (which fit the buffer).
    fn put(r: &mut RequestReader, bytes: &[u8]) {
        r.space()[..bytes.len()].copy_from_slice(bytes);
        r.filled(bytes.len());
    }

    fn take(r: &mut RequestReader) -> Result<Vec<ClientRequest>, InvalidRequest> {
        let mut out = Vec::new();
        assert!(!r.take_requests(ME, usize::MAX, &mut out)?);
        Ok(out)
    }

    #[test]
    fn partial_frames_wait() {
        let m = message(AGREED_MESS, b"g1", 5);
        for cut in [1, 47, 48, 80, m.len() - 1] {
            let mut r = RequestReader::new();
            assert!(feed(&mut r, &m[..cut]).is_empty());
            let got = feed(&mut r, &m[cut..]);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].frame.bytes(), m.as_slice());
            assert_eq!((got[0].kind, got[0].header.data_len), (RequestKind::Multicast, 5));
        }
    }

    #[test]
    fn many_frames_share_the_read_buffer() {
        let mut r = RequestReader::new();
        assert_eq!(r.buf.len(), SMALL_BUFFER);
        let m = message(AGREED_MESS, b"g1", 1000);
        let batch: Vec<u8> = m.iter().copied().cycle().take(m.len() * 100 + 10).collect();
        let got = feed(&mut r, &batch);
        assert_eq!(got.len(), 100);
        assert!(got.iter().all(|q| q.frame.bytes() == m.as_slice()));
        // Reads filled the small buffer: the session now reads into a large one.
        assert!(r.large && r.buf.len() >= LARGE_BUFFER);
        // The ten bytes of the next frame were kept, and the rest completes it.
        let more = feed(&mut r, &m[10..]);
        assert_eq!(more.len(), 1);
        assert_eq!(more[0].frame.bytes(), m.as_slice());
        // Frames point into shared read buffers, which come back once their frames are gone.
        let shared = r.shared.clone().unwrap();
        assert!(Arc::strong_count(&shared) > 2);
        drop(got);
        assert_eq!(Arc::strong_count(&shared), 2);
    }

    #[test]
    fn batches_are_capped() {
        let mut r = RequestReader::new();
        let m = message(AGREED_MESS, b"g1", 10);
        put(&mut r, &m.repeat(5));
        let mut out = Vec::new();
        assert_eq!(r.take_requests(ME, 2, &mut out), Ok(true));
        assert_eq!(r.take_requests(ME, 2, &mut out), Ok(true));
        assert_eq!(r.take_requests(ME, 2, &mut out), Ok(false));
        assert_eq!(out.len(), 5);
        assert!(out.iter().all(|q| q.frame.bytes() == m.as_slice()));
    }

    #[test]
    fn large_frame_grows_buffer() {
        let mut r = RequestReader::new();
        let m = message(SAFE_MESS, b"g1", 143_920);
        assert!(feed(&mut r, &m[..1000]).is_empty());
        let got = feed(&mut r, &m[1000..]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].frame.len(), m.len());
    }

    #[test]
    fn foreign_order_header_is_normalised() {
        let mut r = RequestReader::new();
        let mut m = message(SAFE_MESS, b"g9", 4);
        // Rewrite as a big-endian writer would: integers swapped, markers clear.
        let be_hint = [0x00, 0x12, 0x34, 0x00];
        m[0..4].copy_from_slice(&SAFE_MESS.to_be_bytes());
        m[36..40].copy_from_slice(&1i32.to_be_bytes());
        m[40..44].copy_from_slice(&be_hint);
        m[44..48].copy_from_slice(&4i32.to_be_bytes());
        put(&mut r, &m);
        let got = take(&mut r).unwrap();
        let f = got[0].frame.bytes();
        assert_eq!(f[0..4], [0xa0, 0, 0, 0x80]);
        assert_eq!(f[36..40], [1, 0, 0, 0]);
        assert_eq!(f[40..44], be_hint);
        assert_eq!(f[44..48], [4, 0, 0, 0]);
        assert_eq!(f[48..], m[48..]);
    }

    #[test]
    fn invalid_request_ends_stream_after_valid_ones() {
        let mut r = RequestReader::new();
        let mut bytes = message(JOIN_MESS, b"g1", 0);
        bytes.extend(message(AGREED_MESS | SAFE_MESS, b"g1", 3));
        put(&mut r, &bytes);
        let mut out = Vec::new();
        let verdict = r.take_requests(ME, usize::MAX, &mut out);
        assert!(matches!(verdict, Err(InvalidRequest::Service(_))));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, RequestKind::Join);
        // A header with another sender is refused before its body arrives.
        let mut r = RequestReader::new();
        let mut other = message(AGREED_MESS, b"g1", 3);
        other[5] = b'b';
        put(&mut r, &other[..HEADER_LEN]);
        assert_eq!(take(&mut r).unwrap_err(), InvalidRequest::Sender);
    }
}
