//! The bare baseline of the live stream: actix-web fanning one in-memory broadcast out to every
//! open `GET /events` (Server-Sent Events, one task and a small buffer per client, as the service
//! does), and `PUT /trigger` sending one frame. No authentication, no database: the floor of the
//! fan-out the service's stream adds its work to. Environment: `BIND_ADDR`.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};
use tokio::sync::{broadcast, mpsc};

struct Stream(mpsc::Receiver<Bytes>);

impl MessageBody for Stream {
    type Error = std::convert::Infallible;
    fn size(&self) -> BodySize {
        BodySize::Stream
    }
    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        self.get_mut().0.poll_recv(cx).map(|f| f.map(Ok))
    }
}

async fn events(hub: web::Data<broadcast::Sender<Bytes>>) -> HttpResponse {
    let mut live = hub.subscribe();
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        if tx
            .send(Bytes::from_static(b": connected\n\n"))
            .await
            .is_err()
        {
            return;
        }
        while let Ok(frame) = live.recv().await {
            if tx.send(frame).await.is_err() {
                return;
            }
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .body(Stream(rx))
}

async fn trigger(hub: web::Data<broadcast::Sender<Bytes>>, body: Bytes) -> HttpResponse {
    let frame = format!(
        "id: 1\nevent: inbound_agent.changed\ndata: {}\n\n",
        String::from_utf8_lossy(&body)
    );
    let _ = hub.send(Bytes::from(frame));
    HttpResponse::Ok().finish()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:18082".into());
    let hub = web::Data::new(broadcast::channel::<Bytes>(1024).0);
    HttpServer::new(move || {
        App::new()
            .app_data(hub.clone())
            .route("/events", web::get().to(events))
            .route("/trigger", web::put().to(trigger))
    })
    .bind(address)?
    .run()
    .await
}
