//! The built-in execution plugin: route the call to its upstream(s) and take the answer.

use std::sync::Arc;

use async_trait::async_trait;

use super::{CallContext, Flow, Plugin};
use crate::router::Router;

/// Forwards calls through the [`Router`]. Runs last in `execution`, so a plugin of higher
/// priority (a sandbox) can answer first.
pub struct Forward {
    router: Arc<Router>,
}

impl Forward {
    /// A forwarder over `router`.
    pub fn new(router: Arc<Router>) -> Forward {
        Forward { router }
    }
}

#[async_trait]
impl Plugin for Forward {
    fn phases(&self) -> &'static [super::Phase] {
        &[super::Phase::Execution]
    }

    fn name(&self) -> &'static str {
        "forward"
    }

    fn priority(&self) -> i32 {
        i32::MIN
    }

    async fn execution(&self, ctx: &mut CallContext) -> Flow {
        if ctx.response.is_some() {
            return Flow::Continue;
        }
        match self.router.execute(ctx).await {
            Some(answer) => Flow::Respond(answer),
            None => Flow::Continue,
        }
    }
}
