//! A Prometheus text endpoint: `GET /metrics` on a local address. Only that
//! one request is understood; the server reads a bounded request head with a
//! timeout and never blocks the daemon.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Builds the text exposition format, one HELP/TYPE per metric name.
/// A family's samples must be written together (all of one name, then the
/// next): the format does not allow a name to come back after another.
/// Label values and HELP text are escaped; NaN and infinities are spelled
/// as Prometheus reads them. Writes straight into one string: a sample
/// allocates nothing.
#[derive(Default)]
pub struct Exposition {
    out: String,
    seen: BTreeSet<String>,
    /// The family being written.
    last: String,
}

/// `v` as a label value inside double quotes: backslash, quote and newline
/// escaped.
fn push_escaped(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HELP text: backslash and newline escaped (quotes are allowed as they are).
fn push_help(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

impl Exposition {
    /// An exposition expected to grow to about `bytes`.
    pub fn with_capacity(bytes: usize) -> Exposition {
        Exposition {
            out: String::with_capacity(bytes),
            ..Exposition::default()
        }
    }

    fn sample(&mut self, kind: &str, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        if !self.seen.contains(name) {
            self.seen.insert(name.to_owned());
            let _ = write!(self.out, "# HELP {name} ");
            push_help(&mut self.out, help);
            let _ = writeln!(self.out, "\n# TYPE {name} {kind}");
            self.last.clear();
            self.last.push_str(name);
        } else {
            debug_assert_eq!(
                self.last, name,
                "samples of one metric must be written together"
            );
        }
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                push_escaped(&mut self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        push_value(&mut self.out, v);
        self.out.push('\n');
    }

    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        self.sample("gauge", name, help, labels, v);
    }

    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        self.sample("counter", name, help, labels, v);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Serves `render()` at `GET /metrics` for as long as the runtime runs.
pub async fn serve(
    addr: SocketAddr,
    render: Arc<dyn Fn() -> String + Send + Sync>,
) -> std::io::Result<SocketAddr> {
    serve_until(addr, render, std::future::pending()).await
}

/// [`serve`] until `stop` completes; then the address is let go.
pub async fn serve_until(
    addr: SocketAddr,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        tokio::pin!(stop);
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = &mut stop => return,
            };
            let Ok((mut sock, _)) = accepted else {
                // Out of file descriptors, say: not a reason to spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let render = render.clone();
            tokio::spawn(async move {
                let mut head = Vec::with_capacity(512);
                let mut buf = [0u8; 512];
                let read = tokio::time::timeout(Duration::from_secs(2), async {
                    while head.len() < 8192 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                })
                .await;
                if read.is_err() {
                    return;
                }
                let (status, body) =
                    if head.starts_with(b"GET /metrics ") || head.starts_with(b"GET /metrics?") {
                        ("200 OK", render())
                    } else {
                        (
                            "404 Not Found",
                            "only GET /metrics is served here\n".to_string(),
                        )
                    };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tokio::time::timeout(Duration::from_secs(10), async {
                    if sock.write_all(head.as_bytes()).await.is_ok() {
                        let _ = sock.write_all(body.as_bytes()).await;
                    }
                    let _ = sock.shutdown().await;
                })
                .await;
            });
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_and_label_values_are_escaped_and_special_values_spelled_as_prometheus_reads_them() {
        let mut m = Exposition::default();
        m.gauge(
            "a",
            "back\\slash and\nnewline",
            &[("l", "x\\y\nz\"")],
            f64::NAN,
        );
        m.gauge("b", "h", &[], f64::INFINITY);
        m.gauge("c", "h", &[], f64::NEG_INFINITY);
        m.gauge("d", "h", &[], 0.25);
        assert_eq!(
            m.finish(),
            "# HELP a back\\\\slash and\\nnewline\n# TYPE a gauge\na{l=\"x\\\\y\\nz\\\"\"} NaN\n\
             # HELP b h\n# TYPE b gauge\nb +Inf\n\
             # HELP c h\n# TYPE c gauge\nc -Inf\n\
             # HELP d h\n# TYPE d gauge\nd 0.25\n"
        );
    }

    #[tokio::test]
    async fn metrics_are_served_in_prometheus_text_format() {
        let render: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(|| {
            let mut m = Exposition::default();
            m.gauge(
                "fleetdeck_cpu_percent",
                "CPU use",
                &[("node", "cam-1")],
                12.5,
            );
            m.gauge(
                "fleetdeck_cpu_percent",
                "CPU use",
                &[("node", "cam\"2")],
                1.0,
            );
            m.finish()
        });
        let addr = serve("127.0.0.1:0".parse().unwrap(), render).await.unwrap();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).await.unwrap();
        assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
        assert!(resp.contains(
            "# TYPE fleetdeck_cpu_percent gauge\nfleetdeck_cpu_percent{node=\"cam-1\"} 12.5\n"
        ));
        assert!(
            resp.contains("node=\"cam\\\"2\""),
            "label values are escaped"
        );
        assert_eq!(resp.matches("# HELP").count(), 1);
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).await.unwrap();
        assert!(resp.starts_with("HTTP/1.1 404"));
    }
}
