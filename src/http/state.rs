//! What every handler may use: the application state, built once at start.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::Access;
use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::upload::Uploads;

/// Everything a handler may use. Concrete types, no generics. One `Arc`:
/// axum clones the state for every request and middleware layer, and one
/// reference count is cheaper than five on the hit path.
#[derive(Clone)]
pub struct AppState(Arc<App>);

pub struct App {
    pub config: Arc<Config>,
    pub pipeline: Pipeline,
    pub access: Arc<Access>,
    pub uploads: Arc<Uploads>,
    pub metrics: Option<PrometheusHandle>,
}

impl AppState {
    pub fn new(app: App) -> Self {
        Self(Arc::new(app))
    }
}

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}
