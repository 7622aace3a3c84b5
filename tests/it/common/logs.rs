//! Captures every log line the process writes (all tests share one global subscriber, so a
//! test looks for its own secrets in the whole buffer). Trace level for switchboard, debug for
//! the HTTP stacks, so a leak at any of our levels shows.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
pub struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

static BUFFER: OnceLock<Buffer> = OnceLock::new();

/// Installs the capturing subscriber (once) and returns its buffer.
pub fn capture() -> Buffer {
    BUFFER
        .get_or_init(|| {
            let buffer = Buffer::default();
            let filter = tracing_subscriber::EnvFilter::new(
                "trace,actix_server=info,actix_http=debug,h2=debug,hyper=debug,hyper_util=debug,\
                 reqwest=debug,rustls=info,wiremock=info,tokio=info,runtime=info,diesel=debug",
            );
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(buffer.clone())
                .with_ansi(false)
                .try_init()
                .expect("no other global subscriber in the test binary");
            buffer
        })
        .clone()
}

impl Buffer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
