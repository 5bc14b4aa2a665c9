use super::*;
use crate::upstream::{NoRelay, ServerInfo};

/// An upstream that asks one question mid-call, then answers with what it was told.
struct Asker;

#[async_trait]
impl Connection for Asker {
    async fn call(
        &self,
        request: Message,
        relay: Arc<dyn Relay>,
        _: &CallOptions,
    ) -> Result<Message, CallError> {
        let question = Message::request("77", "elicitation/create", Some(r#"{"message":"name?"}"#));
        let answer = relay.request(question).await;
        let said = answer.result().unwrap_or("null").to_string();
        Ok(Message::response(
            request.id().unwrap_or("null"),
            &format!(r#"{{"said":{said}}}"#),
        ))
    }
    async fn notify(&self, _: Message) -> Result<(), CallError> {
        Ok(())
    }
    fn info(&self) -> Option<ServerInfo> {
        None
    }
}

fn options() -> CallOptions {
    CallOptions::with_timeout(Duration::from_secs(5))
}

#[tokio::test]
async fn a_question_parks_the_call_until_the_agent_answers() {
    let parking = Parking::new();
    let first = parking
        .start(
            Arc::new(Asker),
            Message::request("1", "tools/call", Some("{}")),
            Arc::new(NoRelay),
            options(),
        )
        .await
        .unwrap();
    let result = first.result().unwrap();
    assert_eq!(first.id(), Some("1"));
    assert_eq!(
        json::member_str(result, "resultType").as_deref(),
        Some("input_required")
    );
    let requests = json::member(result, "inputRequests").unwrap();
    let (key, question): (String, serde_json::Value) =
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(requests)
            .unwrap()
            .into_iter()
            .next()
            .unwrap();
    assert_eq!(question["method"], "elicitation/create");
    assert_eq!(question["params"]["message"], "name?");
    let state = json::member(result, "requestState").unwrap().to_string();
    assert!(is_parked_state(Some(&format!(
        r#"{{"requestState":{state}}}"#
    ))));
    assert_eq!(parking.len(), 1);

    // Coming back without the answer asks again.
    let again = parking
        .resume(
            &Message::request(
                "2",
                "tools/call",
                Some(&format!(r#"{{"requestState":{state}}}"#)),
            ),
            Arc::new(NoRelay),
        )
        .await
        .unwrap();
    assert!(again.result().unwrap().contains("input_required"));

    let params = format!(
        r#"{{"inputResponses":{{"{key}":{{"action":"accept","content":{{"n":"Ann"}}}}}},"requestState":{state}}}"#
    );
    let done = parking
        .resume(
            &Message::request("3", "tools/call", Some(&params)),
            Arc::new(NoRelay),
        )
        .await
        .unwrap();
    assert_eq!(
        done.id(),
        Some("3"),
        "the answer carries the latest request's id"
    );
    assert_eq!(
        done.result(),
        Some(r#"{"said":{"action":"accept","content":{"n":"Ann"}}}"#)
    );
    assert!(parking.is_empty());

    // The token is single-use, and bound to its call.
    assert!(parking.is_empty());
    let stale = parking
        .resume(
            &Message::request("4", "tools/call", Some(&params)),
            Arc::new(NoRelay),
        )
        .await
        .unwrap();
    assert!(
        stale
            .error()
            .unwrap()
            .contains("invalid or expired requestState")
    );
}

#[test]
fn only_gateway_tokens_count_as_parked() {
    assert!(!is_parked_state(Some(
        r#"{"requestState":"v1.upstream-sealed"}"#
    )));
    assert!(!is_parked_state(Some("{}")));
    assert!(!is_parked_state(None));
}

#[tokio::test]
async fn a_token_resumes_only_the_call_it_was_given_for() {
    let parking = Parking::new();
    let first = parking
        .start(
            Arc::new(Asker),
            Message::request("1", "tools/call", Some(r#"{"name":"fs__read"}"#)),
            Arc::new(NoRelay),
            options(),
        )
        .await
        .unwrap();
    let state = json::member(first.result().unwrap(), "requestState")
        .unwrap()
        .to_string();
    let other = format!(r#"{{"name":"other__tool","requestState":{state}}}"#);
    let refused = parking
        .resume(
            &Message::request("2", "tools/call", Some(&other)),
            Arc::new(NoRelay),
        )
        .await
        .unwrap();
    assert!(
        refused
            .error()
            .unwrap()
            .contains("invalid or expired requestState")
    );
}
