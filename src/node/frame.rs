//! One message's bytes, shared by every session it is delivered to.

use std::ops::Range;
use std::sync::Arc;

/// A slice of a shared buffer: a client's frame as read (many frames share one read buffer),
/// or a notice the daemon made. Cloning shares the bytes.
#[derive(Clone, Debug)]
pub struct Frame {
    buf: Arc<Vec<u8>>,
    start: usize,
    end: usize,
}

impl Frame {
    /// The bytes at `range` of `buf`. Panics if `range` is outside `buf` (a caller bug).
    pub fn new(buf: Arc<Vec<u8>>, range: Range<usize>) -> Frame {
        assert!(range.start <= range.end && range.end <= buf.len());
        Frame {
            buf,
            start: range.start,
            end: range.end,
        }
    }

    pub fn from_vec(bytes: Vec<u8>) -> Frame {
        let end = bytes.len();
        Frame::new(Arc::new(bytes), 0..end)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_share_one_buffer() {
        let buf = Arc::new(b"headerbody".to_vec());
        let a = Frame::new(buf.clone(), 0..6);
        let b = Frame::new(buf.clone(), 6..10);
        assert_eq!(a.bytes(), b"header");
        assert_eq!((b.bytes(), b.len()), (&b"body"[..], 4));
        assert_eq!(Arc::strong_count(&buf), 3);
        assert!(Frame::from_vec(Vec::new()).is_empty());
    }
}
