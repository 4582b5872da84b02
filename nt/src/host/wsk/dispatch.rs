//! The provider's socket dispatch tables: what `WSK_SOCKET::Dispatch` points to for each category.

use super::close::{WskCloseSocket, WskControlSocket};
use super::connection::*;
use super::datagram::{WskReceiveFrom, WskReleaseDatagrams, WskSendTo};
use super::disconnect::WskDisconnect;
use super::listen::{WskAccept, WskBind, WskGetLocalAddress, WskInspectComplete, WskListen};
use crate::wsk::*;

pub(crate) static BASIC_DISPATCH: WSK_PROVIDER_BASIC_DISPATCH = WSK_PROVIDER_BASIC_DISPATCH {
    WskControlSocket: Some(WskControlSocket),
    WskCloseSocket: Some(WskCloseSocket),
};

pub(crate) static LISTEN_DISPATCH: WSK_PROVIDER_LISTEN_DISPATCH = WSK_PROVIDER_LISTEN_DISPATCH {
    Basic: BASIC_DISPATCH,
    WskBind: Some(WskBind),
    WskAccept: Some(WskAccept),
    WskInspectComplete: Some(WskInspectComplete),
    WskGetLocalAddress: Some(WskGetLocalAddress),
};

pub(crate) static CONNECTION_DISPATCH: WSK_PROVIDER_CONNECTION_DISPATCH = WSK_PROVIDER_CONNECTION_DISPATCH {
    Basic: BASIC_DISPATCH,
    WskBind: Some(WskBind),
    WskConnect: Some(WskConnect),
    WskGetLocalAddress: Some(WskGetLocalAddress),
    WskGetRemoteAddress: Some(WskGetRemoteAddress),
    WskSend: Some(WskSend),
    WskReceive: Some(WskReceive),
    WskDisconnect: Some(WskDisconnect),
    WskRelease: Some(WskRelease),
    WskConnectEx: Some(WskConnectEx),
    WskSendEx: Some(WskSendEx),
    WskReceiveEx: Some(WskReceiveEx),
};

pub(crate) static STREAM_DISPATCH: WSK_PROVIDER_STREAM_DISPATCH = WSK_PROVIDER_STREAM_DISPATCH {
    Basic: BASIC_DISPATCH,
    WskBind: Some(WskBind),
    WskAccept: Some(WskAccept),
    WskConnect: Some(WskConnect),
    WskListen: Some(WskListen),
    WskSend: Some(WskSend),
    WskReceive: Some(WskReceive),
    WskDisconnect: Some(WskDisconnect),
    WskRelease: Some(WskRelease),
    WskGetLocalAddress: Some(WskGetLocalAddress),
    WskGetRemoteAddress: Some(WskGetRemoteAddress),
    WskConnectEx: Some(WskConnectEx),
    WskSendEx: Some(WskSendEx),
    WskReceiveEx: Some(WskReceiveEx),
};

pub(crate) static DATAGRAM_DISPATCH: WSK_PROVIDER_DATAGRAM_DISPATCH = WSK_PROVIDER_DATAGRAM_DISPATCH {
    Basic: BASIC_DISPATCH,
    WskBind: Some(WskBind),
    WskSendTo: Some(WskSendTo),
    WskReceiveFrom: Some(WskReceiveFrom),
    WskRelease: Some(WskReleaseDatagrams),
    WskGetLocalAddress: Some(WskGetLocalAddress),
};
