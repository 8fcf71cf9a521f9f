//! The docs page at `/docs`: Swagger UI rendering `/openapi.json`, its files
//! built into the binary from crates.io (`utoipa-swagger-ui`'s `vendored`
//! feature), so it works offline and runs only the version pinned in
//! Cargo.lock. Nothing it serves refers to another origin, and its
//! Content-Security-Policy lets the browser load nothing from one.

use axum::Router;
use axum::http::{HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa_swagger_ui::{Config, SwaggerUi};

/// Where the page is served: `/docs` redirects to `/docs/`, the page itself.
pub const PATH: &str = "/docs";

/// The docs routes' Content-Security-Policy: this origin only. Beyond
/// `'self'`, Swagger UI needs inline styles (its script applies one) and
/// `data:` images (the icons in its stylesheet).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The docs routes, rendering the document served at `openapi_url`.
pub(crate) fn router<S: Clone + Send + Sync + 'static>(openapi_url: &'static str) -> Router<S> {
    // Swagger UI would otherwise send the document to validator.swagger.io
    // for the badge at the foot of the page.
    let config = Config::new([openapi_url]).validator_url("none");
    Router::from(SwaggerUi::new(PATH).config(config)).layer(SetResponseHeaderLayer::overriding(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    ))
}
