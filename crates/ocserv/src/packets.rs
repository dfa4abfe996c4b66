//! Packets from the shared tun device on their way to one tunnel: the packets of one tun
//! read that go to the same client travel as one queue item, in one buffer, each with the
//! CSTP header's room in front so the tunnel frames it in place.

/// Framed packets back to back in one buffer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PacketBatch {
    bytes: Vec<u8>,
    /// Where each packet ends in `bytes`.
    ends: Vec<usize>,
}

impl PacketBatch {
    /// Room for `packets` packets of about `each` bytes (a split super-packet's are equal).
    pub fn with_capacity(packets: usize, each: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(packets.saturating_mul(each)),
            ends: Vec::with_capacity(packets),
        }
    }

    pub fn push(&mut self, framed: &[u8]) {
        self.bytes.extend_from_slice(framed);
        self.ends.push(self.bytes.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The framed packets in order, each writable in place.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut [u8]> {
        let mut rest: &mut [u8] = &mut self.bytes;
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let taken = std::mem::take(&mut rest);
            let (packet, tail) = taken
                .split_at_mut_checked(end.saturating_sub(start))
                .unwrap_or((&mut [], &mut []));
            rest = tail;
            start = end;
            packet
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn packets_come_back_in_order_and_writable() {
        let mut batch = PacketBatch::default();
        assert!(batch.is_empty());
        batch.push(&[1, 1, 1]);
        batch.push(&[2]);
        batch.push(&[3, 3]);
        assert_eq!(batch.len(), 3);
        for p in batch.iter_mut() {
            p[0] += 10;
        }
        let got: Vec<Vec<u8>> = batch.iter_mut().map(|p| p.to_vec()).collect();
        assert_eq!(got, vec![vec![11, 1, 1], vec![12], vec![13, 3]]);
    }
}
