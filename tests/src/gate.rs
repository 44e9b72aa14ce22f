//! A loopback HTTP endpoint that holds every request until the test releases it, so
//! a compute step that calls it (the `fetch` example) stays inside its call for as
//! long as the test needs: through lease renewals, a cancellation, a stop or a crash.
//! Tests wait on what the gate saw, never on time.
//!
//! Shared, as this one file, by `trellis-tests` and the `trellis` package's own
//! integration tests (`host/tests/`), which include it by path.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// How long [`Gate::next`] waits before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// What happened to a held request.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A request came in and is held.
    Arrived,
    /// The caller hung up while its request was held (its call was stopped).
    HungUp,
}

pub struct Gate {
    /// `http://127.0.0.1:<port>/`, the URL to call.
    pub url: String,
    /// The origin to allow in the function's settings.
    pub origin: String,
    events: mpsc::UnboundedReceiver<Event>,
    release: watch::Sender<bool>,
}

impl Gate {
    /// Listens on a free loopback port, on the current Tokio runtime.
    pub async fn start() -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the gate");
        let origin = format!("http://{}", listener.local_addr().expect("an address"));
        let (sender, events) = mpsc::unbounded_channel();
        let (release, released) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(hold(stream, sender.clone(), released.clone()));
            }
        });
        Gate {
            url: format!("{origin}/"),
            origin,
            events,
            release,
        }
    }

    /// The next thing that happened to a request.
    pub async fn next(&mut self) -> Event {
        tokio::time::timeout(PATIENCE, self.events.recv())
            .await
            .expect("nothing reached the gate in time")
            .expect("the gate is listening")
    }

    /// Answers every held request, and every later one at once, with `200 released`.
    pub fn release(&self) {
        let _ = self.release.send(true);
    }
}

async fn hold(mut stream: TcpStream, events: mpsc::UnboundedSender<Event>, released: watch::Receiver<bool>) {
    // The request head; the `fetch` example's GET has no body.
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
    }
    let _ = events.send(Event::Arrived);
    tokio::select! {
        () = until_released(released) => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nreleased")
                .await;
        }
        // Anything read now is the caller going away.
        _ = stream.read(&mut buffer) => {
            let _ = events.send(Event::HungUp);
        }
    }
}

async fn until_released(mut released: watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live in the caller's future, which moves
    // between threads.
    let _ = released.wait_for(|released| *released).await;
}
