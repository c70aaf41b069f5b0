//! Runs a whole round in memory: the simulation's transport, and the tests' harness.

use std::collections::BTreeMap;

use rand::RngCore;

use super::{
    ClientMsg, ParticipantId, SecAggClient, SecAggError, SecAggOutput, SecAggParams, SecAggServer,
    ServerStep, Stage,
};

/// Runs one round among `inputs` (id and ring vector). Before each client answers, `drops`
/// says whether it drops out at that stage (it then never answers again); `tamper` may
/// replace or add to what a client sends (tests use it to inject malformed messages).
pub fn run_round(
    params: SecAggParams,
    inputs: Vec<(ParticipantId, Vec<u64>)>,
    rng: &mut dyn RngCore,
    mut drops: impl FnMut(Stage, ParticipantId) -> bool,
    mut tamper: impl FnMut(Stage, ClientMsg) -> Vec<ClientMsg>,
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
        for (id, msg) in outgoing {
            if drops(stage, id) {
                clients.remove(&id);
                continue;
            }
            let Some(client) = clients.get_mut(&id) else {
                continue;
            };
            let reply = match client.handle(msg) {
                Ok(reply) => reply,
                Err(e) => {
                    tracing::debug!(error = %e, "secagg client dropped out");
                    clients.remove(&id);
                    continue;
                }
            };
            for m in tamper(stage, reply) {
                if let Err(rejected) = server.receive(m) {
                    tracing::debug!(%rejected, "secagg message rejected");
                }
            }
        }
        match server.close_stage()? {
            ServerStep::Send(next) => outgoing = next,
            ServerStep::Finished(output) => return Ok(output),
        }
    }
}

/// A round where every client answers and nothing is altered.
pub fn run_round_honest(
    params: SecAggParams,
    inputs: Vec<(ParticipantId, Vec<u64>)>,
    rng: &mut dyn RngCore,
) -> Result<SecAggOutput, SecAggError> {
    run_round(params, inputs, rng, |_, _| false, |_, m| vec![m])
}
