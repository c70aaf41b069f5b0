//! `model-tools push` against real agents started in the test, and against a fake one that
//! fails on purpose.

use inference::test_support::model_bytes;

use crate::agents::{
    closed_port, columns, fake_agent, model_tools, row, Action, Agent, ADMIN, INFER,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_reaches_two_agents_and_each_serves_the_model() {
    let (a, b) = (Agent::start(|_| {}).await, Agent::start(|_| {}).await);
    let (code, stdout, stderr) = model_tools(
        &[
            "push",
            "models/digits_mlp.onnx",
            "--agent",
            &a.url,
            "--agent",
            &b.url,
            "--name",
            "digits",
            "--version",
            "1",
            "--config",
            r#"{"description": "pushed by model-tools", "max_concurrency": 2}"#,
        ],
        Some(ADMIN),
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let sha = inference::Model::inspect(&model_bytes("digits_mlp.onnx"))
        .unwrap()
        .sha256;
    assert!(stdout.contains(&sha), "{stdout}");
    for agent in [&a, &b] {
        assert_eq!(
            columns(row(&stdout, &agent.url))[1..4],
            ["ok", "201", "1"],
            "{stdout}"
        );
        assert!(row(&stdout, &agent.url).ends_with("active version 1"));
        assert_eq!(agent.infer_digit("digits").await, "1");
        let (status, v1) = agent.get("/v1/models/digits/versions/1").await;
        assert_eq!(status, 200, "{v1}");
        assert_eq!(v1["version"]["sha256"], sha.as_str());
        assert_eq!(
            v1["version"]["config"]["description"],
            "pushed by model-tools"
        );
        assert_eq!(v1["version"]["config"]["max_concurrency"], 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_activate_leaves_the_previous_version_active() {
    let agent = Agent::start(|_| {}).await;
    let push = |file: &'static str, version: &'static str, extra: &'static [&'static str]| {
        let url = agent.url.clone();
        async move {
            let mut args = vec![
                "push",
                file,
                "--agent",
                &url,
                "--name",
                "digits",
                "--version",
                version,
            ];
            args.extend(extra);
            model_tools(&args, Some(ADMIN)).await
        }
    };
    let (code, out, err) = push("models/digits_mlp.onnx", "1", &[]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = push("models/digits_mlp_int8.onnx", "2", &["--no-activate"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(row(&out, &agent.url).ends_with("active version 1"), "{out}");
    let (_, model) = agent.get("/v1/models/digits").await;
    assert_eq!(model["active_version"], 1, "{model}");
    assert_eq!(model["versions"].as_array().unwrap().len(), 2, "{model}");
    assert_eq!(agent.infer_digit("digits").await, "1");
    // Without the flag the next version takes over.
    let (code, out, err) = push("models/digits_mlp_int8.onnx", "3", &[]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(agent.infer_digit("digits").await, "3");
}

/// 401, 403, 409 and 413, each explained, none retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_say_what_to_do_and_are_not_retried() {
    // The CNN (6 KB) fits under the limit, the MLP (19 KB) does not.
    let agent = Agent::start(|c| c.limits.max_model_bytes = 8 << 10).await;
    let dir = tempfile::tempdir().unwrap();
    let push = |file: &'static str, token: Option<&'static str>, extra: Vec<String>| {
        let url = agent.url.clone();
        async move {
            let mut args = vec![
                "push".to_owned(),
                file.to_owned(),
                "--agent".to_owned(),
                url,
                "--name".to_owned(),
                "cnn".to_owned(),
                "--version".to_owned(),
                "1".to_owned(),
            ];
            args.extend(extra);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            model_tools(&args, token).await
        }
    };
    let refused = |(code, stdout, stderr): (Option<i32>, String, String), status: &str| {
        assert_eq!(code, Some(1), "{stdout}{stderr}");
        assert_eq!(
            columns(row(&stdout, &agent.url))[1..4],
            ["failed", status, "1"],
            "one attempt only:\n{stdout}"
        );
        assert!(!stderr.contains("retrying"), "{stderr}");
        assert!(
            stderr.contains("1 of 1 agent(s) did not take `cnn` version 1"),
            "{stderr}"
        );
        stderr
    };

    let err = refused(push("models/digits_cnn.onnx", None, vec![]).await, "401");
    assert!(
        err.contains("no token ($EDGE_AGENT_TOKEN is unset"),
        "{err}"
    );
    assert!(
        err.contains("the agent needs a token and none was sent (401: missing bearer token")
            && err.contains(
                "): set EDGE_AGENT_TOKEN or pass --token-file with a token of the `admin` role"
            ),
        "{err}"
    );

    let wrong = dir.path().join("wrong.token");
    std::fs::write(&wrong, "not-a-token\n").unwrap();
    let file_arg = vec!["--token-file".to_owned(), wrong.display().to_string()];
    let err = refused(
        push("models/digits_cnn.onnx", Some(ADMIN), file_arg).await,
        "401",
    );
    assert!(
        err.contains(&format!(
            "the agent does not know the token from the token file `{}` (401: invalid bearer token)",
            wrong.display()
        )),
        "the file wins over the variable, and is named: {err}"
    );
    assert!(err.contains("[[auth.tokens]]"), "{err}");

    let err = refused(
        push("models/digits_cnn.onnx", Some(INFER), vec![]).await,
        "403",
    );
    assert!(
        err.contains("the agent knows the token from $EDGE_AGENT_TOKEN but it may not push (403: token `app` has the `infer` role; this route needs `admin`); pushing needs a token with the `admin` role"),
        "{err}"
    );

    let (code, out, err) = push("models/digits_cnn.onnx", Some(ADMIN), vec![]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    let err = refused(
        push("models/digits_cnn.onnx", Some(ADMIN), vec![]).await,
        "409",
    );
    assert!(
        err.contains("model `cnn` already has version 1 on this agent (409:"),
        "{err}"
    );
    assert!(err.contains("It already holds these very bytes."), "{err}");
    assert!(
        err.contains("push with --version 2 (the highest stored is 1), or delete version 1 first (DELETE /v1/models/cnn/versions/1"),
        "{err}"
    );
    let err = refused(
        push("models/digits_cnn_int8.onnx", Some(ADMIN), vec![]).await,
        "409",
    );
    assert!(err.contains("It holds a different model."), "{err}");

    let size = model_bytes("digits_mlp.onnx").len();
    let err = refused(
        push("models/digits_mlp.onnx", Some(ADMIN), vec![]).await,
        "413",
    );
    assert!(
        err.contains(&format!(
            "the upload of {size} bytes is over the agent's upload limit of 8192 bytes (413:"
        )),
        "{err}"
    );
    assert!(
        err.contains("raise limits.max_model_bytes in the agent's config"),
        "{err}"
    );

    let (_, model) = agent.get("/v1/models/cnn").await;
    assert_eq!(model["versions"].as_array().unwrap().len(), 1, "{model}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_until_the_agent_takes_the_model() {
    let agent = Agent::start(|_| {}).await;
    let fake = fake_agent(Some(&agent), |n| match n {
        1 | 2 => Action::Answer(503, "warming up"),
        _ => Action::Forward,
    })
    .await;
    let (code, stdout, stderr) = model_tools(
        &[
            "push",
            "models/digits_mlp.onnx",
            "--agent",
            &fake.url,
            "--name",
            "digits",
            "--version",
            "1",
        ],
        Some(ADMIN),
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(fake.hits(), 3);
    assert_eq!(
        columns(row(&stdout, &fake.url))[1..4],
        ["ok", "201", "3"],
        "{stdout}"
    );
    for (attempt, delay) in [(1, "0.5"), (2, "1.0")] {
        let line = format!(
            "{}: attempt {attempt} failed (503: warming up); retrying in {delay} s",
            fake.url
        );
        assert!(stderr.contains(&line), "{line}\n{stderr}");
    }
    assert_eq!(agent.infer_digit("digits").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_that_finds_its_own_earlier_upload_succeeds() {
    let agent = Agent::start(|_| {}).await;
    // The first upload reaches the agent but its answer is lost: the retry gets 409, and the
    // stored version holds the same bytes.
    let fake = fake_agent(Some(&agent), |n| match n {
        1 => Action::ForwardThenAnswer(502),
        _ => Action::Forward,
    })
    .await;
    let (code, stdout, stderr) = model_tools(
        &[
            "push",
            "models/digits_mlp.onnx",
            "--agent",
            &fake.url,
            "--name",
            "digits",
            "--version",
            "1",
        ],
        Some(ADMIN),
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let row = row(&stdout, &fake.url);
    assert_eq!(columns(row)[1..4], ["ok", "409", "2"], "{stdout}");
    assert!(
        row.ends_with("active version 1 (stored by an earlier attempt)"),
        "{row}"
    );
    assert_eq!(
        fake.hits(),
        3,
        "upload, upload, then the look at what is stored"
    );
    assert_eq!(agent.infer_digit("digits").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_never_retried() {
    let fake = fake_agent(None, |_| Action::Answer(400, "no thanks")).await;
    let (code, stdout, stderr) = model_tools(
        &[
            "push",
            "models/digits_mlp.onnx",
            "--agent",
            &fake.url,
            "--name",
            "digits",
            "--version",
            "1",
            "--retries",
            "3",
        ],
        Some(ADMIN),
    )
    .await;
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert_eq!(fake.hits(), 1);
    assert!(
        stderr.contains(&format!(
            "{}: the agent refused the upload (400: no thanks)",
            fake.url
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("retrying"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_stays_down_fails_alone() {
    let good = Agent::start(|_| {}).await;
    let down = closed_port().await;
    let failing = fake_agent(None, |_| Action::Answer(500, "disk full")).await;
    let (code, stdout, stderr) = model_tools(
        &[
            "push",
            "models/digits_mlp.onnx",
            "--agent",
            &good.url,
            "--agent",
            &down,
            "--agent",
            &failing.url,
            "--name",
            "digits",
            "--version",
            "1",
            "--retries",
            "1",
        ],
        Some(ADMIN),
    )
    .await;
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert_eq!(
        columns(row(&stdout, &good.url))[1..4],
        ["ok", "201", "1"],
        "{stdout}"
    );
    assert_eq!(
        columns(row(&stdout, &down))[1..4],
        ["failed", "-", "2"],
        "{stdout}"
    );
    assert_eq!(
        columns(row(&stdout, &failing.url))[1..4],
        ["failed", "500", "2"],
        "{stdout}"
    );
    assert_eq!(failing.hits(), 2);
    assert!(
        stderr.contains(&format!(
            "{down}: could not reach the agent on any of 2 attempt(s)"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}: the agent failed (500: disk full) on all 2 attempt(s)",
            failing.url
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("2 of 3 agent(s) did not take `digits` version 1"),
        "{stderr}"
    );
    assert_eq!(good.infer_digit("digits").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_any_agent_is_contacted() {
    let fake = fake_agent(None, |_| Action::Answer(201, "unused")).await;
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"\x08\x07garbage").unwrap();
    let junk = junk.display().to_string();
    let base = [
        "--agent",
        fake.url.as_str(),
        "--name",
        "m",
        "--version",
        "1",
    ];
    let cases: [(Vec<&str>, &str); 4] = [
        (vec!["push", &junk], "is not a model an agent would accept"),
        (
            vec!["push", "models/digits_mlp.onnx", "--config", "{backend"],
            "--config is not valid JSON",
        ),
        (
            vec!["push", "models/digits_mlp.onnx", "--config", "[1]"],
            "the model config must be a JSON object",
        ),
        (
            vec![
                "push",
                "models/digits_mlp.onnx",
                "--token-file",
                "/nonexistent/token",
            ],
            "cannot read the token file `/nonexistent/token`",
        ),
    ];
    for (mut args, want) in cases {
        args.extend(base);
        let (code, _, stderr) = model_tools(&args, Some(ADMIN)).await;
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
    let (code, _, stderr) = model_tools(
        &[
            "push",
            "models/digits_mlp.onnx",
            "--agent",
            &fake.url,
            "--name",
            "m",
            "--version",
            "0",
        ],
        Some(ADMIN),
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(fake.hits(), 0);
    let (code, _, stderr) = model_tools(
        &[
            "push",
            "models/digits_mlp.onnx",
            "--agent",
            "https://edge-7:8080",
            "--name",
            "m",
            "--version",
            "1",
        ],
        Some(ADMIN),
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("invalid agent URL `https://edge-7:8080`: https is not supported"),
        "{stderr}"
    );
}
