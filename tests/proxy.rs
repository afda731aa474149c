//! A fault proxy for the emulator tests: a small HTTP/1.1 relay on 127.0.0.1 in front of the emulator that, for
//! the requests its rule picks, lets the emulator carry the call out and then loses the answer: it reads the whole
//! response and closes the client's connection without writing a byte of it. That is what a timeout or a
//! connection reset after the request reached AWS looks like to the SDK, which then sends the call again.
//!
//! std::net and one thread per connection (tokio's "net" and "io-util" features are not enabled for this crate).
//! Each upstream exchange uses a fresh connection to the emulator; the client side keeps its connection alive
//! across requests. Requests are framed by Content-Length (or chunked), responses by Content-Length, chunked, or
//! the end of the connection. Only loopback traffic: it listens on 127.0.0.1 and refuses an upstream that is not.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest a connection may sit idle, or an exchange may take, before the proxy gives up on it.
const IDLE: Duration = Duration::from_secs(300);
/// Largest request or response head accepted (the emulator's and the SDK's are a few hundred bytes).
const MAX_HEAD: usize = 64 * 1024;

/// Which answers to lose: those of the first `first` requests of every action `pick` accepts (counted per action,
/// in the order the requests reach the proxy).
pub struct Rule {
    pick: Box<dyn Fn(&str) -> bool + Send + Sync>,
    first: usize,
}

impl Rule {
    pub fn first_of(first: usize, pick: impl Fn(&str) -> bool + Send + Sync + 'static) -> Rule {
        Rule { pick: Box::new(pick), first }
    }

    /// The first `first` requests of each of the named actions.
    #[allow(dead_code)] // The configurable form; lost_answer uses `first_create`.
    pub fn actions(first: usize, names: &[&str]) -> Rule {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        Rule::first_of(first, move |action| names.iter().any(|n| n == action))
    }

    /// The first answer of every EC2 create except CreateTags (which is safe to repeat): the calls that make a
    /// second resource when repeated without an idempotency token.
    pub fn first_create() -> Rule {
        Rule::first_of(1, |action| action.starts_with("Create") && action != "CreateTags")
    }

    /// Loses nothing: a plain relay.
    #[allow(dead_code)] // For checking the harness itself.
    pub fn none() -> Rule {
        Rule::first_of(0, |_| false)
    }
}

/// One request the proxy relayed (or tried to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The API action (`Action=` of a query-protocol call, else the `X-Amz-Target` operation, else method and
    /// path).
    pub action: String,
    /// The answer was lost: the client's connection was closed without it.
    pub dropped: bool,
    /// The status the emulator answered with (None: the emulator could not be reached or answered garbage, and
    /// the client's connection was closed).
    pub status: Option<u16>,
}

/// The running proxy. Dropping it stops it: no new connections, open ones closed.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    upstream: SocketAddr,
    rule: Rule,
    seen: Mutex<HashMap<String, usize>>,
    log: Mutex<Vec<Exchange>>,
    stop: AtomicBool,
    /// Open client connections, so stopping can close them (their threads then end on EOF).
    clients: Mutex<HashMap<usize, TcpStream>>,
    next_client: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Proxy {
    /// Starts a proxy on an ephemeral 127.0.0.1 port in front of `upstream` (`http://host:port`, loopback only).
    pub fn start(upstream: &str, rule: Rule) -> Proxy {
        let hostport = upstream
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("the fault proxy speaks plain HTTP only; upstream is {upstream}"))
            .trim_end_matches('/');
        let upstream_addr = hostport
            .to_socket_addrs()
            .unwrap_or_else(|e| panic!("cannot resolve upstream {hostport}: {e}"))
            .find(|a| a.ip().is_loopback())
            .unwrap_or_else(|| panic!("the fault proxy only relays to loopback; {upstream} is not"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy on 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream: upstream_addr,
            rule,
            seen: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            clients: Mutex::new(HashMap::new()),
            next_client: AtomicUsize::new(0),
        });
        let s = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("fault-proxy-accept".into())
            .spawn(move || accept_loop(listener, s))
            .expect("spawn the fault proxy");
        Proxy { addr, shared, accept: Some(accept) }
    }

    /// The proxy's own endpoint, for `--endpoint-url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request relayed so far, in the order their exchanges with the emulator ended.
    pub fn log(&self) -> Vec<Exchange> {
        lock(&self.shared.log).clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop, which then sees `stop`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        for (_, c) in lock(&self.shared.clients).drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        if !conn.peer_addr().is_ok_and(|p| p.ip().is_loopback()) {
            continue; // dropped: loopback only
        }
        let id = shared.next_client.fetch_add(1, Ordering::SeqCst);
        if let Ok(c) = conn.try_clone() {
            lock(&shared.clients).insert(id, c);
        }
        let s = Arc::clone(&shared);
        let spawned = std::thread::Builder::new().name(format!("fault-proxy-{id}")).spawn(move || {
            let _ = serve(conn, &s);
            lock(&s.clients).remove(&id);
        });
        if spawned.is_err() {
            lock(&shared.clients).remove(&id);
        }
    }
}

impl Shared {
    /// Counts this request of `action` and says whether its answer is to be lost.
    fn lose(&self, action: &str) -> bool {
        let mut seen = lock(&self.seen);
        let n = seen.entry(action.to_string()).or_insert(0);
        let before = *n;
        *n += 1;
        before < self.rule.first && (self.rule.pick)(action)
    }

    fn record(&self, action: String, dropped: bool, status: Option<u16>) {
        lock(&self.log).push(Exchange { action, dropped, status });
    }
}

/// One client connection: requests in turn until the client closes, the proxy stops, or an answer is lost.
fn serve(client: TcpStream, shared: &Shared) -> io::Result<()> {
    client.set_read_timeout(Some(IDLE))?;
    client.set_write_timeout(Some(IDLE))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client;
    loop {
        let Some(request) = read_message(&mut reader, None)? else { return Ok(()) };
        if shared.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let action = action_of(&request);
        let lose = shared.lose(&action);
        let response = forward(shared.upstream, &request);
        let Ok(response) = response else {
            shared.record(action, false, None);
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        };
        shared.record(action, lose, response.status);
        if lose {
            // The emulator has carried the call out; its answer goes nowhere.
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
        writer.write_all(&response.head)?;
        writer.write_all(&response.body)?;
        writer.flush()?;
        if request.close || response.close {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// Sends `request` to the emulator on a connection of its own and reads the whole answer.
fn forward(upstream: SocketAddr, request: &Message) -> io::Result<Message> {
    let mut up = TcpStream::connect_timeout(&upstream, Duration::from_secs(10))?;
    up.set_read_timeout(Some(IDLE))?;
    up.set_write_timeout(Some(IDLE))?;
    up.write_all(&request.head)?;
    up.write_all(&request.body)?;
    up.flush()?;
    let mut reader = BufReader::new(up);
    // Interim 1xx answers are kept in front of the final one.
    let mut head = Vec::new();
    loop {
        let mut response = read_message(&mut reader, Some(&request.method))?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the emulator closed without answering"))?;
        if response.status.is_some_and(|s| (100..200).contains(&s) && s != 101) {
            head.extend_from_slice(&response.head);
            continue;
        }
        head.extend_from_slice(&response.head);
        response.head = head;
        return Ok(response);
    }
}

/// An HTTP/1.1 message as it was on the wire (head and body verbatim), with what the proxy needs to know of it.
struct Message {
    head: Vec<u8>,
    body: Vec<u8>,
    /// Request method (empty for a response).
    method: String,
    /// Request target (empty for a response).
    target: String,
    /// Response status (None for a request).
    status: Option<u16>,
    headers: Vec<(String, String)>,
    /// The connection ends after this message.
    close: bool,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Reads one message: a request when `request_method` is None, else the response to a request of that method.
/// None when the connection ends cleanly before a message starts.
fn read_message(r: &mut impl BufRead, request_method: Option<&str>) -> io::Result<Option<Message>> {
    let mut head = Vec::new();
    // The start line; empty lines before a request are ignored (RFC 9112, 2.2).
    let start = loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return if head.is_empty() { Ok(None) } else { Err(bad("connection closed inside a message head")) };
        }
        head.extend_from_slice(&line);
        if head.len() > MAX_HEAD {
            return Err(bad("message head too large"));
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        if !text.is_empty() {
            break text;
        }
        head.clear();
    };
    let mut headers = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Err(bad("connection closed inside a message head"));
        }
        head.extend_from_slice(&line);
        if head.len() > MAX_HEAD {
            return Err(bad("message head too large"));
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        if text.is_empty() {
            break;
        }
        let (k, v) = text.split_once(':').ok_or_else(|| bad(format!("malformed header line {text:?}")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut parts = start.split_whitespace();
    let (method, target, status, version) = match request_method {
        None => {
            let method = parts.next().unwrap_or_default().to_string();
            let target = parts.next().unwrap_or_default().to_string();
            let version = parts.next().unwrap_or_default().to_string();
            (method, target, None, version)
        }
        Some(_) => {
            let version = parts.next().unwrap_or_default().to_string();
            let status = parts.next().and_then(|s| s.parse::<u16>().ok());
            if status.is_none() {
                return Err(bad(format!("malformed status line {start:?}")));
            }
            (String::new(), String::new(), status, version)
        }
    };
    if !version.starts_with("HTTP/1.") {
        return Err(bad(format!("not HTTP/1.x: {start:?}")));
    }
    let mut message = Message { head, body: Vec::new(), method, target, status, headers, close: false };
    let connection = message.header("connection").map(str::to_ascii_lowercase).unwrap_or_default();
    message.close = connection.contains("close") || (version == "HTTP/1.0" && !connection.contains("keep-alive"));

    let chunked = message.header("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    let length = match message.header("content-length") {
        Some(v) => Some(v.parse::<usize>().map_err(|_| bad(format!("bad Content-Length {v:?}")))?),
        None => None,
    };
    let bodiless = match (request_method, status) {
        (Some(m), Some(s)) => m.eq_ignore_ascii_case("HEAD") || (100..200).contains(&s) || s == 204 || s == 304,
        _ => false,
    };
    if bodiless {
    } else if chunked {
        read_chunked(r, &mut message.body)?;
    } else if let Some(n) = length {
        message.body.resize(n, 0);
        r.read_exact(&mut message.body)?;
    } else if request_method.is_some() {
        // A response with no framing runs to the end of the connection, which then closes.
        r.read_to_end(&mut message.body)?;
        message.close = true;
    }
    Ok(Some(message))
}

/// A chunked body, verbatim (chunk sizes, data, trailers).
fn read_chunked(r: &mut impl BufRead, out: &mut Vec<u8>) -> io::Result<()> {
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Err(bad("connection closed inside a chunked body"));
        }
        out.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line);
        let size = text.trim().split(';').next().unwrap_or_default().trim().to_string();
        let size = usize::from_str_radix(&size, 16).map_err(|_| bad(format!("bad chunk size {size:?}")))?;
        if size == 0 {
            // Trailers, up to an empty line.
            loop {
                let mut line = Vec::new();
                if r.read_until(b'\n', &mut line)? == 0 {
                    return Err(bad("connection closed inside chunked trailers"));
                }
                out.extend_from_slice(&line);
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    return Ok(());
                }
            }
        }
        let start = out.len();
        out.resize(start + size + 2, 0); // the data and its CRLF
        r.read_exact(&mut out[start..])?;
    }
}

/// The API action a request calls.
fn action_of(request: &Message) -> String {
    let form = request
        .header("content-type")
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    let from_body = if form { form_action(&String::from_utf8_lossy(&request.body)) } else { None };
    let from_query = || request.target.split_once('?').and_then(|(_, q)| form_action(q));
    let from_target = || request.header("x-amz-target").map(|t| t.rsplit('.').next().unwrap_or(t).to_string());
    from_body
        .or_else(from_query)
        .or_else(from_target)
        .unwrap_or_else(|| format!("{} {}", request.method, request.target))
}

fn form_action(form: &str) -> Option<String> {
    form.split('&').find_map(|pair| pair.strip_prefix("Action=")).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn action_comes_from_the_form_body() {
        assert_eq!(
            form_action("Version=2016-11-15&Action=CreateVpc&CidrBlock=10.0.0.0%2F16").as_deref(),
            Some("CreateVpc")
        );
        assert_eq!(form_action("Action=CreateTags&ResourceId.1=vpc-1").as_deref(), Some("CreateTags"));
        assert_eq!(form_action("Version=2016-11-15"), None);
    }

    /// A stand-in emulator: answers every request with its action, in a chunked body for DescribeVpcs.
    fn upstream(carried_out: Arc<Mutex<Vec<String>>>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let carried_out = Arc::clone(&carried_out);
                std::thread::spawn(move || {
                    let mut w = conn.try_clone().unwrap();
                    let mut r = BufReader::new(conn);
                    while let Ok(Some(request)) = read_message(&mut r, None) {
                        let action = action_of(&request);
                        lock(&carried_out).push(action.clone());
                        let answer = if action == "DescribeVpcs" {
                            format!(
                                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{action}\r\n0\r\n\r\n",
                                action.len()
                            )
                        } else {
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{action}", action.len())
                        };
                        if w.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        url
    }

    fn send(c: &mut TcpStream, action: &str) {
        let body = format!("Action={action}&Version=2016-11-15");
        let request = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        c.write_all(request.as_bytes()).unwrap();
    }

    #[test]
    fn relays_several_requests_per_connection_and_loses_only_the_chosen_answers() {
        let carried_out = Arc::new(Mutex::new(Vec::new()));
        let proxy = Proxy::start(&upstream(Arc::clone(&carried_out)), Rule::first_create());
        let connect = || {
            let c = TcpStream::connect(proxy.addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c
        };
        let mut c = connect();
        let mut r = BufReader::new(c.try_clone().unwrap());
        for action in ["DescribeVpcs", "CreateTags", "DescribeVpcs"] {
            send(&mut c, action);
            let answer = read_message(&mut r, Some("POST")).unwrap().expect("an answer");
            assert_eq!(answer.status, Some(200));
            assert!(String::from_utf8_lossy(&answer.body).contains(action), "{action}");
        }
        // The first CreateVpc is carried out, and its answer lost: the connection ends without a byte.
        send(&mut c, "CreateVpc");
        let mut rest = Vec::new();
        let _ = r.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
        // The second is answered.
        let mut c = connect();
        let mut r = BufReader::new(c.try_clone().unwrap());
        send(&mut c, "CreateVpc");
        assert_eq!(read_message(&mut r, Some("POST")).unwrap().unwrap().body, b"CreateVpc");

        let log: Vec<(String, bool)> = proxy.log().into_iter().map(|e| (e.action, e.dropped)).collect();
        let want = [
            ("DescribeVpcs", false),
            ("CreateTags", false),
            ("DescribeVpcs", false),
            ("CreateVpc", true),
            ("CreateVpc", false),
        ]
        .map(|(a, d)| (a.to_string(), d));
        assert_eq!(log, want);
        assert_eq!(*lock(&carried_out), ["DescribeVpcs", "CreateTags", "DescribeVpcs", "CreateVpc", "CreateVpc"]);
        drop(proxy);
    }
}
