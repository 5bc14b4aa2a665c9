use std::sync::Arc;

use mcpguard_protocol::Message;
use mcpguard_protocol::mcp::Era;
use parking_lot::Mutex;

use super::*;
use crate::caller::{Caller, Downstream};
use crate::upstream::NoRelay;

fn caller() -> Caller {
    Caller {
        era: Era::Handshake,
        protocol_version: "2025-11-25".into(),
        session: None,
        client_info: None,
        client_capabilities: None,
        downstream: Downstream::Http,
        remote: None,
        forwarded_headers: Vec::new(),
        identity: None,
        trace_parent: None,
    }
}

fn request() -> Message {
    Message::request("7", "tools/call", Some(r#"{"name":"x"}"#))
}

/// Records every phase it runs in, and answers in one phase if told to.
struct Probe {
    name: &'static str,
    priority: i32,
    trace: Arc<Mutex<Vec<String>>>,
    answer_in: Option<Phase>,
}

impl Probe {
    fn note(&self, phase: &str) {
        self.trace.lock().push(format!("{phase}:{}", self.name));
    }

    fn flow(&self, phase: Phase, ctx: &CallContext) -> Flow {
        if self.answer_in == Some(phase) {
            let text = format!(r#"{{"by":"{}"}}"#, self.name);
            Flow::Respond(Message::response(ctx.request.id().unwrap_or("null"), &text))
        } else {
            Flow::Continue
        }
    }
}

#[async_trait]
impl Plugin for Probe {
    fn name(&self) -> &'static str {
        self.name
    }
    fn priority(&self) -> i32 {
        self.priority
    }
    async fn access(&self, ctx: &mut CallContext) -> Flow {
        self.note("access");
        self.flow(Phase::Access, ctx)
    }
    async fn pre_execution(&self, ctx: &mut CallContext) -> Flow {
        self.note("pre");
        self.flow(Phase::PreExecution, ctx)
    }
    async fn execution(&self, ctx: &mut CallContext) -> Flow {
        self.note("exec");
        self.flow(Phase::Execution, ctx)
    }
    async fn post_execution(&self, ctx: &mut CallContext) -> Flow {
        self.note("post");
        if ctx.response.is_some() {
            self.trace.lock().push(format!("saw-answer:{}", self.name));
        }
        self.flow(Phase::PostExecution, ctx)
    }
    async fn log(&self, ctx: &CallContext) -> Result<(), super::LogFailure> {
        self.note("log");
        if let Some((phase, by)) = ctx.answered_in {
            self.trace.lock().push(format!("answered:{phase:?}:{by}"));
        }
        Ok(())
    }
}

fn pipeline(answers: &[(&'static str, i32, Option<Phase>)]) -> (Pipeline, Arc<Mutex<Vec<String>>>) {
    let trace = Arc::new(Mutex::new(Vec::new()));
    let plugins = answers
        .iter()
        .map(|(name, priority, answer_in)| {
            Arc::new(Probe {
                name,
                priority: *priority,
                trace: trace.clone(),
                answer_in: *answer_in,
            }) as Arc<dyn Plugin>
        })
        .collect();
    (Pipeline::new(plugins), trace)
}

#[tokio::test]
async fn phases_run_in_order_and_plugins_by_descending_priority() {
    let (pipeline, trace) = pipeline(&[
        ("low", 1, None),
        ("high", 100, Some(Phase::Execution)),
        ("mid", 50, None),
    ]);
    assert_eq!(pipeline.names(), vec!["high", "mid", "low"]);
    let ctx = pipeline
        .run(CallContext::new(caller(), request(), Arc::new(NoRelay)))
        .await;
    let trace = trace.lock().clone();
    let first_three: Vec<&str> = trace.iter().take(3).map(String::as_str).collect();
    assert_eq!(first_three, ["access:high", "access:mid", "access:low"]);
    // `high` answered in execution: the other execution plugins do not run …
    assert!(!trace.contains(&"exec:mid".to_string()), "{trace:?}");
    // … but every post_execution plugin sees the answer, and every log runs.
    for name in ["high", "mid", "low"] {
        assert!(trace.contains(&format!("saw-answer:{name}")), "{trace:?}");
        assert!(trace.contains(&format!("log:{name}")), "{trace:?}");
    }
    assert!(
        trace.contains(&"answered:Execution:high".to_string()),
        "{trace:?}"
    );
    assert_eq!(ctx.response.unwrap().result(), Some(r#"{"by":"high"}"#));
}

#[tokio::test]
async fn an_answer_in_access_skips_to_log() {
    let (pipeline, trace) = pipeline(&[("gate", 10, Some(Phase::Access)), ("other", 0, None)]);
    let ctx = pipeline
        .run(CallContext::new(caller(), request(), Arc::new(NoRelay)))
        .await;
    let trace = trace.lock().clone();
    assert_eq!(
        trace.iter().filter(|t| t.starts_with("access:")).count(),
        1,
        "{trace:?}"
    );
    for skipped in ["pre:", "exec:", "post:"] {
        assert!(!trace.iter().any(|t| t.starts_with(skipped)), "{trace:?}");
    }
    assert!(trace.contains(&"log:other".to_string()));
    assert_eq!(ctx.answered_in, Some((Phase::Access, "gate")));
    assert_eq!(ctx.response.unwrap().id(), Some("7"));
}

#[tokio::test]
async fn post_execution_can_replace_the_answer() {
    let (pipeline, _) = pipeline(&[
        ("upstream", 0, Some(Phase::Execution)),
        ("redactor", 5, Some(Phase::PostExecution)),
    ]);
    let ctx = pipeline
        .run(CallContext::new(caller(), request(), Arc::new(NoRelay)))
        .await;
    assert_eq!(ctx.response.unwrap().result(), Some(r#"{"by":"redactor"}"#));
}

#[tokio::test]
async fn nobody_answering_leaves_no_response() {
    let (pipeline, trace) = pipeline(&[("quiet", 0, None)]);
    let ctx = pipeline
        .run(CallContext::new(caller(), request(), Arc::new(NoRelay)))
        .await;
    assert!(ctx.response.is_none());
    assert!(trace.lock().contains(&"log:quiet".to_string()));
}

/// A probe that declares it takes part in only some phases.
struct Narrow {
    probe: Probe,
    phases: &'static [Phase],
}

#[async_trait]
impl Plugin for Narrow {
    fn name(&self) -> &'static str {
        self.probe.name
    }
    fn phases(&self) -> &'static [Phase] {
        self.phases
    }
    async fn access(&self, ctx: &mut CallContext) -> Flow {
        self.probe.access(ctx).await
    }
    async fn pre_execution(&self, ctx: &mut CallContext) -> Flow {
        self.probe.pre_execution(ctx).await
    }
    async fn execution(&self, ctx: &mut CallContext) -> Flow {
        self.probe.execution(ctx).await
    }
    async fn post_execution(&self, ctx: &mut CallContext) -> Flow {
        self.probe.post_execution(ctx).await
    }
    async fn log(&self, ctx: &CallContext) -> Result<(), super::LogFailure> {
        self.probe.log(ctx).await
    }
}

#[tokio::test]
async fn plugins_run_only_in_the_phases_they_declare() {
    let trace = Arc::new(Mutex::new(Vec::new()));
    let probe = |name| Probe {
        name,
        priority: 0,
        trace: trace.clone(),
        answer_in: None,
    };
    let plugins: Vec<Arc<dyn Plugin>> = vec![
        Arc::new(probe("all")),
        Arc::new(Narrow {
            probe: probe("logger"),
            phases: &[Phase::Log],
        }),
        Arc::new(Narrow {
            probe: Probe {
                answer_in: Some(Phase::Execution),
                ..probe("runner")
            },
            phases: &[Phase::Execution],
        }),
    ];
    let pipeline = Pipeline::new(plugins);
    let ctx = pipeline
        .run(CallContext::new(caller(), request(), Arc::new(NoRelay)))
        .await;
    assert_eq!(ctx.answered_in, Some((Phase::Execution, "runner")));
    let trace = trace.lock().clone();
    for phase in ["access", "pre", "exec", "post", "log"] {
        assert!(trace.contains(&format!("{phase}:all")), "{trace:?}");
    }
    let of = |name: &str| -> Vec<String> {
        trace
            .iter()
            .filter(|t| t.ends_with(&format!(":{name}")) && !t.starts_with("answered"))
            .cloned()
            .collect()
    };
    assert_eq!(of("logger"), ["log:logger"]);
    assert_eq!(of("runner"), ["exec:runner"]);
}
