//! Messages waiting to be written to one client, handed to the socket in batches.

use std::collections::VecDeque;
use std::io::IoSlice;

use crate::node::Frame;

/// Most messages given to one vectored write.
pub const BATCH: usize = 256;

#[derive(Default)]
pub struct OutQueue {
    frames: VecDeque<Frame>,
    /// Bytes of the front frame already written.
    written: usize,
}

impl OutQueue {
    pub fn push(&mut self, frame: Frame) {
        self.frames.push_back(frame);
    }

    /// Messages not yet completely written.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The next bytes to write, as up to `slices.len()` pieces; returns how many were set.
    pub fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (i, frame) in self.frames.iter().enumerate().take(slices.len()) {
            let skip = if i == 0 { self.written } else { 0 };
            slices[i] = IoSlice::new(&frame.bytes()[skip..]);
            n += 1;
        }
        n
    }

    /// `n` bytes were written: drops the messages they completed.
    pub fn consume(&mut self, mut n: usize) {
        while let Some(front) = self.frames.front() {
            let left = front.len() - self.written;
            if n < left {
                self.written += n;
                return;
            }
            n -= left;
            self.written = 0;
            self.frames.pop_front();
        }
        debug_assert_eq!(n, 0, "consumed more than queued");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(q: &OutQueue) -> Vec<u8> {
        let mut slices = [IoSlice::new(&[]); 4];
        let n = q.slices(&mut slices);
        slices[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn partial_writes_resume() {
        let mut q = OutQueue::default();
        q.push(Frame::from_vec(b"abc".to_vec()));
        q.push(Frame::from_vec(b"defg".to_vec()));
        assert_eq!(collect(&q), b"abcdefg");
        q.consume(2);
        assert_eq!((collect(&q), q.len()), (b"cdefg".to_vec(), 2));
        q.consume(2);
        assert_eq!((collect(&q), q.len()), (b"efg".to_vec(), 1));
        q.consume(3);
        assert!(q.is_empty());
        assert!(collect(&q).is_empty());
    }

    #[test]
    fn batch_is_bounded() {
        let mut q = OutQueue::default();
        for i in 0..10u8 {
            q.push(Frame::from_vec(vec![i]));
        }
        assert_eq!(collect(&q), [0, 1, 2, 3]);
    }
}
