//! The Web UI of the manager: plain HTML, CSS and JavaScript modules under
//! `static/`, embedded in the binary and served by [`ui_router`] beside the
//! API, so that the pages call the API on their own origin. Each answer
//! carries an `ETag` (a hash of the asset) and asks browsers to revalidate,
//! so a new binary's assets are picked up at once and an unchanged asset
//! costs a 304.

use std::sync::LazyLock;

use axum::{
    Router,
    extract::Path,
    http::{
        HeaderMap, HeaderValue, StatusCode,
        header::{
            CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
            X_CONTENT_TYPE_OPTIONS,
        },
    },
    response::{IntoResponse, Response},
    routing::get,
};
use sha2::{Digest, Sha256};

/// One embedded file.
struct Asset {
    /// Its path under `/assets/` (and under `static/` here).
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! assets {
    ($($path:literal => $content_type:expr),* $(,)?) => {
        &[$(Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!("../static/", $path)),
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = assets![
    "index.html" => "text/html; charset=utf-8",
    "app.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "js/app.js" => JS,
    "js/api.js" => JS,
    "js/dom.js" => JS,
    "js/chart.js" => JS,
    "js/dashboard.js" => JS,
    "js/workers.js" => JS,
    "js/enrollment.js" => JS,
    "js/groups.js" => JS,
    "js/dataflow.js" => JS,
    "js/editor.js" => JS,
    "js/jsonpath.js" => JS,
    "js/diff.js" => JS,
    "js/graph.js" => JS,
    "js/tap.js" => JS,
    "js/events.js" => JS,
];

/// The pages may load only what this origin serves.
const POLICY: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// The `ETag` of each asset, in the order of `ASSETS`.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = hex::encode(Sha256::digest(asset.body));
            HeaderValue::from_str(&format!("\"{}\"", &digest[..20])).expect("hex is a header value")
        })
        .collect()
});

/// The Web UI: its pages, and the API under `/api/v1` on the same origin.
pub fn ui_router(api: Router) -> Router {
    Router::new()
        .route("/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route(
            "/assets/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move {
                serve(&path, &headers)
            }),
        )
        .merge(api)
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|asset| asset.path == path) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let (asset, etag) = (&ASSETS[index], &ETAGS[index]);
    let common = [
        (ETAG, etag.clone()),
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY)),
    ];
    if headers.get(IF_NONE_MATCH) == Some(etag) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(CONTENT_TYPE, HeaderValue::from_static(asset.content_type))],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str, if_none_match: Option<&HeaderValue>) -> Response {
        let mut request = axum::http::Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(IF_NONE_MATCH, tag);
        }
        ui_router(Router::new())
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn assets_are_served_with_their_type_and_revalidated_by_etag() {
        let page = get("/", None).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        let script = get("/assets/js/app.js", None).await;
        assert_eq!(script.headers()[CONTENT_TYPE], JS);
        assert_eq!(script.headers()[CACHE_CONTROL], "no-cache");
        let tag = script.headers()[ETAG].clone();
        let again = get("/assets/js/app.js", Some(&tag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(
            get("/assets/js/nothing.js", None).await.status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn every_module_an_asset_imports_is_embedded() {
        for asset in ASSETS.iter().filter(|asset| asset.path.ends_with(".js")) {
            let text = std::str::from_utf8(asset.body).unwrap();
            for line in text.lines().filter(|line| line.starts_with("import ")) {
                let target = line.rsplit_once("from \"./").map(|(_, rest)| rest);
                let name = target.and_then(|rest| rest.split_once('"')).unwrap().0;
                let path = format!("js/{name}");
                assert!(
                    ASSETS.iter().any(|known| known.path == path),
                    "{} imports {path}, which is not embedded",
                    asset.path
                );
            }
        }
    }
}
