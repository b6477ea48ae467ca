//! The `--metrics` endpoint: `GET /metrics` answers the run's
//! [`Metrics`] in the Prometheus text format; any other path is 404, another
//! method on `/metrics` 405.
//!
//! HTTP/1.1 by hyper, on a thread of its own running its own small tokio
//! runtime, not on the live loop's: that loop writes its output with
//! blocking writes (a slow terminal or pipe stalls it) and waits for the
//! holder scans at the end, and a scrape must be answered meanwhile, with the
//! counters as they are (they are atomics shared with the sink). Each scrape
//! renders the registry on this thread; the event loop never waits for it.
//! At most [`MAX_CONNECTIONS`] connections are served at once (others are
//! closed at once) and a client gets [`HEADER_TIMEOUT`] to send a request's
//! headers, so idle or slow clients cannot pile up.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;

use crate::sink::metrics::{self, Metrics};

/// Connections served at once (a scraper or two keep one each).
pub const MAX_CONNECTIONS: usize = 16;
/// Time a client has to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (out of file descriptors), not to spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Listen on `addr`: the step that fails on the user's input (an address in
/// use, not on this machine, a privileged port), done at start-up.
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serve `metrics` on `listener` from a thread of its own for the rest of
/// the process's life; the address it listens on (the port picked when
/// asked for port 0).
pub fn spawn(listener: std::net::TcpListener, metrics: Metrics) -> io::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let listener = {
        let _runtime = rt.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    std::thread::Builder::new()
        .name("mntrace-metrics".into())
        .spawn(move || rt.block_on(serve(listener, metrics)))?;
    Ok(addr)
}

async fn serve(listener: tokio::net::TcpListener, metrics: Metrics) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // too many connections: this one is closed
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                std::future::ready(Ok::<_, Infallible>(respond(&req, &metrics)))
            });
            // A connection's errors (the client went away, timed out) end
            // that connection only.
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(slot);
        });
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The answer to one request.
fn respond<B>(req: &Request<B>, metrics: &Metrics) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        return text(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n",
        );
    }
    if *req.method() != Method::GET && *req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match metrics.render() {
        Ok(body) => {
            let mut r = text(StatusCode::OK, body);
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            r
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into()
    }

    #[test]
    fn serves_metrics_and_nothing_else_over_loopback() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = spawn(listener, Metrics::new()).unwrap();
        assert_ne!(addr.port(), 0, "the port picked is reported");
        let agent = agent();

        let mut r = agent.get(&format!("http://{addr}/metrics")).call().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let body = r.body_mut().read_to_string().unwrap();
        assert!(
            body.contains("# TYPE mntrace_events_total counter\n"),
            "{body}"
        );
        assert!(body.contains("mntrace_events_total{syscall=\"umount\"} 0\n"));

        for path in ["/", "/metrics/", "/metricsx", "/favicon.ico"] {
            let r = agent.get(&format!("http://{addr}{path}")).call().unwrap();
            assert_eq!(r.status(), 404, "{path}");
        }
        let r = agent
            .post(&format!("http://{addr}/metrics"))
            .send_empty()
            .unwrap();
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()["allow"], "GET, HEAD");

        // The address is taken now: a second bind fails, naming why.
        let e = bind(addr).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }
}
