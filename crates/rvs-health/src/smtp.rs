//! `SMTP_CHECK`: connect (as `TCP_CHECK`), the greeting must be `220`, `HELO <helo_name>` must be
//! answered `250`; then `QUIT`, and close. As keepalived does, each reply must arrive within
//! `connect_timeout`. The reply to `QUIT` is read (so the server sees a clean end) but does not
//! decide anything: a server that greeted and answered `HELO` is up.
//!
//! Replies follow RFC 5321 §4.2: lines `DDD-text` continue a reply, `DDD text` (or a bare `DDD`)
//! ends it, every line with the same code. The reply reader ([`parse_reply`]) and the
//! conversation ([`Conversation`]) are pure; [`check`] does the IO. A reply may not exceed
//! [`MAX_REPLY`] bytes, so a hostile server cannot make the checker buffer without end.

use crate::connect::connect;
use crate::error::CheckError;
use rvs_config::keepalived::{Checker, SmtpCheck};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most bytes one reply (all its lines) may take. RFC 5321 §4.5.3.1.5 bounds a reply line
/// at 512 bytes; a `HELO` reply or a greeting of a few lines is far below this.
pub const MAX_REPLY: usize = 4096;

/// A complete reply: its code and the text of its first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.text.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{} {}", self.code, self.text)
        }
    }
}

/// `bytes` shown in an error: printable ASCII kept, the rest escaped, at most 60 characters.
fn shown(bytes: &[u8]) -> String {
    let s: String = bytes.escape_ascii().to_string();
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

/// The first complete reply at the start of `buf` and the bytes it took, `None` while it is
/// incomplete, or why it is not an SMTP reply.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, CheckError> {
    let mut at = 0;
    let mut first: Option<Reply> = None;
    while let Some(nl) = buf[at..].iter().position(|&b| b == b'\n') {
        let end = at + nl + 1;
        if end > MAX_REPLY {
            break;
        }
        let line = &buf[at..at + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (code, last, text) = parse_line(line)?;
        match &first {
            None => {
                first = Some(Reply {
                    code,
                    text: String::from_utf8_lossy(text).into_owned(),
                })
            }
            Some(r) if r.code != code => {
                return Err(CheckError::Smtp(format!(
                    "reply line '{}' continues a {} reply with another code",
                    shown(line),
                    r.code
                )));
            }
            Some(_) => {}
        }
        if last {
            return Ok(first.map(|r| (r, end)));
        }
        at = end;
    }
    if buf.len() >= MAX_REPLY {
        return Err(CheckError::Smtp(format!(
            "reply longer than {MAX_REPLY} bytes"
        )));
    }
    Ok(None)
}

/// One reply line without its line end: (code, whether it ends the reply, text).
fn parse_line(line: &[u8]) -> Result<(u16, bool, &[u8]), CheckError> {
    let malformed = || CheckError::Smtp(format!("malformed reply line '{}'", shown(line)));
    let (digits, rest) = line.split_at_checked(3).ok_or_else(malformed)?;
    // RFC 5321 §4.2: the first digit is 2 to 5, the second 0 to 5 (1yz is accepted as a code)
    let code_ok = matches!(digits[0], b'1'..=b'5')
        && matches!(digits[1], b'0'..=b'5')
        && digits[2].is_ascii_digit();
    if !code_ok {
        return Err(malformed());
    }
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    match rest.split_first() {
        None => Ok((code, true, rest)),
        Some((b' ', text)) => Ok((code, true, text)),
        Some((b'-', text)) => Ok((code, false, text)),
        Some(_) => Err(malformed()),
    }
}

/// Where the conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    Helo,
    Done,
}

/// What to do after a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send these bytes, then read the next reply.
    Send(Vec<u8>),
    /// The server is up; say `QUIT` and close.
    Up,
}

/// The SMTP conversation of one check, fed one reply at a time.
#[derive(Debug)]
pub struct Conversation {
    state: State,
    helo: String,
}

impl Conversation {
    pub fn new(smtp: &SmtpCheck) -> Self {
        Conversation {
            state: State::Greeting,
            helo: smtp.helo_name.clone(),
        }
    }

    /// What the reply we are waiting for is, for an error ("the greeting").
    pub fn awaiting(&self) -> &'static str {
        match self.state {
            State::Greeting => "the greeting",
            State::Helo => "the HELO reply",
            State::Done => "nothing",
        }
    }

    /// The next step after `reply`, or why the server is down.
    pub fn on_reply(&mut self, reply: &Reply) -> Result<Next, CheckError> {
        match (self.state, reply.code) {
            // a server ready for mail: introduce ourselves
            (State::Greeting, 220) => {
                self.state = State::Helo;
                Ok(Next::Send(format!("HELO {}\r\n", self.helo).into_bytes()))
            }
            // HELO accepted: the server is up
            (State::Helo, 250) => {
                self.state = State::Done;
                Ok(Next::Up)
            }
            // any other code, or a reply after the verdict: down
            (state, _) => {
                let want = match state {
                    State::Greeting => "220",
                    State::Helo => "250",
                    State::Done => "none",
                };
                Err(CheckError::Smtp(format!(
                    "{} was '{}', expected {want}",
                    self.awaiting(),
                    shown(reply.to_string().as_bytes())
                )))
            }
        }
    }
}

/// Read one reply into `buf` (which may already hold the start of it), within `limit`.
async fn read_reply(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    limit: Duration,
    what: &str,
) -> Result<Reply, CheckError> {
    let read = async {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some((reply, used)) = parse_reply(buf)? {
                buf.drain(..used);
                return Ok(reply);
            }
            // never hold more than one reply's worth
            let room = (MAX_REPLY + 1 - buf.len()).min(chunk.len());
            let n = stream.read(&mut chunk[..room]).await?;
            if n == 0 {
                let partial = if buf.is_empty() {
                    String::new()
                } else {
                    format!(" (after '{}')", shown(buf))
                };
                return Err(CheckError::Smtp(format!(
                    "connection closed before {what}{partial}"
                )));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    match tokio::time::timeout(limit, read).await {
        Ok(r) => r,
        Err(_) => Err(CheckError::Smtp(format!(
            "{what} did not arrive within {limit:?}"
        ))),
    }
}

/// Run the check.
pub async fn check(
    checker: &Checker,
    smtp: &SmtpCheck,
    target: SocketAddr,
) -> Result<(), CheckError> {
    let mut stream = connect(checker, target).await?;
    let limit = checker.connect_timeout;
    let mut conv = Conversation::new(smtp);
    let mut buf = Vec::new();
    loop {
        let reply = read_reply(&mut stream, &mut buf, limit, conv.awaiting()).await?;
        match conv.on_reply(&reply)? {
            Next::Send(line) => {
                crate::error::with_timeout(limit, async { Ok(stream.write_all(&line).await?) })
                    .await?
            }
            Next::Up => break,
        }
    }
    // Up. A polite end: QUIT and its reply, whose fate changes nothing.
    let quit =
        crate::error::with_timeout(limit, async { Ok(stream.write_all(b"QUIT\r\n").await?) });
    if quit.await.is_ok() {
        let _ = read_reply(&mut stream, &mut buf, limit, "the QUIT reply").await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, CheckError> {
        parse_reply(buf)
    }

    #[test]
    fn single_line_replies() {
        let (r, n) = reply(b"220 mx.example ESMTP\r\nrest").unwrap().unwrap();
        assert_eq!((r.code, r.text.as_str(), n), (220, "mx.example ESMTP", 22));
        // bare LF and a bare code are replies too
        let (r, n) = reply(b"250\n").unwrap().unwrap();
        assert_eq!((r.code, r.text.as_str(), n), (250, "", 4));
        assert_eq!(r.to_string(), "250");
    }

    #[test]
    fn multi_line_replies_end_at_the_line_without_a_dash() {
        let text = b"250-mx.example Hello\r\n250-PIPELINING\r\n250 8BITMIME\r\n221 x\r\n";
        let (r, n) = reply(text).unwrap().unwrap();
        assert_eq!((r.code, r.text.as_str()), (250, "mx.example Hello"));
        assert_eq!(&text[n..], b"221 x\r\n");
        // every prefix short of the last line is incomplete, not an error
        for cut in 0..n {
            assert_eq!(reply(&text[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn malformed_lines_are_errors() {
        for bad in [
            &b"hello\r\n"[..],
            b"22\r\n",
            b"2x0 ok\r\n",
            b"220_ok\r\n",
            b"620 ok\r\n",
            b"270 ok\r\n",
            b"\r\n",
            b"SSH-2.0-OpenSSH_9.2\r\n",
        ] {
            let e = reply(bad).unwrap_err();
            assert!(e.to_string().contains("malformed reply line"), "{e}");
        }
        // a continuation with another code
        let e = reply(b"250-a\r\n220 b\r\n").unwrap_err();
        assert!(e.to_string().contains("another code"), "{e}");
        // the bad line is shown escaped and shortened
        let e = reply(b"\x00\x01\xffjunk\n").unwrap_err().to_string();
        assert!(e.contains("\\x00\\x01\\xffjunk"), "{e}");
        let e = reply(&[b'x'; 300].iter().chain(b"\n").copied().collect::<Vec<_>>())
            .unwrap_err()
            .to_string();
        assert!(e.len() < 120, "{e}");
    }

    #[test]
    fn oversize_replies_are_errors() {
        // one endless line
        let e = reply(&vec![b'2'; MAX_REPLY]).unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
        assert_eq!(reply(&vec![b'2'; MAX_REPLY - 1]).unwrap(), None);
        // endless continuation lines
        let many: Vec<u8> = b"250-x\r\n".repeat(MAX_REPLY / 7 + 1);
        let e = reply(&many).unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
        // a reply that ends exactly at the bound is fine
        let mut exact = b"250-".to_vec();
        exact.resize(MAX_REPLY - 7, b'a');
        exact.extend_from_slice(b"\r\n250\r\n");
        assert_eq!(exact.len(), MAX_REPLY);
        assert_eq!(reply(&exact).unwrap().unwrap().1, MAX_REPLY);
    }

    fn conv() -> Conversation {
        Conversation::new(&SmtpCheck {
            helo_name: "checker.example".into(),
        })
    }

    fn r(code: u16, text: &str) -> Reply {
        Reply {
            code,
            text: text.into(),
        }
    }

    #[test]
    fn conversation_greeting_helo_up() {
        let mut c = conv();
        assert_eq!(
            c.on_reply(&r(220, "mx ESMTP")).unwrap(),
            Next::Send(b"HELO checker.example\r\n".to_vec())
        );
        assert_eq!(c.awaiting(), "the HELO reply");
        assert_eq!(c.on_reply(&r(250, "hi")).unwrap(), Next::Up);
        assert!(c.on_reply(&r(250, "again")).is_err());
    }

    #[test]
    fn conversation_wrong_codes_say_what_was_expected() {
        let e = conv().on_reply(&r(554, "no service")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "SMTP: the greeting was '554 no service', expected 220"
        );
        // a 2xx greeting other than 220 is not 220 (keepalived)
        assert!(conv().on_reply(&r(250, "")).is_err());
        let mut c = conv();
        c.on_reply(&r(220, "")).unwrap();
        let e = c.on_reply(&r(501, "bad HELO")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "SMTP: the HELO reply was '501 bad HELO', expected 250"
        );
    }
}
