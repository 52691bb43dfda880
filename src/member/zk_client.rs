//! ZooKeeper's client protocol (jute records over TCP), only what membership needs: a session,
//! digest authentication, `sync`, `getData` and an incremental `reconfig`, each call bounded in
//! time. Records as in ZooKeeper 3.8's zookeeper.jute: big-endian integers, strings and buffers
//! as a 4-byte length (-1: null) and the bytes, every packet behind its 4-byte length.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::time::Duration;

use anyhow::anyhow;

use super::CallError;

/// The znode that holds the ensemble's dynamic configuration.
pub const CONFIG_NODE: &str = "/zookeeper/config";

const OP_GET_DATA: i32 = 4;
const OP_SYNC: i32 = 9;
const OP_RECONFIG: i32 = 16;
const OP_AUTH: i32 = 100;
const OP_CLOSE: i32 = -11;
/// The xid ZooKeeper reserves for authentication packets.
const AUTH_XID: i32 = -4;
/// The session timeout asked for; the server bounds it to 2..20 ticks.
const SESSION_TIMEOUT_MS: i32 = 10_000;
/// The largest packet accepted (ZooKeeper's own default jute.maxbuffer is 1 MiB).
const MAX_PACKET: usize = 4 << 20;

/// The name of a KeeperException code, and whether ZooKeeper lifts it by itself.
fn keeper_error(code: i32) -> (&'static str, bool) {
    match code {
        -4 => ("ConnectionLoss", true),
        -7 => ("OperationTimeout", true),
        -13 => (
            "NewConfigNoQuorum: no quorum of the new configuration is connected and synced",
            true,
        ),
        -14 => ("ReconfigInProgress", true),
        -112 => ("SessionExpired", true),
        -118 => ("SessionMoved", true),
        -122 => ("RequestTimeout", true),
        -127 => ("Throttled", true),
        -6 => (
            "Unimplemented (a standalone server cannot be reconfigured)",
            false,
        ),
        -8 => ("BadArguments", false),
        -101 => ("NoNode", false),
        -102 => (
            "NoAuth: the super user's password does not match the ensemble's superDigest",
            false,
        ),
        -103 => ("BadVersion", false),
        -115 => ("AuthFailed", false),
        -123 => (
            "ReconfigDisabled: the servers run without reconfigEnabled=true",
            false,
        ),
        _ => ("an error", false),
    }
}

/// One session with one server, closed when dropped.
pub struct Session {
    stream: TcpStream,
    /// host:port, for messages.
    pub server: String,
    xid: i32,
    /// No session to close: not opened yet, or closed.
    closed: bool,
}

/// Appends jute records.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn int(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn long(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn bool(&mut self, v: bool) -> &mut Self {
        self.0.push(u8::from(v));
        self
    }
    fn buffer(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            None => self.int(-1),
            Some(bytes) => {
                self.int(i32::try_from(bytes.len()).unwrap_or(i32::MAX));
                self.0.extend_from_slice(bytes);
                self
            }
        }
    }
    fn string(&mut self, v: Option<&str>) -> &mut Self {
        self.buffer(v.map(str::as_bytes))
    }
}

/// Reads jute records from one packet.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CallError> {
        if self.0.len() < n {
            return Err(CallError::Refused(anyhow!(
                "a ZooKeeper answer shorter than its records"
            )));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn int(&mut self) -> Result<i32, CallError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn long(&mut self) -> Result<i64, CallError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }
    fn buffer(&mut self) -> Result<Vec<u8>, CallError> {
        let len = self.int()?;
        if len < 0 {
            return Ok(Vec::new());
        }
        Ok(self.take(len as usize)?.to_vec())
    }
}

impl Session {
    /// Connects to `server` (host:port) and opens a session. A server that is not serving (it
    /// looks for a leader, or is not a member yet) closes the connection: `Unreachable`.
    pub fn open(server: &str, connect: Duration, timeout: Duration) -> Result<Session, CallError> {
        let unreachable = |e: std::io::Error| CallError::Unreachable(anyhow!("{server}: {e}"));
        let addrs: Vec<_> = server.to_socket_addrs().map_err(unreachable)?.collect();
        let mut last = None;
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, connect) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = stream.ok_or_else(|| {
            unreachable(last.unwrap_or_else(|| std::io::Error::other("no address")))
        })?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(unreachable)?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(unreachable)?;
        let _ = stream.set_nodelay(true);
        let mut session = Session {
            stream,
            server: server.to_string(),
            xid: 0,
            closed: true,
        };
        // ConnectRequest, then the readOnly flag of clients since 3.4.
        let mut request = Writer::default();
        request
            .int(0)
            .long(0)
            .int(SESSION_TIMEOUT_MS)
            .long(0)
            .buffer(Some(&[0u8; 16]))
            .bool(false);
        session.send(&request.0)?;
        let answer = session.receive().map_err(|e| {
            CallError::Unreachable(anyhow!(
                "{server} is not serving clients ({})",
                e.into_inner()
            ))
        })?;
        let mut reader = Reader(&answer);
        let _protocol = reader.int()?;
        let negotiated = reader.int()?;
        let session_id = reader.long()?;
        if negotiated <= 0 || session_id == 0 {
            return Err(CallError::Unreachable(anyhow!(
                "{server} refused a session (it is not serving clients)"
            )));
        }
        session.closed = false;
        Ok(session)
    }

    /// Whether a server listens at `server` (host:port), serving or not.
    pub fn listening(server: &str, connect: Duration) -> bool {
        server.to_socket_addrs().is_ok_and(|mut addrs| {
            addrs.any(|addr| TcpStream::connect_timeout(&addr, connect).is_ok())
        })
    }

    fn send(&mut self, payload: &[u8]) -> Result<(), CallError> {
        let mut packet = Vec::with_capacity(payload.len() + 4);
        packet.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        packet.extend_from_slice(payload);
        self.stream
            .write_all(&packet)
            .map_err(|e| CallError::Unreachable(anyhow!("{}: {e}", self.server)))
    }

    fn receive(&mut self) -> Result<Vec<u8>, CallError> {
        let lost = |server: &str, e: std::io::Error| {
            CallError::Busy(anyhow!("{server}: connection lost ({e})"))
        };
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .map_err(|e| lost(&self.server, e))?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_PACKET {
            return Err(CallError::Refused(anyhow!(
                "{}: a packet of {len} bytes; not a ZooKeeper server?",
                self.server
            )));
        }
        let mut payload = vec![0u8; len];
        self.stream
            .read_exact(&mut payload)
            .map_err(|e| lost(&self.server, e))?;
        Ok(payload)
    }

    /// Sends one request and returns the body of its reply, or the server's error.
    fn call(&mut self, op: i32, body: &[u8], what: &str) -> Result<Vec<u8>, CallError> {
        let xid = if op == OP_AUTH {
            AUTH_XID
        } else {
            self.xid += 1;
            self.xid
        };
        let mut request = Writer::default();
        request.int(xid).int(op);
        request.0.extend_from_slice(body);
        self.send(&request.0)?;
        loop {
            let answer = self.receive()?;
            let mut reader = Reader(&answer);
            let reply_xid = reader.int()?;
            let _zxid = reader.long()?;
            let err = reader.int()?;
            // Watch notifications (-1) and pings (-2) are not answers; none are asked for.
            if reply_xid != xid {
                continue;
            }
            if err != 0 {
                let (name, transient) = keeper_error(err);
                let e = anyhow!("{}: {what}: {name} ({err})", self.server);
                return Err(if transient {
                    CallError::Busy(e)
                } else {
                    CallError::Refused(e)
                });
            }
            return Ok(reader.0.to_vec());
        }
    }

    /// Authenticates with the digest scheme as `user:password`.
    pub fn auth_digest(&mut self, user_password: &str) -> Result<(), CallError> {
        let mut body = Writer::default();
        body.int(0)
            .string(Some("digest"))
            .buffer(Some(user_password.as_bytes()));
        self.call(OP_AUTH, &body.0, "authenticate").map(drop)
    }

    /// Brings this server up to date with the leader (for a read that follows).
    pub fn sync(&mut self, path: &str) -> Result<(), CallError> {
        let mut body = Writer::default();
        body.string(Some(path));
        self.call(OP_SYNC, &body.0, "sync").map(drop)
    }

    /// The data of a znode.
    pub fn get_data(&mut self, path: &str) -> Result<Vec<u8>, CallError> {
        let mut body = Writer::default();
        body.string(Some(path)).bool(false);
        let answer = self.call(OP_GET_DATA, &body.0, &format!("getData {path}"))?;
        Reader(&answer).buffer()
    }

    /// An incremental reconfig: `joining` as `server.N=...` specs, `leaving` as server ids,
    /// comma-separated. Returns the new configuration as ZooKeeper writes it.
    pub fn reconfig(
        &mut self,
        joining: Option<&str>,
        leaving: Option<&str>,
    ) -> Result<Vec<u8>, CallError> {
        let mut body = Writer::default();
        body.string(joining).string(leaving).string(None).long(-1);
        let what = match (joining, leaving) {
            (Some(j), None) => format!("reconfig -add {j}"),
            (None, Some(l)) => format!("reconfig -remove {l}"),
            (j, l) => format!(
                "reconfig -remove {} -add {}",
                l.unwrap_or(""),
                j.unwrap_or("")
            ),
        };
        let answer = self.call(OP_RECONFIG, &body.0, &what)?;
        Reader(&answer).buffer()
    }

    /// Closes the session. Closing is a transaction the leader commits through a quorum, after
    /// every earlier one: once it is answered, a reconfig made in this session is in force.
    pub fn close(mut self) -> Result<(), CallError> {
        self.closed = true;
        self.call(OP_CLOSE, &[], "close the session").map(drop)
    }
}

impl Drop for Session {
    /// Closes the session, best effort and briefly: a server that stopped answering would
    /// otherwise hold the caller for a whole call's timeout.
    fn drop(&mut self) {
        if !self.closed {
            self.closed = true;
            let _ = self
                .stream
                .set_read_timeout(Some(Duration::from_millis(500)));
            let _ = self.call(OP_CLOSE, &[], "close the session");
        }
    }
}

/// ZooKeeper's digest of `user:password`, as its `DigestAuthenticationProvider.superDigest`
/// takes it: `user:` and the base64 of the SHA-1 of `user:password`.
pub fn digest(user: &str, password: &str) -> String {
    let hash = sha1(format!("{user}:{password}").as_bytes());
    format!("{user}:{}", base64(&hash))
}

/// SHA-1 (FIPS 180-4), for the digest above only.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, word) in out.chunks_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_matches_the_standard_vectors() {
        let hex = |b: [u8; 20]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
    }

    #[test]
    fn the_digest_is_the_one_zookeeper_computes() {
        // Python: base64.b64encode(hashlib.sha1(b"super:secret").digest()), the value that
        // ZooKeeper 3.8 accepted as superDigest in a reconfig run by hand.
        assert_eq!(
            digest("super", "secret"),
            "super:lK75jTNcA+U9vtVEw5vB51mj/w4="
        );
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }

    /// A server at a local port that answers one connection as `serve` says.
    fn server(
        serve: impl FnOnce(&mut TcpStream) + Send + 'static,
    ) -> (String, std::thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let thread = std::thread::spawn(move || serve(&mut listener.accept().unwrap().0));
        (address, thread)
    }

    /// One packet, `None` once the client closed the connection.
    fn read_packet(stream: &mut TcpStream) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).ok()?;
        let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut payload).ok()?;
        Some(payload)
    }

    fn write_packet(stream: &mut TcpStream, payload: &[u8]) {
        let mut packet = (payload.len() as u32).to_be_bytes().to_vec();
        packet.extend_from_slice(payload);
        stream.write_all(&packet).unwrap();
    }

    /// A request's xid and op.
    fn head(request: &[u8]) -> (i32, i32) {
        let mut r = Reader(request);
        (r.int().unwrap(), r.int().unwrap())
    }

    /// The ConnectResponse of a session `id` (0: refused).
    fn connected(stream: &mut TcpStream, id: i64) {
        read_packet(stream).unwrap();
        let mut w = Writer::default();
        w.int(0)
            .int(if id == 0 { 0 } else { 10_000 })
            .long(id)
            .buffer(Some(&[0; 16]));
        write_packet(stream, &w.0);
    }

    /// A reply to `xid`: its error code, then its body.
    fn reply(stream: &mut TcpStream, xid: i32, err: i32, body: &[u8]) {
        let mut w = Writer::default();
        w.int(xid).long(7).int(err);
        w.0.extend_from_slice(body);
        write_packet(stream, &w.0);
    }

    const BOUND: Duration = Duration::from_secs(10);

    #[test]
    fn a_session_reads_its_own_answers_and_sorts_keeper_errors() {
        let (address, thread) = server(|s| {
            connected(s, 42);
            let (xid, op) = head(&read_packet(s).unwrap());
            assert_eq!(op, OP_GET_DATA);
            // A ping and a notification are no answer to the call.
            reply(s, -2, 0, &[]);
            reply(s, -1, 0, &[]);
            let mut data = Writer::default();
            data.buffer(Some(b"version=1"));
            reply(s, xid, 0, &data.0);
            for err in [-14, -102] {
                let (xid, op) = head(&read_packet(s).unwrap());
                assert_eq!(op, OP_RECONFIG);
                reply(s, xid, err, &[]);
            }
            let (xid, op) = head(&read_packet(s).unwrap());
            assert_eq!(op, OP_CLOSE, "a dropped session is closed");
            reply(s, xid, 0, &[]);
        });
        let mut session = Session::open(&address, BOUND, BOUND).unwrap();
        assert_eq!(session.get_data(CONFIG_NODE).unwrap(), b"version=1");
        let busy = session.reconfig(Some("server.4=h:1:2"), None);
        assert!(matches!(busy, Err(CallError::Busy(_))), "{busy:?}");
        let refused = session.reconfig(None, Some("4"));
        match refused {
            Err(CallError::Refused(e)) => assert!(format!("{e}").contains("NoAuth"), "{e}"),
            other => panic!("{other:?}"),
        }
        drop(session);
        thread.join().unwrap();
    }

    #[test]
    fn a_refused_session_is_not_closed_again() {
        let (address, thread) = server(|s| {
            connected(s, 0);
            assert_eq!(read_packet(s), None, "nothing after the refusal");
        });
        let refused = Session::open(&address, BOUND, BOUND).err();
        assert!(
            matches!(refused, Some(CallError::Unreachable(_))),
            "{refused:?}"
        );
        thread.join().unwrap();
    }

    #[test]
    fn records_are_written_as_jute_does() {
        let mut w = Writer::default();
        w.string(Some("/a")).string(None).bool(true).long(-1);
        assert_eq!(
            w.0,
            [
                0, 0, 0, 2, b'/', b'a', 0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff
            ]
        );
        let mut r = Reader(&w.0);
        assert_eq!(r.buffer().unwrap(), b"/a");
        assert_eq!(r.buffer().unwrap(), b"");
        assert_eq!(r.0.len(), 9, "the flag and the long are left");
        assert!(Reader(&[0, 0]).int().is_err(), "a short record is an error");
    }
}
