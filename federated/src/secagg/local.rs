//! Runs a whole round in memory: the simulation's transport, and the tests' harness.

use std::collections::BTreeMap;

use rand::RngCore;

use super::{
    ClientMsg, ParticipantId, SecAggClient, SecAggError, SecAggOutput, SecAggParams, SecAggServer,
    ServerMsg, ServerStep, Stage,
};

/// Runs one round among `inputs` (id and ring vector). Before each client answers, `drops`
/// says whether it drops out at that stage (it then never answers again); `tamper` may
/// replace or add to what a client sends, as (authenticated sender, message) pairs (tests use
/// it to inject malformed messages and messages from strangers).
pub fn run_round(
    params: SecAggParams,
    inputs: Vec<(ParticipantId, Vec<u64>)>,
    rng: &mut dyn RngCore,
    drops: impl FnMut(Stage, ParticipantId) -> bool,
    tamper: impl FnMut(Stage, ClientMsg) -> Vec<(ParticipantId, ClientMsg)>,
) -> Result<SecAggOutput, SecAggError> {
    run_round_threads(params, inputs, rng, drops, tamper, 1)
}

/// [`run_round`] with the clients' work of each stage spread over `threads` threads (they
/// are independent devices; the server's work stays on the calling thread).
pub fn run_round_threads(
    params: SecAggParams,
    inputs: Vec<(ParticipantId, Vec<u64>)>,
    rng: &mut dyn RngCore,
    mut drops: impl FnMut(Stage, ParticipantId) -> bool,
    mut tamper: impl FnMut(Stage, ClientMsg) -> Vec<(ParticipantId, ClientMsg)>,
    threads: usize,
) -> Result<SecAggOutput, SecAggError> {
    let ids: Vec<ParticipantId> = inputs.iter().map(|(id, _)| *id).collect();
    let (mut server, setup) = SecAggServer::new(params, &ids, rng)?;
    let mut clients: BTreeMap<ParticipantId, SecAggClient> = inputs
        .into_iter()
        .map(|(id, input)| (id, SecAggClient::new(id, input, rng)))
        .collect();
    let mut outgoing = setup;
    loop {
        let stage = server.stage();
        let mut work: Vec<(SecAggClient, ServerMsg)> = Vec::with_capacity(outgoing.len());
        for (id, msg) in outgoing {
            if drops(stage, id) {
                clients.remove(&id);
            } else if let Some(client) = clients.remove(&id) {
                work.push((client, msg));
            }
        }
        for (client, reply) in answer_all(work, threads) {
            let id = client.id();
            match reply {
                Ok(reply) => {
                    clients.insert(id, client);
                    for (sender, m) in tamper(stage, reply) {
                        if let Err(rejected) = server.receive(sender, m) {
                            tracing::debug!(%rejected, "secagg message rejected");
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "secagg client dropped out"),
            }
        }
        match server.close_stage()? {
            ServerStep::Send(next) => outgoing = next,
            ServerStep::Finished(output) => return Ok(output),
        }
    }
}

type Answered = (SecAggClient, Result<ClientMsg, SecAggError>);

/// Every client handles its message; results come back in the input order.
fn answer_all(work: Vec<(SecAggClient, ServerMsg)>, threads: usize) -> Vec<Answered> {
    let threads = threads.clamp(1, work.len().max(1));
    if threads == 1 {
        return work
            .into_iter()
            .map(|(mut c, m)| {
                let r = c.handle(m);
                (c, r)
            })
            .collect();
    }
    let chunk = work.len().div_ceil(threads);
    let mut chunks: Vec<Vec<(SecAggClient, ServerMsg)>> = Vec::new();
    let mut rest = work;
    while !rest.is_empty() {
        let tail = rest.split_off(chunk.min(rest.len()));
        chunks.push(rest);
        rest = tail;
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|c| scope.spawn(move || answer_all(c, 1)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a SecAgg client panicked"))
            .collect()
    })
}

/// A round where every client answers and nothing is altered.
pub fn run_round_honest(
    params: SecAggParams,
    inputs: Vec<(ParticipantId, Vec<u64>)>,
    rng: &mut dyn RngCore,
) -> Result<SecAggOutput, SecAggError> {
    run_round(
        params,
        inputs,
        rng,
        |_, _| false,
        |_, m| vec![(m.from(), m)],
    )
}
