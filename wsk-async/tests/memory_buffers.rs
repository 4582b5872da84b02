//! Pooled buffers never carry bytes from one connection to another, on the deterministic in-memory
//! network (runs under Miri): a buffer that received connection A's data and went back to its pool
//! shows connection B nothing of it, whatever B's code does with the buffer's public API before it
//! sends the buffer to B's peer.
#![cfg(all(not(target_os = "windows"), not(loom)))]

mod common;

use common::*;
use wsk_async::{Buffer, BufferPool};

const SIZE: usize = 256;

/// Connection A's peer sends a secret that fills the only buffer of `pool`; A receives it and gives
/// the buffer back. Returns the secret.
fn a_fills_the_buffer(s: &Setup, pool: &BufferPool) -> Vec<u8> {
    let secret: Vec<u8> = (0..SIZE).map(|i| b'A' + (i % 26) as u8).collect();
    s.peer.write(&secret).unwrap();
    let (n, buf) = ready(s.conn.receive(pool.take().unwrap()));
    assert_eq!(n.unwrap(), SIZE);
    assert_eq!(&buf[..], &secret[..]);
    drop(buf);
    assert_eq!(pool.available(), 1);
    secret
}

/// Sends all of `buf` on B and returns what B's peer read (its reads complete the send).
fn b_sends(b: &Setup2, buf: impl Into<wsk_async::Slice>) -> (Vec<u8>, Buffer) {
    let ((sent, buf), read) = ready_while_reading(&b.peer, b.conn.send_all(buf));
    sent.unwrap();
    (read, buf)
}

/// A second accepted connection on `s`'s listener.
struct Setup2 {
    conn: wsk_async::Connection,
    peer: nt::emu::wsk::Peer,
}

fn second_connection(s: &Setup) -> Setup2 {
    let peer = s.net.connect(s.addr()).expect("B connects");
    let conn = ready(s.listener.accept()).expect("accept B");
    Setup2 { conn, peer }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn bytes_received_by_connection_a_never_reach_connection_b() {
    let _session = nt::emu::session();
    let s = setup();
    let b = second_connection(&s);
    let pool = BufferPool::new(1, SIZE).unwrap();
    let secret = a_fills_the_buffer(&s, &pool);
    let leaked = |data: &[u8]| contains(data, &secret[2..10]) || data.iter().any(|&c| c.is_ascii_uppercase());

    // B receives two bytes into the same buffer, then its code stretches the length to the capacity.
    b.peer.write(b"hi").unwrap();
    let (n, mut buf) = ready(b.conn.receive(pool.take().unwrap()));
    assert_eq!(n.unwrap(), 2);
    buf.set_len(SIZE);
    assert_eq!(&buf[..], b"hi", "set_len stops at the bytes B received");
    let (read, buf) = b_sends(&b, buf);
    assert_eq!(read, b"hi");
    // A slice over the whole capacity, and a slice of a stretched buffer, are bounded the same way.
    let (read, mut buf) = b_sends(&b, buf.slice(..SIZE));
    assert_eq!(read, b"hi");
    buf.clear();
    buf.set_len(SIZE);
    let (read, buf) = b_sends(&b, buf);
    assert_eq!(read, b"hi", "after clear, set_len brings back only B's own bytes");
    assert!(!leaked(&read));
    drop(buf);

    // B's next receive ends with the peer's FIN (0 bytes) on a fresh take: nothing at all to show.
    b.peer.shutdown();
    let (n, mut buf) = ready(b.conn.receive(pool.take().unwrap()));
    assert_eq!(n.unwrap(), 0);
    buf.set_len(SIZE);
    assert!(buf.is_empty());
    let (read, buf) = b_sends(&b, buf.slice(..SIZE));
    assert!(read.is_empty());
    drop(buf);

    let Setup2 { conn, peer } = b;
    ready(conn.close()).unwrap();
    drop((peer, pool));
    s.finish();
}

/// A receive dropped after the kernel wrote into its buffer (the completion came, the future never
/// read it) returns the buffer to the pool with A's bytes in it; the next owner sees none of them.
#[test]
fn bytes_of_an_unread_receive_never_reach_the_next_owner() {
    let _session = nt::emu::session();
    let s = setup();
    let pool = BufferPool::new(1, SIZE).unwrap();
    {
        let mut receive = std::pin::pin!(s.conn.receive(pool.take().unwrap()));
        let wakes = Wakes::new();
        assert!(wakes.poll(receive.as_mut()).is_pending());
        s.peer.write(&[b'A'; SIZE]).unwrap();
        assert_eq!(wakes.count(), 1);
    } // dropped unread: the buffer goes back with A's bytes in it
    assert_eq!(pool.available(), 1);
    let mut buf = pool.take().unwrap();
    buf.set_len(SIZE);
    assert!(buf.is_empty(), "set_len shows nothing of A");
    let slice = buf.slice(..SIZE);
    assert!(slice.is_empty());
    drop(slice);
    s.finish();
}

/// Growing a buffer over bytes not yet written, the sanctioned way (`resize`), writes the new
/// owner's fill byte over each of them; what was received stays.
#[test]
fn resize_fills_what_the_new_owner_did_not_write() {
    let _session = nt::emu::session();
    let s = setup();
    let b = second_connection(&s);
    let pool = BufferPool::new(1, SIZE).unwrap();
    a_fills_the_buffer(&s, &pool);
    b.peer.write(b"hi").unwrap();
    let (n, mut buf) = ready(b.conn.receive(pool.take().unwrap()));
    assert_eq!(n.unwrap(), 2);
    assert_eq!(buf.initialised(), 2);
    buf.resize(SIZE, b'.');
    assert_eq!((buf.len(), buf.initialised()), (SIZE, SIZE));
    let (read, buf) = b_sends(&b, buf);
    assert_eq!(&read[..2], b"hi");
    assert!(read[2..].iter().all(|&c| c == b'.'));
    assert_eq!(read.len(), SIZE);
    drop(buf);
    let Setup2 { conn, peer } = b;
    ready(conn.close()).unwrap();
    drop((peer, pool));
    s.finish();
}
