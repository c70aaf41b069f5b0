//! `limits`: hits a limit on purpose, to show what the agent does. `?hit=` picks one:
//! `memory` (allocates until the cap), `loop` (spins past the deadline), `recursion` (blows the
//! stack), `panic` (traps after writing to stderr), `model` (loads a model it was not granted);
//! anything else answers 200.

use edge_fn::nn::Model;
use edge_fn::{Request, Response};

fn recurse(n: u64) -> u64 {
    let pad = std::hint::black_box([n; 16]);
    if std::hint::black_box(n) == u64::MAX {
        return pad[0];
    }
    recurse(n + 1).wrapping_add(pad[3])
}

fn main() {
    edge_fn::run(|req: Request| match req.query_param("hit").as_deref() {
        Some("memory") => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        Some("loop") => {
            let mut i = 0u64;
            loop {
                i = std::hint::black_box(i.wrapping_add(1));
            }
        }
        Some("recursion") => Response::text(200, recurse(0).to_string()),
        Some("panic") => panic!("the guest gave up on purpose"),
        Some("model") => match Model::load("secret") {
            Ok(_) => Response::text(200, "loaded a model it was not granted"),
            Err(e) => Response::error(403, format!("cannot load model `secret`: {e}")),
        },
        Some("escape") => {
            let file = match std::fs::read_to_string("/etc/passwd") {
                Ok(_) => "read".to_owned(),
                Err(e) => format!("denied ({e})"),
            };
            let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
            Response::text(200, format!("file: {file}\nenv: {}\n", vars.join(",")))
        }
        _ => Response::text(200, "within limits\n"),
    });
}
