//! Receiving for the tools: one set of buffers reused for every message, as the original
//! examples receive into static arrays.

use std::io::Write;

use crate::client::{Error, Mailbox, Outcome, Received};
use crate::wire::{Name, NAME_LEN};

/// Buffers for the names and the body of one message.
pub struct Inbox {
    groups: Vec<Name>,
    body: Vec<u8>,
}

/// One received message as the buffers hold it.
#[derive(Clone, Copy, Debug)]
pub struct Delivery<'a> {
    pub received: Received,
    /// The names stored (all of them unless they were cut).
    pub groups: &'a [Name],
    /// The body bytes stored.
    pub body: &'a [u8],
}

impl Inbox {
    pub fn new(max_groups: usize, max_body: usize) -> Inbox {
        Inbox {
            groups: vec![[0u8; NAME_LEN]; max_groups],
            body: vec![0u8; max_body],
        }
    }

    /// Receives one message (see [`Mailbox::receive`] for `drop_recv`).
    pub fn receive(&mut self, mbox: Mailbox, drop_recv: bool) -> Result<Delivery<'_>, Error> {
        let received = mbox.receive(drop_recv, &mut self.groups, &mut [&mut self.body[..]])?;
        Ok(self.delivery(received))
    }

    /// Receives one message; when it does not fit, prints the original tools' notice to `out`
    /// and takes the message again cut to the buffers.
    pub fn receive_or_cut(&mut self, mbox: Mailbox, out: &mut impl Write) -> Result<Delivery<'_>, Error> {
        let received = mbox.receive(false, &mut self.groups, &mut [&mut self.body[..]])?;
        if !matches!(received.outcome, Outcome::TooShort { .. }) {
            return Ok(self.delivery(received));
        }
        // The notice only informs; a failed write must not lose the message.
        let _ = out.write_all(b"\n========Buffers or Groups too Short=======\n");
        self.receive(mbox, true)
    }

    fn delivery(&self, received: Received) -> Delivery<'_> {
        let (groups, body) = match received.outcome {
            Outcome::TooShort { .. } => (0, 0),
            Outcome::Complete | Outcome::BodyCut => (
                (received.num_groups.unsigned_abs() as usize).min(self.groups.len()),
                (received.data_len.max(0) as usize).min(self.body.len()),
            ),
        };
        Delivery {
            received,
            groups: &self.groups[..groups],
            body: &self.body[..body],
        }
    }
}
