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
#[derive(Default)]
pub struct Exposition {
    out: String,
    seen: BTreeSet<String>,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Exposition {
    fn sample(&mut self, kind: &str, name: &str, help: &str, labels: &[(&str, &str)], v: f64) {
        if self.seen.insert(name.to_string()) {
            let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        }
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", labels.join(","))
        };
        let _ = writeln!(self.out, "{name}{labels} {v}");
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

/// Serves `render()` at `GET /metrics` until the task is dropped.
pub async fn serve(
    addr: SocketAddr,
    render: Arc<dyn Fn() -> String + Send + Sync>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
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
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

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
