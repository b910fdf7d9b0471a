//! The customer web client: the pages and assets of `web/`, embedded in the binary at build
//! time, so `finhub-auth` serves them with nothing to install or deploy beside it.
//!
//! Pages (`/`, the demo inbox) are `no-store`: they hold no data themselves, but a stored page
//! would let the back button bring a signed-out page back from the browser's cache. Assets are
//! revalidated on every load (`no-cache`) against a strong ETag from their content, so a new
//! release is picked up at once and an unchanged file costs a 304.

use std::path::PathBuf;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum_extra::TypedHeader;
use axum_extra::headers::{ETag, IfNoneMatch};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rust_embed::Embed;

use super::error::ApiError;
use crate::notify::outbox;

#[derive(Embed)]
#[folder = "web/"]
struct Files;

const PAGE_CACHE: &str = "no-store";
const ASSET_CACHE: &str = "no-cache";

/// What the web client serves beside the API.
#[derive(Debug, Clone, Default)]
pub struct WebClient {
    /// Demo mode: the outbox whose codes the demo inbox page shows.
    pub demo_outbox: Option<PathBuf>,
}

impl WebClient {
    /// The web client's pages and assets, served with their cache headers; in demo mode also the
    /// page showing the outbox's codes.
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let pages = Router::new()
            .route("/", get(|h| file("index.html", PAGE_CACHE, h)))
            .route("/assets/{*path}", get(asset));
        match self.demo_outbox {
            None => pages,
            Some(path) => pages.merge(
                Router::new()
                    .route(
                        "/demo/inbox",
                        get(|h| file("demo-inbox.html", PAGE_CACHE, h)),
                    )
                    .route("/demo/messages", get(demo_messages))
                    .with_state(path),
            ),
        }
    }
}

async fn asset(Path(path): Path<String>, known: Option<TypedHeader<IfNoneMatch>>) -> Response {
    file(&format!("assets/{path}"), ASSET_CACHE, known).await
}

/// The embedded file at `path`, or 304 when the browser's copy is current.
async fn file(
    path: &str,
    cache: &'static str,
    known: Option<TypedHeader<IfNoneMatch>>,
) -> Response {
    let Some(file) = Files::get(path) else {
        return ApiError::NotFound.into_response();
    };
    let tag = URL_SAFE_NO_PAD.encode(&file.metadata.sha256_hash()[..18]);
    let Ok(etag) = format!("\"{tag}\"").parse::<ETag>() else {
        return ApiError::NotFound.into_response();
    };
    let cache = (header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if known.is_some_and(|TypedHeader(known)| !known.precondition_passes(&etag)) {
        return (StatusCode::NOT_MODIFIED, TypedHeader(etag), [cache]).into_response();
    }
    let content_type = HeaderValue::from_str(file.metadata.mimetype())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    (
        TypedHeader(etag),
        [cache, (header::CONTENT_TYPE, content_type)],
        file.data,
    )
        .into_response()
}

/// The demo's latest outbox messages, newest first: codes in the clear, which is why this
/// exists only in demo mode (loopback only, public passwords).
async fn demo_messages(State(path): State<PathBuf>) -> Response {
    match outbox::recent(&path, 20).await {
        Ok(messages) => (
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            axum::Json(serde_json::json!({ "messages": messages })),
        )
            .into_response(),
        Err(e) => ApiError::Internal(format!("reading the demo outbox: {e}")).into_response(),
    }
}
