//! The page's vendored static files: uPlot (MIT, `assets/uplot/LICENSE`).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The files served under `/assets/`: name, content type, contents.
const ASSETS: [(&str, &str, &str); 3] = [
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/uplot/uPlot.iife.min.js"),
    ),
    ("uPlot.min.css", "text/css; charset=utf-8", include_str!("../../assets/uplot/uPlot.min.css")),
    ("uPlot.LICENSE", "text/plain; charset=utf-8", include_str!("../../assets/uplot/LICENSE")),
];

/// Content type and contents of the asset `name`, if there is one.
fn lookup(name: &str) -> Option<(&'static str, &'static str)> {
    ASSETS.iter().find(|(n, _, _)| *n == name).map(|&(_, kind, body)| (kind, body))
}

/// `GET /assets/{file}`: like `/`, no token needed (static text, no data).
pub(super) async fn asset(Path(file): Path<String>) -> Response {
    match lookup(&file) {
        Some((kind, body)) => ([(header::CONTENT_TYPE, kind)], body).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "error": format!("no asset {file:?}") })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_serves_the_vendored_files_only() {
        let (kind, js) = lookup("uPlot.iife.min.js").unwrap();
        assert!(kind.starts_with("text/javascript"));
        assert!(js.contains("uPlot"));
        assert!(lookup("uPlot.min.css").unwrap().1.contains(".uplot"));
        assert!(lookup("uPlot.LICENSE").unwrap().1.contains("MIT"));
        for bad in ["", "dashboard.html", "../Cargo.toml", "uPlot.iife.min.js/"] {
            assert!(lookup(bad).is_none(), "{bad}");
        }
    }
}
