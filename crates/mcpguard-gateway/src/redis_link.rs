//! One lazily opened, automatically reconnected connection to a Redis server, with a
//! time limit on every round trip. Shared by the parts that keep state in Redis.

use std::time::Duration;

/// A Redis server the gateway talks to.
pub struct RedisLink {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<redis::aio::ConnectionManager>>,
    timeout: Duration,
}

impl RedisLink {
    /// A link to the Redis at `url` (connected on first use, reconnected when lost);
    /// each round trip gives up after `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<RedisLink, String> {
        // (The URL is not repeated: it may hold a password.)
        let client = redis::Client::open(url).map_err(|e| format!("not a Redis URL: {e}"))?;
        Ok(RedisLink {
            client,
            connection: tokio::sync::Mutex::new(None),
            timeout,
        })
    }

    /// The client, for connections of their own (subscriptions).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    async fn connection(&self) -> Result<redis::aio::ConnectionManager, String> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let connection = redis::aio::ConnectionManager::new(self.client.clone())
            .await
            .map_err(|e| format!("connecting to Redis: {e}"))?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Runs a prepared script invocation; `what` names it in errors.
    pub async fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
        what: &str,
    ) -> Result<T, String> {
        let call = async {
            let mut connection = self.connection().await?;
            invocation
                .invoke_async(&mut connection)
                .await
                .map_err(|e| format!("{what} failed in Redis: {e}"))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| format!("Redis did not answer within {:?}", self.timeout))?
    }
}
