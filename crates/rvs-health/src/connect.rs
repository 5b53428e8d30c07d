//! TCP connect with the checkers' common parameters: `bindto`, `bind_port`, `connect_timeout`.

use crate::error::CheckError;
use rvs_config::keepalived::Checker;
use std::net::SocketAddr;
use tokio::net::{TcpSocket, TcpStream};

/// Connect to `target` as `checker` says (source address/port, timeout).
pub async fn connect(checker: &Checker, target: SocketAddr) -> Result<TcpStream, CheckError> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(CheckError::Connect)?;
    if checker.bindto.is_some() || checker.bind_port.is_some() {
        let ip = checker.bindto.unwrap_or(if target.is_ipv4() {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        });
        socket.set_reuseaddr(true).map_err(CheckError::Connect)?;
        socket
            .bind(SocketAddr::new(ip, checker.bind_port.unwrap_or(0)))
            .map_err(CheckError::Connect)?;
    }
    match tokio::time::timeout(checker.connect_timeout, socket.connect(target)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(CheckError::Connect(e)),
        Err(_) => Err(CheckError::Timeout(checker.connect_timeout)),
    }
}
