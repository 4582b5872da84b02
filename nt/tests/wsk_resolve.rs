//! The emulated `WskGetAddressInfo` / `WskFreeAddressInfo`: what it resolves (no network), how it
//! completes, and its checks, each with a negative test (recording mode): a list never freed is a
//! leak, a list freed twice a double free, a pointer it never returned an unknown object.
//! Runs on the in-memory transport, so it is Miri-clean too.
#![cfg(not(target_os = "windows"))]

mod wsk_support;

use nt::emu::wsk::{MemoryNetwork, Schedule, set_schedule};
use nt::emu::{self, Rule};
use nt::*;
use std::net::SocketAddr;
use std::ptr;
use wsk_support::*;

/// A counted UTF-16 string, NUL-terminated, that lives as long as the value.
struct Text {
    units: Vec<u16>,
    string: UNICODE_STRING,
}

impl Text {
    fn new(text: &str) -> Box<Text> {
        let units: Vec<u16> = text.encode_utf16().chain([0]).collect();
        let mut text = Box::new(Text {
            string: UNICODE_STRING {
                Length: ((units.len() - 1) * 2) as u16,
                MaximumLength: (units.len() * 2) as u16,
                Buffer: ptr::null_mut(),
            },
            units,
        });
        text.string.Buffer = text.units.as_mut_ptr();
        text
    }

    fn ptr(&mut self) -> *mut UNICODE_STRING {
        &mut self.string
    }
}

/// What a resolution lends the provider until its IRP completes: the strings and the TCP hints
/// (the provider may read them until then: see `nt/src/host/wsk/resolve.rs`).
struct Request {
    node: Box<Text>,
    service: Box<Text>,
    hints: Box<ADDRINFOEXW>,
}

impl Request {
    fn new(node: &str, service: &str) -> Request {
        let mut hints = Box::new(ADDRINFOEXW::zeroed());
        hints.ai_socktype = i32::from(SOCK_STREAM);
        hints.ai_protocol = IPPROTO_TCP as i32;
        Request {
            node: Text::new(node),
            service: Text::new(service),
            hints,
        }
    }
}

/// `WskGetAddressInfo` of `request`; returns what the call returned and where the list goes (valid
/// until the IRP completed, which the caller waits for).
fn get(client: &Client, request: &mut Request, result: &mut PADDRINFOEXW, op: &IrpOp) -> NTSTATUS {
    let f = unsafe { &*client.npi.Dispatch }
        .WskGetAddressInfo
        .expect("WskGetAddressInfo");
    // SAFETY: live strings, hints and result cell; a fresh IRP with the test's completion routine.
    unsafe {
        f(
            client.npi.Client,
            request.node.ptr(),
            request.service.ptr(),
            NS_ALL,
            ptr::null_mut(),
            (&raw mut *request.hints).cast(),
            (result as *mut PADDRINFOEXW).cast(),
            ptr::null_mut(),
            ptr::null_mut(),
            op.start(),
        )
    }
}

fn free(client: &Client, list: PADDRINFOEXW) {
    let f = unsafe { &*client.npi.Dispatch }
        .WskFreeAddressInfo
        .expect("WskFreeAddressInfo");
    // SAFETY: the function checks what it is given.
    unsafe { f(client.npi.Client, list.cast()) };
}

/// The addresses of a list.
fn addresses(list: PADDRINFOEXW) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: a live list of the provider: entries and their addresses.
        unsafe {
            assert_eq!((*entry).ai_socktype, i32::from(SOCK_STREAM));
            assert_eq!((*entry).ai_protocol, IPPROTO_TCP as i32);
            let addr = Addr::empty();
            ptr::copy_nonoverlapping(
                (*entry).ai_addr.cast::<u8>(),
                addr.ptr().cast::<u8>(),
                (*entry).ai_addrlen,
            );
            out.push(addr.get());
            entry = (*entry).ai_next;
        }
    }
    out
}

/// Resolves `node` with service `service`: the final status and the list (null on failure).
fn resolve(client: &Client, node: &str, service: &str) -> (NTSTATUS, PADDRINFOEXW) {
    let mut request = Request::new(node, service);
    let mut list: PADDRINFOEXW = ptr::null_mut();
    let op = IrpOp::new();
    let returned = get(client, &mut request, &mut list, &op);
    let (status, information) = op.wait();
    assert!(
        returned == status || returned == STATUS_PENDING,
        "{returned:#x} / {status:#x}"
    );
    assert_eq!(information, 0, "Information is 0 (Windows, Wine's netio test)");
    (status, list)
}

#[test]
fn localhost_and_numeric_names_resolve_and_unknown_ones_are_not_found() {
    let _session = emu::session();
    let _net = MemoryNetwork::install();
    let client = Client::register();
    let (status, list) = resolve(&client, "LocalHost", "12345");
    assert_eq!(status, STATUS_SUCCESS);
    let mut got = addresses(list);
    got.sort();
    assert_eq!(
        got,
        ["127.0.0.1:12345".parse().unwrap(), "[::1]:12345".parse().unwrap()]
    );
    free(&client, list);
    for (name, expected) in [("127.0.0.1", "127.0.0.1:12345"), ("2001:db8::5", "[2001:db8::5]:12345")] {
        let (status, list) = resolve(&client, name, "12345");
        assert_eq!(status, STATUS_SUCCESS);
        assert_eq!(addresses(list), vec![expected.parse::<SocketAddr>().unwrap()]);
        free(&client, list);
    }
    for name in ["dead.beef", "example.com", ""] {
        let (status, list) = resolve(&client, name, "12345");
        assert_eq!(status, STATUS_NOT_FOUND, "{name:?}");
        assert!(list.is_null());
    }
    client.deregister();
}

/// Windows returns STATUS_PENDING for every valid call, numeric names included (Wine's netio test,
/// run on Windows): `realistic` pends. Pinned on purpose.
#[test]
fn under_the_realistic_schedule_a_resolution_pends_and_can_be_cancelled() {
    let _session = emu::session();
    set_schedule(Schedule::Realistic);
    let _net = MemoryNetwork::install();
    let client = Client::register();
    let mut request = Request::new("127.0.0.1", "1");
    let mut list: PADDRINFOEXW = ptr::null_mut();
    let op = IrpOp::new();
    assert_eq!(get(&client, &mut request, &mut list, &op), STATUS_PENDING);
    assert!(op.cancel(), "a cancel routine is armed");
    assert_eq!(op.wait().0, STATUS_CANCELLED);
    assert!(list.is_null());
    client.deregister();
}

#[test]
fn a_null_irp_is_an_invalid_parameter_without_a_report() {
    let _session = emu::session();
    let _net = MemoryNetwork::install();
    let client = Client::register();
    let f = unsafe { &*client.npi.Dispatch }.WskGetAddressInfo.unwrap();
    let (mut node, mut service) = (Text::new("localhost"), Text::new("1"));
    let mut list: PADDRINFOEXW = ptr::null_mut();
    // SAFETY: valid arguments but the IRP.
    let status = unsafe {
        f(
            client.npi.Client,
            node.ptr(),
            service.ptr(),
            NS_ALL,
            ptr::null_mut(),
            ptr::null_mut(),
            (&mut list as *mut PADDRINFOEXW).cast(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    assert_eq!(status, STATUS_INVALID_PARAMETER);
    assert!(list.is_null());
    client.deregister();
}

#[test]
fn a_list_never_freed_is_a_leak() {
    let session = emu::session();
    let _net = MemoryNetwork::install();
    let client = Client::register();
    let (status, list) = resolve(&client, "localhost", "80");
    assert_eq!(status, STATUS_SUCCESS);
    let report = session.leak_report();
    let lists = report
        .leaks
        .iter()
        .filter(|l| l.description.contains("tag 'WskA'"))
        .count();
    assert_eq!(lists, 1, "{report}");
    free(&client, list);
    let report = session.leak_report();
    assert!(!report.to_string().contains("WskA"), "{report}");
    client.deregister();
}

#[test]
fn a_list_freed_twice_is_a_double_free() {
    let _session = emu::session();
    let _net = MemoryNetwork::install();
    let client = Client::register();
    let (_, list) = resolve(&client, "::1", "80");
    free(&client, list);
    emu::expect_violations();
    free(&client, list);
    let taken = emu::take_violations();
    assert_eq!(taken.len(), 1, "{taken:#?}");
    assert_eq!(taken[0].rule, Rule::DoubleFree);
    assert!(taken[0].message().contains("WskFreeAddressInfo"), "{}", taken[0]);
    client.deregister();
}

#[test]
fn freeing_a_pointer_the_provider_did_not_return_is_reported() {
    let _session = emu::session();
    let _net = MemoryNetwork::install();
    let client = Client::register();
    let (_, list) = resolve(&client, "10.0.0.1", "80");
    emu::expect_violations();
    // The second entry of nothing: a pointer into the list is not a list.
    let mut foreign = ADDRINFOEXW::zeroed();
    free(&client, &raw mut foreign);
    free(&client, ptr::null_mut());
    let taken = emu::take_violations();
    assert_eq!(taken.len(), 2, "{taken:#?}");
    assert!(taken.iter().all(|v| v.rule == Rule::UnknownObject), "{taken:#?}");
    free(&client, list);
    client.deregister();
}

#[test]
fn a_resolution_above_passive_level_is_reported() {
    let _session = emu::session();
    let _net = MemoryNetwork::install();
    let client = Client::register();
    let mut request = Request::new("localhost", "1");
    let mut list: PADDRINFOEXW = ptr::null_mut();
    let op = IrpOp::new();
    emu::expect_violations();
    // Harmless outcome: the IRP completes with STATUS_INVALID_DEVICE_STATE, no list.
    let status = emu::at_dispatch(|| get(&client, &mut request, &mut list, &op));
    assert_eq!(status, STATUS_INVALID_DEVICE_STATE);
    assert_eq!(op.wait().0, STATUS_INVALID_DEVICE_STATE);
    let taken = emu::take_violations();
    assert_eq!(taken.len(), 1, "{taken:#?}");
    assert_eq!(taken[0].rule, Rule::IrqlTooHigh);
    assert!(list.is_null());
    client.deregister();
}

/// The provider reads the strings and the hints when it resolves, not in the call (invented, the
/// harsher reading: Wine's netio hands them to a thread pool, Windows documents nothing), so a
/// client must keep them unchanged and alive until the IRP completes: what it changed after the
/// call is what gets resolved. Pinned to `pending`, where the resolution surely comes after the
/// call.
#[test]
fn the_strings_and_hints_are_read_when_the_resolution_completes() {
    let _session = emu::session();
    set_schedule(Schedule::Pending);
    let _net = MemoryNetwork::install();
    let client = Client::register();
    let mut request = Request::new("127.0.0.1", "1");
    let mut list: PADDRINFOEXW = ptr::null_mut();
    let op = IrpOp::new();
    assert_eq!(get(&client, &mut request, &mut list, &op), STATUS_PENDING);
    // Through the pointers the provider holds (a write through the owners would retire them).
    // SAFETY: the buffers live in `request`, with the lengths the strings give.
    unsafe {
        request.node.string.Buffer.add(8).write(u16::from(b'2'));
        request.service.string.Buffer.write(u16::from(b'7'));
    }
    nt::emu::wsk::settle();
    assert_eq!(op.wait().0, STATUS_SUCCESS);
    assert_eq!(addresses(list), vec!["127.0.0.2:7".parse::<SocketAddr>().unwrap()]);
    free(&client, list);
    // The hints too: only IPv4 is asked for after the call.
    let mut request = Request::new("localhost", "1");
    let mut list: PADDRINFOEXW = ptr::null_mut();
    let op = IrpOp::new();
    assert_eq!(get(&client, &mut request, &mut list, &op), STATUS_PENDING);
    // SAFETY: the hints live in `request`; written as the provider reads them, through a raw place.
    unsafe { (&raw mut request.hints.ai_family).write(i32::from(AF_INET)) };
    nt::emu::wsk::settle();
    assert_eq!(op.wait().0, STATUS_SUCCESS);
    assert_eq!(addresses(list), vec!["127.0.0.1:1".parse::<SocketAddr>().unwrap()]);
    free(&client, list);
    client.deregister();
}

/// A held resolution (`set_resolution_held`) pends under every schedule, `inline` included, and no
/// delivery (`settle`, a wait) resolves it; `IoCancelIrp` ends it with STATUS_CANCELLED and no list,
/// as on Windows. Released, the next one resolves again.
#[test]
fn a_held_resolution_stays_pending_until_cancelled_or_released() {
    let _session = emu::session();
    let _net = MemoryNetwork::install();
    let client = Client::register();
    nt::emu::wsk::set_resolution_held(true);
    let mut request = Request::new("localhost", "1");
    let mut list: PADDRINFOEXW = ptr::null_mut();
    let op = IrpOp::new();
    assert_eq!(get(&client, &mut request, &mut list, &op), STATUS_PENDING);
    nt::emu::wsk::settle();
    assert!(!op.is_done(), "a held resolution is not delivered");
    assert_eq!(nt::emu::wsk::pending_resolutions(), 1);
    assert!(op.cancel(), "a held resolution keeps its cancel routine");
    nt::emu::wsk::settle();
    assert_eq!(op.wait().0, STATUS_CANCELLED);
    assert!(list.is_null());
    assert_eq!(nt::emu::wsk::pending_resolutions(), 0);

    // Held, then released: the provider resolves it at its next delivery.
    let mut request = Request::new("127.0.0.1", "2");
    let op = IrpOp::new();
    assert_eq!(get(&client, &mut request, &mut list, &op), STATUS_PENDING);
    nt::emu::wsk::settle();
    assert!(!op.is_done());
    nt::emu::wsk::set_resolution_held(false);
    assert_eq!(op.wait().0, STATUS_SUCCESS);
    assert_eq!(addresses(list), vec!["127.0.0.1:2".parse::<SocketAddr>().unwrap()]);
    free(&client, list);
    client.deregister();
}
