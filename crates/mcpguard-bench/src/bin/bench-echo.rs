//! `bench-echo [PORT]`: the fast echo MCP server, on loopback. Prints its URL.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("http://{}/mcp", listener.local_addr()?);
    mcpguard_bench::echo::serve(listener).await
}
