//! The server side of a SecAgg round.

use std::collections::{BTreeMap, BTreeSet};

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{RngCore, SeedableRng};

use super::crypto::{self, KeyPair};
use super::shamir::{self, Share, SHARE_LEN};
use super::{
    mask_label, point, ClientMsg, ParticipantId, PublicKeys, Rejected, SecAggError, SecAggParams,
    ServerMsg, Stage, SHARE_CIPHERTEXT_LEN,
};

/// Subsets of shares tried when rebuilding a secret before giving up (a holder may have sent
/// a wrong share; the commitment or public key tells which subset is right).
const MAX_RECONSTRUCTION_TRIES: usize = 512;

/// What closing a stage produced.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerStep {
    /// Messages for the clients still in the round.
    Send(Vec<(ParticipantId, ServerMsg)>),
    /// The round is over: the sum is out.
    Finished(SecAggOutput),
}

/// The result of a round.
#[derive(Debug, Clone, PartialEq)]
pub struct SecAggOutput {
    /// The sum of the survivors' vectors, mod 2^bits.
    pub sum: Vec<u64>,
    /// Whose vectors are in the sum.
    pub survivors: Vec<ParticipantId>,
    /// Who dropped out or was dropped, and why.
    pub dropped: Vec<(ParticipantId, String)>,
}

type ShareValues = [u64; SHARE_LEN];
/// Shares a holder revealed: whose secret, and the values.
type SharesOf = Vec<(ParticipantId, ShareValues)>;

/// The server of one SecAgg round: call [`receive`](Self::receive) for every client message,
/// and [`close_stage`](Self::close_stage) when the stage's deadline passes.
pub struct SecAggServer {
    params: SecAggParams,
    stage: Stage,
    participants: BTreeSet<ParticipantId>,
    neighbours: BTreeMap<ParticipantId, BTreeSet<ParticipantId>>,
    keys: BTreeMap<ParticipantId, PublicKeys>,
    commitments: BTreeMap<ParticipantId, [u8; 32]>,
    ciphertexts: BTreeMap<ParticipantId, BTreeMap<ParticipantId, Vec<u8>>>,
    masked: BTreeMap<ParticipantId, Vec<u64>>,
    unmask: BTreeMap<ParticipantId, (SharesOf, SharesOf)>,
    unmask_rejected: BTreeSet<ParticipantId>,
    /// Who complained (at the masked stage) that whose share did not open.
    complaints: BTreeMap<ParticipantId, BTreeSet<ParticipantId>>,
    dropped: BTreeMap<ParticipantId, String>,
    /// Clients that reached stage 1, 2 and 3 (advertised keys, shared, sent a masked vector).
    reached: [BTreeSet<ParticipantId>; 3],
}

impl SecAggServer {
    /// Starts a round among `participants`; returns the server and the setup message for each.
    pub fn new(
        params: SecAggParams,
        participants: &[ParticipantId],
        rng: &mut dyn RngCore,
    ) -> Result<(Self, Vec<(ParticipantId, ServerMsg)>), SecAggError> {
        let set: BTreeSet<ParticipantId> = participants.iter().copied().collect();
        if set.len() != participants.len() {
            return Err(SecAggError::Config(
                "a participant id is listed twice".into(),
            ));
        }
        let n = set.len();
        if params.threshold < 2 || params.threshold > n {
            return Err(SecAggError::Config(format!(
                "threshold {} must be in 2..={n} (the number of clients)",
                params.threshold
            )));
        }
        if !(8..=64).contains(&params.modulus_bits) {
            return Err(SecAggError::Config(format!(
                "modulus bits {} must be in 8..=64",
                params.modulus_bits
            )));
        }
        let neighbours = match params.neighbours {
            None => full_graph(&set),
            Some(k) => {
                if k + 1 < params.threshold {
                    return Err(SecAggError::Config(format!(
                        "{k} neighbours cannot hold secrets shared with threshold {}",
                        params.threshold
                    )));
                }
                ring_graph(&set, k, rng)
            }
        };
        let setup = set
            .iter()
            .map(|&id| {
                (
                    id,
                    ServerMsg::Setup {
                        params: params.clone(),
                    },
                )
            })
            .collect();
        Ok((
            Self {
                params,
                stage: Stage::Keys,
                participants: set,
                neighbours,
                keys: BTreeMap::new(),
                commitments: BTreeMap::new(),
                ciphertexts: BTreeMap::new(),
                masked: BTreeMap::new(),
                unmask: BTreeMap::new(),
                unmask_rejected: BTreeSet::new(),
                complaints: BTreeMap::new(),
                dropped: BTreeMap::new(),
                reached: Default::default(),
            },
            setup,
        ))
    }

    /// The current stage.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The round's parameters.
    pub fn params(&self) -> &SecAggParams {
        &self.params
    }

    /// Clients dropped so far, and why.
    pub fn dropped(&self) -> &BTreeMap<ParticipantId, String> {
        &self.dropped
    }

    /// A client's neighbours (SecAgg+) or every other client (SecAgg).
    pub fn neighbours_of(&self, id: ParticipantId) -> Option<&BTreeSet<ParticipantId>> {
        self.neighbours.get(&id)
    }

    fn share_set(&self, id: ParticipantId) -> impl Iterator<Item = ParticipantId> + '_ {
        self.neighbours[&id]
            .iter()
            .copied()
            .chain(std::iter::once(id))
    }

    fn drop_client(&mut self, id: ParticipantId, reason: String) -> Rejected {
        tracing::debug!(client = id, %reason, stage = %self.stage, "secagg client dropped");
        match self.stage {
            Stage::Unmask => {
                self.unmask.remove(&id);
                self.unmask_rejected.insert(id);
            }
            stage => {
                // Only this stage's data goes: earlier stages' keys and commitments are still
                // needed to unmask the pairs this client formed.
                match stage {
                    Stage::Keys => {
                        self.keys.remove(&id);
                    }
                    Stage::Shares => {
                        self.commitments.remove(&id);
                        self.ciphertexts.remove(&id);
                    }
                    _ => {
                        self.masked.remove(&id);
                        self.complaints.remove(&id);
                    }
                }
                self.dropped.insert(id, reason.clone());
            }
        }
        Rejected { client: id, reason }
    }

    /// Takes one client message. A malformed, duplicate, late or inconsistent message drops
    /// its sender (at the unmask stage: its shares are ignored) and is returned as an error;
    /// the round goes on.
    ///
    /// `sender` is the id the transport authenticated; a message claiming another sender
    /// drops `sender`.
    pub fn receive(&mut self, sender: ParticipantId, msg: ClientMsg) -> Result<(), Rejected> {
        let from = sender;
        let reject = |reason: &str| {
            Err(Rejected {
                client: from,
                reason: reason.to_owned(),
            })
        };
        if !self.participants.contains(&from) {
            return reject("not a participant of this round");
        }
        if matches!(self.stage, Stage::Done | Stage::Aborted) {
            return reject("the round is over");
        }
        if self.dropped.contains_key(&from) || self.unmask_rejected.contains(&from) {
            return reject("already dropped from this round");
        }
        if msg.from() != sender {
            let reason = format!("a message claiming to come from client {}", msg.from());
            return Err(self.drop_client(from, reason));
        }
        if msg.stage() != self.stage {
            let reason = format!("a {} message during the {} stage", msg.stage(), self.stage);
            return Err(self.drop_client(from, reason));
        }
        let previous = match self.stage {
            Stage::Keys => None,
            Stage::Shares => Some(&self.reached[0]),
            Stage::Masked => Some(&self.reached[1]),
            _ => Some(&self.reached[2]),
        };
        if previous.is_some_and(|p| !p.contains(&from)) {
            let reason = "did not complete the previous stage".to_owned();
            return Err(self.drop_client(from, reason));
        }
        let duplicate = match self.stage {
            Stage::Keys => self.keys.contains_key(&from),
            Stage::Shares => self.ciphertexts.contains_key(&from),
            Stage::Masked => self.masked.contains_key(&from),
            _ => self.unmask.contains_key(&from),
        };
        if duplicate {
            let reason = format!("a second {} message", self.stage);
            return Err(self.drop_client(from, reason));
        }
        match self.check(msg) {
            Ok(()) => Ok(()),
            Err(reason) => Err(self.drop_client(from, reason)),
        }
    }

    /// Validates and stores a message of the current stage from a client that may send it.
    fn check(&mut self, msg: ClientMsg) -> Result<(), String> {
        match msg {
            ClientMsg::Keys { from, keys } => {
                if keys.cipher == keys.mask {
                    return Err("its two public keys are equal".into());
                }
                if !crypto::is_contributory(&keys.cipher) || !crypto::is_contributory(&keys.mask) {
                    return Err("a public key is a low-order point".into());
                }
                let reused = self.keys.values().any(|k| {
                    [k.cipher, k.mask].contains(&keys.cipher)
                        || [k.cipher, k.mask].contains(&keys.mask)
                });
                if reused {
                    return Err("a public key already advertised by another client".into());
                }
                self.keys.insert(from, keys);
            }
            ClientMsg::Shares {
                from,
                commitment,
                ciphertexts,
            } => {
                let expected: BTreeSet<ParticipantId> = self
                    .share_set(from)
                    .filter(|h| self.reached[0].contains(h))
                    .collect();
                let mut map = BTreeMap::new();
                for (to, c) in ciphertexts {
                    if c.len() != SHARE_CIPHERTEXT_LEN {
                        return Err(format!(
                            "the share for {to} is {} bytes, not {SHARE_CIPHERTEXT_LEN}",
                            c.len()
                        ));
                    }
                    if !expected.contains(&to) {
                        return Err(format!("a share for {to}, who is not its neighbour"));
                    }
                    if map.insert(to, c).is_some() {
                        return Err(format!("two shares for {to}"));
                    }
                }
                if map.len() != expected.len() {
                    return Err(format!(
                        "{} shares for {} holders",
                        map.len(),
                        expected.len()
                    ));
                }
                self.commitments.insert(from, commitment);
                self.ciphertexts.insert(from, map);
            }
            ClientMsg::Masked {
                from,
                vector,
                complaints,
            } => {
                let mut accused = BTreeSet::new();
                for c in &complaints {
                    let holder_of = self.reached[1].contains(c)
                        && *c != from
                        && self.neighbours[&from].contains(c);
                    if !holder_of || !accused.insert(*c) {
                        return Err(format!("an invalid complaint about {c}"));
                    }
                }
                if vector.len() != self.params.vector_len {
                    return Err(format!(
                        "a masked vector of {} values, not {}",
                        vector.len(),
                        self.params.vector_len
                    ));
                }
                let mask = crypto::modulus_mask(self.params.modulus_bits);
                if vector.iter().any(|&v| v & !mask != 0) {
                    return Err("a masked value outside the ring".into());
                }
                self.masked.insert(from, vector);
                if !accused.is_empty() {
                    self.complaints.insert(from, accused);
                }
            }
            ClientMsg::Unmask {
                from,
                key_shares,
                seed_shares,
            } => {
                let holds: BTreeSet<ParticipantId> = self
                    .share_set(from)
                    .filter(|h| self.reached[1].contains(h))
                    .collect();
                let mut seen = BTreeSet::new();
                for (whose, values) in key_shares.iter().chain(&seed_shares) {
                    if !holds.contains(whose) {
                        return Err(format!("a share of {whose}, which it does not hold"));
                    }
                    if !seen.insert(*whose) {
                        return Err(format!("two shares of {whose}"));
                    }
                    if values.iter().any(|&v| v >= shamir::PRIME) {
                        return Err(format!("a share of {whose} outside the field"));
                    }
                }
                let survivors = &self.reached[2];
                if let Some((whose, _)) = key_shares.iter().find(|(w, _)| survivors.contains(w)) {
                    return Err(format!(
                        "a mask-key share of {whose}, who survived (that would unmask it)"
                    ));
                }
                if let Some((whose, _)) = seed_shares.iter().find(|(w, _)| !survivors.contains(w)) {
                    return Err(format!("a seed share of {whose}, who dropped"));
                }
                self.unmask.insert(from, (key_shares, seed_shares));
            }
        }
        Ok(())
    }

    fn abort_if_below(&mut self, count: usize) -> Result<(), SecAggError> {
        if count < self.params.threshold {
            let stage = self.stage;
            self.stage = Stage::Aborted;
            return Err(SecAggError::TooFewSurvivors {
                stage,
                survivors: count,
                threshold: self.params.threshold,
            });
        }
        Ok(())
    }

    /// Drops, until none is left, every client of `set` with fewer than t share holders in
    /// `set` (its secrets could not be rebuilt).
    fn prune(&mut self, set: &mut BTreeSet<ParticipantId>, why: &str) {
        loop {
            let weak: Vec<ParticipantId> = set
                .iter()
                .copied()
                .filter(|&u| {
                    self.share_set(u).filter(|h| set.contains(h)).count() < self.params.threshold
                })
                .collect();
            if weak.is_empty() {
                return;
            }
            for u in weak {
                set.remove(&u);
                self.drop_client(u, why.to_owned());
            }
        }
    }

    /// Ends the current stage: whoever has not answered has dropped out. Returns the next
    /// messages, or the sum after the last stage; aborts the round when fewer than t clients
    /// are left or a needed secret cannot be rebuilt.
    pub fn close_stage(&mut self) -> Result<ServerStep, SecAggError> {
        match self.stage {
            Stage::Keys => {
                let mut u1: BTreeSet<ParticipantId> = self.keys.keys().copied().collect();
                self.mark_silent(&u1, "no keys");
                self.prune(&mut u1, "too few of its neighbours advertised keys");
                self.abort_if_below(u1.len())?;
                let out = u1
                    .iter()
                    .map(|&u| {
                        let neighbours = self.neighbours[&u]
                            .iter()
                            .filter(|v| u1.contains(v))
                            .map(|v| (*v, self.keys[v]))
                            .collect();
                        (u, ServerMsg::Keys { neighbours })
                    })
                    .collect();
                self.reached[0] = u1;
                self.stage = Stage::Shares;
                Ok(ServerStep::Send(out))
            }
            Stage::Shares => {
                let mut u2: BTreeSet<ParticipantId> = self.ciphertexts.keys().copied().collect();
                self.mark_silent(&u2, "no shares");
                self.prune(
                    &mut u2,
                    "too few of its neighbours reached the shares stage",
                );
                self.abort_if_below(u2.len())?;
                let out = u2
                    .iter()
                    .map(|&v| {
                        let ciphertexts = self
                            .share_set(v)
                            .filter(|u| u2.contains(u))
                            .map(|u| (u, self.ciphertexts[&u][&v].clone()))
                            .collect();
                        (v, ServerMsg::Shares { ciphertexts })
                    })
                    .collect();
                self.reached[1] = u2;
                self.stage = Stage::Masked;
                Ok(ServerStep::Send(out))
            }
            Stage::Masked => {
                // A share that did not open drops its sender, whether its vector came or not.
                let complaints = std::mem::take(&mut self.complaints);
                for (accuser, accused) in complaints {
                    if !self.masked.contains_key(&accuser) {
                        continue;
                    }
                    for a in accused {
                        if !self.dropped.contains_key(&a) {
                            let reason =
                                format!("its encrypted share for client {accuser} did not open");
                            self.drop_client(a, reason);
                        }
                    }
                }
                let u3: BTreeSet<ParticipantId> = self.masked.keys().copied().collect();
                self.mark_silent(&u3, "no masked vector");
                self.abort_if_below(u3.len())?;
                // Only survivors answer the unmask stage: every secret needed must have t
                // holders among them, or nobody should reveal anything.
                for v in self.reached[1].clone() {
                    let holders = self.share_set(v).filter(|h| u3.contains(h)).count();
                    if holders < self.params.threshold {
                        self.stage = Stage::Aborted;
                        return Err(SecAggError::Unrecoverable {
                            client: v,
                            secret: if u3.contains(&v) {
                                "self-mask seed"
                            } else {
                                "mask key"
                            },
                            shares: holders,
                            threshold: self.params.threshold,
                        });
                    }
                }
                let out = u3
                    .iter()
                    .map(|&u| {
                        let survivors = self.share_set(u).filter(|v| u3.contains(v)).collect();
                        (u, ServerMsg::Unmask { survivors })
                    })
                    .collect();
                self.reached[2] = u3;
                self.stage = Stage::Unmask;
                Ok(ServerStep::Send(out))
            }
            Stage::Unmask => match self.unmask_sum() {
                Ok(output) => {
                    self.stage = Stage::Done;
                    Ok(ServerStep::Finished(output))
                }
                Err(e) => {
                    self.stage = Stage::Aborted;
                    Err(e)
                }
            },
            Stage::Done | Stage::Aborted => Err(SecAggError::WrongStage {
                current: self.stage,
                action: "closing a stage",
            }),
        }
    }

    /// Records as dropped every client of the previous stage that did not answer this one.
    fn mark_silent(&mut self, answered: &BTreeSet<ParticipantId>, what: &str) {
        let expected: Vec<ParticipantId> = match self.stage {
            Stage::Keys => self.participants.iter().copied().collect(),
            Stage::Shares => self.reached[0].iter().copied().collect(),
            _ => self.reached[1].iter().copied().collect(),
        };
        for id in expected {
            if !answered.contains(&id) && !self.dropped.contains_key(&id) {
                self.dropped
                    .insert(id, format!("{what} before the {} deadline", self.stage));
            }
        }
    }

    fn shares_of(&self, whose: ParticipantId, seed: bool) -> Vec<Share> {
        self.share_set(whose)
            .filter_map(|holder| {
                let (keys, seeds) = self.unmask.get(&holder)?;
                let list = if seed { seeds } else { keys };
                list.iter().find(|(w, _)| *w == whose).map(|(_, y)| Share {
                    x: point(holder),
                    y: *y,
                })
            })
            .collect()
    }

    fn unmask_sum(&mut self) -> Result<SecAggOutput, SecAggError> {
        let bits = self.params.modulus_bits;
        let mask = crypto::modulus_mask(bits);
        let session = self.params.session;
        let t = self.params.threshold;
        let mut sum = vec![0u64; self.params.vector_len];
        for vector in self.masked.values() {
            for (s, v) in sum.iter_mut().zip(vector) {
                *s = s.wrapping_add(*v) & mask;
            }
        }
        let survivors = self.reached[2].clone();
        for &u in &survivors {
            let shares = self.shares_of(u, true);
            let commitment = self.commitments[&u];
            let seed =
                reconstruct_checked(&shares, t, |s| crypto::commit(s, &session) == commitment)
                    .ok_or(SecAggError::Unrecoverable {
                        client: u,
                        secret: "self-mask seed",
                        shares: shares.len(),
                        threshold: t,
                    })?;
            crypto::apply_mask(&mut sum, &seed, bits, false);
        }
        let dropped_late: Vec<ParticipantId> = self.reached[1]
            .iter()
            .copied()
            .filter(|v| !survivors.contains(v))
            .collect();
        for v in dropped_late {
            let shares = self.shares_of(v, false);
            let advertised = self.keys[&v].mask;
            let secret = reconstruct_checked(&shares, t, |s| crypto::public_of(*s) == advertised)
                .ok_or(SecAggError::Unrecoverable {
                client: v,
                secret: "mask key",
                shares: shares.len(),
                threshold: t,
            })?;
            let pair = KeyPair::from_secret(secret);
            for &u in self.neighbours[&v].iter().filter(|u| survivors.contains(u)) {
                let seed = crypto::agree(
                    &pair.secret,
                    &self.keys[&u].mask,
                    &session,
                    &mask_label(u, v),
                )
                .expect("keys checked when advertised");
                // u added this mask if u < v and subtracted it otherwise: undo that.
                crypto::apply_mask(&mut sum, &seed, bits, u > v);
            }
        }
        Ok(SecAggOutput {
            sum,
            survivors: survivors.into_iter().collect(),
            dropped: self
                .dropped
                .iter()
                .map(|(id, why)| (*id, why.clone()))
                .collect(),
        })
    }
}

/// Rebuilds a secret from `t` of `shares`, trying subsets until one passes `check`: first the
/// first `t`, then random ones (seeded, so the outcome is reproducible). A subset without a
/// wrong share is found quickly while the wrong shares are few.
fn reconstruct_checked(
    shares: &[Share],
    t: usize,
    check: impl Fn(&[u8; 32]) -> bool,
) -> Option<[u8; 32]> {
    if shares.len() < t || t == 0 {
        return None;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(shares.len() as u64);
    let mut subset: Vec<Share> = shares[..t].to_vec();
    for _ in 0..MAX_RECONSTRUCTION_TRIES {
        if let Some(secret) = shamir::reconstruct(&subset) {
            if check(&secret) {
                return Some(secret);
            }
        }
        if shares.len() == t {
            return None;
        }
        subset = shares.choose_multiple(&mut rng, t).copied().collect();
    }
    None
}

fn full_graph(set: &BTreeSet<ParticipantId>) -> BTreeMap<ParticipantId, BTreeSet<ParticipantId>> {
    set.iter()
        .map(|&u| (u, set.iter().copied().filter(|&v| v != u).collect()))
        .collect()
}

/// SecAgg+'s graph: clients on a random ring, each linked to the k/2 nearest on either side.
fn ring_graph(
    set: &BTreeSet<ParticipantId>,
    k: usize,
    rng: &mut dyn RngCore,
) -> BTreeMap<ParticipantId, BTreeSet<ParticipantId>> {
    let n = set.len();
    if k + 1 >= n {
        return full_graph(set);
    }
    let mut ring: Vec<ParticipantId> = set.iter().copied().collect();
    ring.shuffle(rng);
    let half = k.div_ceil(2);
    let mut graph: BTreeMap<ParticipantId, BTreeSet<ParticipantId>> = BTreeMap::new();
    for (i, &u) in ring.iter().enumerate() {
        for d in 1..=half {
            let v = ring[(i + d) % n];
            if v != u {
                graph.entry(u).or_default().insert(v);
                graph.entry(v).or_default().insert(u);
            }
        }
    }
    graph
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn ring_graph_is_symmetric_and_k_regular() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let set: BTreeSet<ParticipantId> = (0..20).collect();
        let g = ring_graph(&set, 6, &mut rng);
        for (u, ns) in &g {
            assert_eq!(ns.len(), 6);
            assert!(!ns.contains(u));
            assert!(ns.iter().all(|v| g[v].contains(u)));
        }
        assert_eq!(ring_graph(&set, 19, &mut rng), full_graph(&set));
    }

    #[test]
    fn reconstruction_skips_a_wrong_share() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let secret = [3u8; 32];
        let mut shares = shamir::split(&secret, 3, &[1, 2, 3, 4, 5], &mut rng);
        shares[0].y[0] = (shares[0].y[0] + 1) % shamir::PRIME;
        assert_eq!(
            reconstruct_checked(&shares, 3, |s| *s == secret),
            Some(secret)
        );
        assert_eq!(reconstruct_checked(&shares[..2], 3, |_| true), None);
    }
}
