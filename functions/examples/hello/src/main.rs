//! `hello`: greets whoever `?name=` says, and tells what it saw of the request.

use edge_fn::{Request, Response};

fn main() {
    edge_fn::run(|req: Request| {
        let name = req.query_param("name").unwrap_or_else(|| "world".into());
        let greeting = std::env::var("GREETING").unwrap_or_else(|_| "hello".into());
        Response::text(
            200,
            format!(
                "{greeting}, {name}! ({} {}, {} bytes)\n",
                req.method,
                req.path,
                req.body.len()
            ),
        )
        .with_header("X-Powered-By", "edge-fn")
    });
}
