//! Real loopback TCP through the emulated provider, observed by a std `TcpStream` client: what each
//! way of ending a connection looks like on the wire. Not under Miri (real sockets and threads).
#![cfg(all(not(target_os = "windows"), not(miri), not(loom)))]

mod common;

use socket2::{Domain, Socket, Type};
use std::future::{Future, poll_fn};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;
use wsk_async::{Buffer, BufferPool, Connection, Listener, Registration};

/// Bound on every blocking step, so a broken test fails instead of hanging.
const BOUND: Duration = Duration::from_secs(20);
/// How long a graceful disconnect is given before the driver gives up on it.
const GRACE: Duration = Duration::from_millis(300);
/// Larger than what loopback socket buffers absorb with a client whose receive buffer is tiny.
const BIG: usize = 8 << 20;

fn block_on<F: Future>(f: F) -> F::Output {
    executor::block_on(f).expect("block_on at PASSIVE_LEVEL")
}

fn listen(registration: &Registration) -> (Listener, SocketAddr) {
    let listener = block_on(registration.listen("127.0.0.1:0".parse().unwrap())).unwrap();
    let port = listener.local_addr().unwrap().port();
    assert_ne!(port, 0);
    (listener, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// A client that reads slowly: a tiny receive buffer, so the driver's sends back up.
fn slow_client(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    stream
}

fn client(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    stream
}

/// Reads until EOF or an error; returns the bytes and how it ended.
fn read_to_end(stream: &mut TcpStream) -> (Vec<u8>, Result<(), ErrorKind>) {
    let mut data = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return (data, Ok(())),
            Ok(n) => data.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (data, Err(e.kind())),
        }
    }
}

fn big_buffer(pool: &BufferPool) -> Buffer {
    let mut buf = pool.take().unwrap();
    let pattern: Vec<u8> = (0..BIG).map(|i| i as u8).collect();
    buf.extend_from_slice(&pattern);
    buf
}

/// Submits `future` (one poll) and leaves it pending in place.
async fn submit<F: Future>(future: std::pin::Pin<&mut F>) {
    let mut future = future;
    poll_fn(|cx| {
        let _ = future.as_mut().poll(cx);
        Poll::Ready(())
    })
    .await;
}

fn teardown(registration: Registration, listener: Listener) {
    block_on(listener.close()).unwrap();
    block_on(registration.deregister());
}

#[test]
fn dropping_a_pending_disconnect_resets_the_connection() {
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    let pool = BufferPool::new(1, BIG).unwrap();
    let (listener, addr) = listen(&registration);
    let mut stream = slow_client(addr);
    let conn = block_on(listener.accept()).unwrap();
    block_on(async {
        let mut send = pin!(conn.send_all(big_buffer(&pool)));
        submit(send.as_mut()).await;
        // The graceful disconnect queues behind the send the client never reads: it stays pending,
        // and the timeout drops it.
        let graceful = executor::timeout(GRACE, conn.disconnect()).await;
        assert!(graceful.is_err(), "the graceful disconnect was expected to pend");
        let (sent, _buf) = send.await;
        assert!(sent.unwrap_err().is_reset(), "the abort ends the pending send");
    });
    let (_, end) = read_to_end(&mut stream);
    assert_eq!(end, Err(ErrorKind::ConnectionReset));
    block_on(conn.close()).unwrap();
    drop(pool);
    teardown(registration, listener);
}

#[test]
fn disconnect_after_sending_delivers_everything_then_eof() {
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    let pool = BufferPool::new(1, 256 << 10).unwrap();
    let (listener, addr) = listen(&registration);
    let mut stream = client(addr);
    let conn = block_on(listener.accept()).unwrap();
    let expected: Vec<u8> = (0..256 << 10).map(|i: usize| (i * 7) as u8).collect();
    let reader = std::thread::spawn(move || read_to_end(&mut stream));
    block_on(async {
        let mut buf = pool.take().unwrap();
        buf.extend_from_slice(&expected);
        let (sent, _buf) = conn.send_all(buf).await;
        assert_eq!(sent.unwrap(), 256 << 10);
        conn.disconnect().await.unwrap();
    });
    let (data, end) = reader.join().unwrap();
    assert_eq!(end, Ok(()), "EOF, not a reset");
    assert!(data == expected, "all data, in order");
    block_on(conn.close()).unwrap();
    drop(pool);
    teardown(registration, listener);
}

#[test]
fn disconnect_with_delivers_the_final_buffer_then_eof() {
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    let pool = BufferPool::new(1, 4096).unwrap();
    let (listener, addr) = listen(&registration);
    let mut stream = client(addr);
    let conn = block_on(listener.accept()).unwrap();
    block_on(async {
        let mut buf = pool.take().unwrap();
        buf.extend_from_slice(b"goodbye");
        let (r, _buf) = conn.disconnect_with(buf.slice(..4)).await;
        r.unwrap();
    });
    let (data, end) = read_to_end(&mut stream);
    assert_eq!(end, Ok(()));
    assert_eq!(data, b"good");
    block_on(conn.close()).unwrap();
    drop(pool);
    teardown(registration, listener);
}

#[test]
fn dropping_an_unclosed_connection_resets_it() {
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    let (listener, addr) = listen(&registration);
    let mut stream = client(addr);
    let conn: Connection = block_on(listener.accept()).unwrap();
    drop(conn);
    let (_, end) = read_to_end(&mut stream);
    assert_eq!(end, Err(ErrorKind::ConnectionReset));
    teardown(registration, listener);
}

#[test]
fn disconnect_or_abort_resets_a_client_that_never_reads() {
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    let pool = BufferPool::new(1, BIG).unwrap();
    let (listener, addr) = listen(&registration);
    let mut stream = slow_client(addr);
    let conn = block_on(listener.accept()).unwrap();
    block_on(async {
        let mut send = pin!(conn.send_all(big_buffer(&pool)));
        submit(send.as_mut()).await;
        conn.disconnect_or_abort(GRACE).await.unwrap();
        let (sent, _buf) = send.await;
        assert!(sent.is_err());
    });
    let (_, end) = read_to_end(&mut stream);
    assert_eq!(end, Err(ErrorKind::ConnectionReset));
    block_on(conn.close()).unwrap();
    drop(pool);
    teardown(registration, listener);
}

#[test]
fn disconnect_or_abort_is_graceful_when_the_client_reads() {
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    let pool = BufferPool::new(1, 4096).unwrap();
    let (listener, addr) = listen(&registration);
    let mut stream = client(addr);
    let conn = block_on(listener.accept()).unwrap();
    block_on(async {
        let mut buf = pool.take().unwrap();
        buf.extend_from_slice(b"data");
        let (r, _buf) = conn.send_all(buf).await;
        r.unwrap();
        conn.disconnect_or_abort(BOUND).await.unwrap();
    });
    let (data, end) = read_to_end(&mut stream);
    assert_eq!((data.as_slice(), end), (&b"data"[..], Ok(())));
    block_on(conn.close()).unwrap();
    drop(pool);
    teardown(registration, listener);
}

#[test]
fn echo_over_dual_stack_listener_with_incoming_stream() {
    use futures_core::Stream;
    let _session = nt::emu::session();
    let driver = common::TestDriver::new();
    let registration = Registration::register_blocking(&driver.device, BOUND).unwrap();
    let pool = BufferPool::new(2, 4096).unwrap();
    let listener = block_on(registration.listen("[::]:0".parse().unwrap())).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut stream = client(SocketAddr::from(([127, 0, 0, 1], port)));
    stream.write_all(b"echo me").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    block_on(async {
        let mut incoming = pin!(listener.incoming());
        let conn = poll_fn(|cx| incoming.as_mut().poll_next(cx)).await.unwrap().unwrap();
        let mut buf = pool.take().unwrap();
        loop {
            let (n, b) = conn.receive(buf).await;
            if n.unwrap() == 0 {
                buf = b;
                break;
            }
            let (r, b) = conn.send_all(b).await;
            r.unwrap();
            buf = b;
        }
        drop(buf);
        conn.disconnect().await.unwrap();
        conn.close().await.unwrap();
    });
    let (data, end) = read_to_end(&mut stream);
    assert_eq!((data.as_slice(), end), (&b"echo me"[..], Ok(())));
    teardown(registration, listener);
}
