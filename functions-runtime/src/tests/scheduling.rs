//! Guests run as tasks of the caller's tokio runtime: a guest that computes yields at every
//! epoch tick, so it never starves the other tasks of that runtime, and is still stopped at
//! its deadline.

use super::*;

const SPIN: &str = r#"(module (memory (export "memory") 1) (func (export "_start") (loop br 0)))"#;

fn invocation(timeout_ms: u64) -> Invocation {
    Invocation {
        function: "t".into(),
        args: vec!["t".into()],
        env: Vec::new(),
        stdin: bytes::Bytes::from_static(b"ping"),
        limits: GuestLimits {
            memory_mib: 2,
            timeout_ms,
            fuel: None,
        },
        grants: Grants {
            models: Vec::new().into(),
            allow_load: false,
            source: models(),
        },
    }
}

/// On a runtime with one thread, a call of a quick guest completes while a spinning guest runs
/// on the same thread; the spinner still ends at its deadline.
#[test]
fn a_spinning_guest_does_not_starve_a_single_threaded_runtime() {
    let rt = runtime();
    let spin = rt.prepare(&rt.compile(SPIN.as_bytes()).unwrap()).unwrap();
    let echo = rt.prepare(&rt.compile(ECHO.as_bytes()).unwrap()).unwrap();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(async {
        let spinner = rt.call(&spin, invocation(20_000));
        tokio::pin!(spinner);
        // The spinner is polled first: it starts spinning before the echo call starts.
        let echoed = tokio::select! {
            biased;
            r = &mut spinner => panic!("the spinner ended before the echo call: {r:?}"),
            out = async {
                tokio::task::yield_now().await;
                rt.call(&echo, invocation(20_000)).await
            } => out.unwrap(),
        };
        assert_eq!(echoed.stdout, b"ping");
        // Now the spinner alone, with a short deadline, is stopped there.
        let err = rt.call(&spin, invocation(50)).await.unwrap_err();
        assert!(
            matches!(err, InvokeError::Timeout { timeout_ms: 50, .. }),
            "{err}"
        );
    });
}

/// Many spinners on a multi-threaded runtime with fewer threads than spinners: each is stopped
/// at its deadline as a timeout, and the runtime still serves a quick call meanwhile.
#[test]
fn more_spinners_than_threads_all_end_as_timeouts() {
    let rt = Arc::new(runtime());
    let spin = rt.prepare(&rt.compile(SPIN.as_bytes()).unwrap()).unwrap();
    let echo = rt.prepare(&rt.compile(ECHO.as_bytes()).unwrap()).unwrap();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(async {
        let spinners: Vec<_> = (0..6)
            .map(|_| {
                let (rt, spin) = (rt.clone(), spin.clone());
                tokio::spawn(async move { rt.call(&spin, invocation(300)).await })
            })
            .collect();
        let echoed = rt.call(&echo, invocation(20_000)).await.unwrap();
        assert_eq!(echoed.stdout, b"ping");
        for s in spinners {
            let err = s.await.unwrap().unwrap_err();
            assert!(
                matches!(
                    err,
                    InvokeError::Timeout {
                        timeout_ms: 300,
                        ..
                    }
                ),
                "{err}"
            );
        }
    });
}
