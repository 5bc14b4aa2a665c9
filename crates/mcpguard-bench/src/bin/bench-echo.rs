//! `bench-echo [PORT]`: the fast echo MCP server, on loopback. Prints its URL.
//! `bench-echo --stdio`: the same over stdio (for stdio and confined-stdio benchmarks).

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let arg = std::env::args().nth(1);
    if arg.as_deref() == Some("--stdio") {
        return mcpguard_bench::echo::serve_stdio().await;
    }
    let port = arg.and_then(|p| p.parse().ok()).unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("http://{}/mcp", listener.local_addr()?);
    mcpguard_bench::echo::serve(listener).await
}
