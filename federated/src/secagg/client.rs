//! The client side of a SecAgg round.

use std::collections::{BTreeMap, BTreeSet};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use zeroize::Zeroizing;

use super::crypto::{self, KeyPair};
use super::shamir::{self, SHARE_LEN};
use super::{
    mask_label, point, share_label, ClientMsg, ParticipantId, PublicKeys, SecAggError,
    SecAggParams, ServerMsg, SHARE_PLAINTEXT_LEN,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    AwaitSetup,
    AwaitKeys,
    AwaitShares,
    AwaitUnmask,
    Finished,
}

/// Shares this client holds for another: of its mask key and of its self-mask seed.
type Held = ([u64; SHARE_LEN], [u64; SHARE_LEN]);

/// One client's part in a SecAgg round: feed it the server's messages in order; each returns
/// the client's answer. Any error means this client drops out of the round.
pub struct SecAggClient {
    id: ParticipantId,
    input: Vec<u64>,
    rng: ChaCha20Rng,
    step: Step,
    params: Option<SecAggParams>,
    cipher: Option<KeyPair>,
    mask: Option<KeyPair>,
    neighbours: BTreeMap<ParticipantId, PublicKeys>,
    seed: Zeroizing<[u8; 32]>,
    /// Neighbours (and itself) that reached stage 2, from the server's share delivery.
    reached_shares: BTreeSet<ParticipantId>,
    held: BTreeMap<ParticipantId, Held>,
    /// Neighbours whose share for this client did not decrypt.
    bad_senders: Vec<ParticipantId>,
}

impl SecAggClient {
    /// A client with id `id` that will contribute `input` (ring elements); `rng` seeds its
    /// keys, seeds and shares.
    pub fn new(id: ParticipantId, input: Vec<u64>, rng: &mut dyn RngCore) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        Self {
            id,
            input,
            rng: ChaCha20Rng::from_seed(seed),
            step: Step::AwaitSetup,
            params: None,
            cipher: None,
            mask: None,
            neighbours: BTreeMap::new(),
            seed: Zeroizing::new([0; 32]),
            reached_shares: BTreeSet::new(),
            held: BTreeMap::new(),
            bad_senders: Vec::new(),
        }
    }

    /// This client's id.
    pub fn id(&self) -> ParticipantId {
        self.id
    }

    /// Neighbours whose encrypted share did not open; reported to the server, which drops
    /// them.
    pub fn bad_senders(&self) -> &[ParticipantId] {
        &self.bad_senders
    }

    fn refuse(&mut self, reason: impl Into<String>) -> SecAggError {
        self.step = Step::Finished;
        SecAggError::Refused {
            client: self.id,
            reason: reason.into(),
        }
    }

    /// Handles the server's next message and returns the answer.
    pub fn handle(&mut self, msg: ServerMsg) -> Result<ClientMsg, SecAggError> {
        match (self.step, msg) {
            (Step::AwaitSetup, ServerMsg::Setup { params }) => self.on_setup(params),
            (Step::AwaitKeys, ServerMsg::Keys { neighbours }) => self.on_keys(neighbours),
            (Step::AwaitShares, ServerMsg::Shares { ciphertexts }) => self.on_shares(ciphertexts),
            (Step::AwaitUnmask, ServerMsg::Unmask { survivors }) => self.on_unmask(survivors),
            (step, _) => Err(self.refuse(format!("unexpected message while at {step:?}"))),
        }
    }

    fn params(&self) -> &SecAggParams {
        self.params.as_ref().expect("set at setup")
    }

    fn on_setup(&mut self, params: SecAggParams) -> Result<ClientMsg, SecAggError> {
        if params.threshold < 2 {
            return Err(self.refuse(format!(
                "threshold {} would let one holder rebuild a secret; at least 2 is needed",
                params.threshold
            )));
        }
        if !(8..=64).contains(&params.modulus_bits) {
            return Err(self.refuse(format!("modulus bits {}", params.modulus_bits)));
        }
        if params.vector_len != self.input.len() {
            return Err(self.refuse(format!(
                "the round sums vectors of {} values, this client has {}",
                params.vector_len,
                self.input.len()
            )));
        }
        let mask = crypto::modulus_mask(params.modulus_bits);
        if self.input.iter().any(|&v| v & !mask != 0) {
            return Err(self.refuse("the input does not fit the ring"));
        }
        let cipher = KeyPair::generate(&mut self.rng);
        let masking = KeyPair::generate(&mut self.rng);
        let keys = PublicKeys {
            cipher: cipher.public,
            mask: masking.public,
        };
        self.cipher = Some(cipher);
        self.mask = Some(masking);
        self.params = Some(params);
        self.step = Step::AwaitKeys;
        Ok(ClientMsg::Keys {
            from: self.id,
            keys,
        })
    }

    fn on_keys(
        &mut self,
        neighbours: Vec<(ParticipantId, PublicKeys)>,
    ) -> Result<ClientMsg, SecAggError> {
        let mut map = BTreeMap::new();
        for (id, keys) in neighbours {
            if id == self.id {
                return Err(self.refuse("the neighbour list contains this client"));
            }
            // Low-order keys are caught where they are used (`agree` refuses them).
            if keys.cipher == keys.mask {
                return Err(self.refuse(format!("neighbour {id} has unusable keys")));
            }
            if map.insert(id, keys).is_some() {
                return Err(self.refuse(format!("neighbour {id} is listed twice")));
            }
        }
        let threshold = self.params().threshold;
        if map.len() + 1 < threshold {
            return Err(self.refuse(format!(
                "{} neighbours cannot hold a secret shared with threshold {threshold}",
                map.len()
            )));
        }
        self.neighbours = map;
        self.rng.fill_bytes(self.seed.as_mut());
        let session = self.params().session;
        let holders: Vec<ParticipantId> = self
            .neighbours
            .keys()
            .copied()
            .chain(std::iter::once(self.id))
            .collect();
        let points: Vec<u64> = holders.iter().map(|&h| point(h)).collect();
        let mask_secret = Zeroizing::new(self.mask.as_ref().expect("setup").secret.to_bytes());
        let key_shares = shamir::split(&mask_secret, threshold, &points, &mut self.rng);
        let seed_shares = shamir::split(&self.seed, threshold, &points, &mut self.rng);
        let own_cipher = self.cipher.as_ref().expect("setup");
        let mut ciphertexts = Vec::with_capacity(holders.len());
        for ((holder, k), s) in holders.iter().zip(&key_shares).zip(&seed_shares) {
            let public = if *holder == self.id {
                own_cipher.public
            } else {
                self.neighbours[holder].cipher
            };
            let label = share_label(self.id, *holder);
            let Some(key) = crypto::agree(&own_cipher.secret, &public, &session, &label) else {
                let reason = format!("neighbour {holder} has a low-order encryption key");
                return Err(self.refuse(reason));
            };
            let mut plaintext = Zeroizing::new(Vec::with_capacity(SHARE_PLAINTEXT_LEN));
            plaintext.extend(self.id.to_le_bytes());
            plaintext.extend(holder.to_le_bytes());
            for v in k.y.iter().chain(&s.y) {
                plaintext.extend(v.to_le_bytes());
            }
            ciphertexts.push((*holder, crypto::seal(&key, &plaintext, &label)));
        }
        self.step = Step::AwaitShares;
        Ok(ClientMsg::Shares {
            from: self.id,
            commitment: crypto::commit(&self.seed, &session),
            ciphertexts,
        })
    }

    fn open_share(&self, from: ParticipantId, ciphertext: &[u8]) -> Option<Held> {
        let public = if from == self.id {
            self.cipher.as_ref()?.public
        } else {
            self.neighbours.get(&from)?.cipher
        };
        let label = share_label(from, self.id);
        let key = crypto::agree(
            &self.cipher.as_ref()?.secret,
            &public,
            &self.params().session,
            &label,
        )?;
        let plain = crypto::open(&key, ciphertext, &label)?;
        if plain.len() != SHARE_PLAINTEXT_LEN
            || plain[..4] != from.to_le_bytes()
            || plain[4..8] != self.id.to_le_bytes()
        {
            return None;
        }
        let mut values = plain[8..]
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")));
        let mut take = || {
            let mut y = [0u64; SHARE_LEN];
            for v in &mut y {
                *v = values.next().expect("length checked");
            }
            y
        };
        let key_share = take();
        let seed_share = take();
        if key_share
            .iter()
            .chain(&seed_share)
            .any(|&v| v >= shamir::PRIME)
        {
            return None;
        }
        Some((key_share, seed_share))
    }

    fn on_shares(
        &mut self,
        ciphertexts: Vec<(ParticipantId, Vec<u8>)>,
    ) -> Result<ClientMsg, SecAggError> {
        let mut senders = BTreeSet::new();
        for (from, ciphertext) in &ciphertexts {
            if *from != self.id && !self.neighbours.contains_key(from) {
                return Err(self.refuse(format!("a share from {from}, who is not a neighbour")));
            }
            if !senders.insert(*from) {
                return Err(self.refuse(format!("two shares from {from}")));
            }
            match self.open_share(*from, ciphertext) {
                Some(held) => {
                    self.held.insert(*from, held);
                }
                None => {
                    tracing::warn!(client = self.id, from, "a share did not decrypt");
                    self.bad_senders.push(*from);
                }
            }
        }
        if !senders.contains(&self.id) {
            return Err(self.refuse("the server did not return this client's own share"));
        }
        let threshold = self.params().threshold;
        if senders.len() < threshold {
            return Err(self.refuse(format!(
                "only {} holders reached stage 2, the threshold is {threshold}",
                senders.len()
            )));
        }
        let (session, bits) = (self.params().session, self.params().modulus_bits);
        let mut vector = std::mem::take(&mut self.input);
        crypto::apply_mask(&mut vector, &self.seed, bits, true);
        let own = self.mask.as_ref().expect("setup");
        for other in senders.iter().filter(|&&v| v != self.id) {
            let Some(seed) = crypto::agree(
                &own.secret,
                &self.neighbours[other].mask,
                &session,
                &mask_label(self.id, *other),
            ) else {
                let reason = format!("neighbour {other} has a low-order mask key");
                return Err(self.refuse(reason));
            };
            crypto::apply_mask(&mut vector, &seed, bits, self.id < *other);
        }
        self.reached_shares = senders;
        self.step = Step::AwaitUnmask;
        Ok(ClientMsg::Masked {
            from: self.id,
            vector,
            complaints: self.bad_senders.clone(),
        })
    }

    fn on_unmask(&mut self, survivors: Vec<ParticipantId>) -> Result<ClientMsg, SecAggError> {
        let mut alive = BTreeSet::new();
        for s in &survivors {
            if !self.reached_shares.contains(s) {
                return Err(self.refuse(format!(
                    "survivor {s} never reached stage 2 with this client"
                )));
            }
            if !alive.insert(*s) {
                return Err(self.refuse(format!("survivor {s} listed twice")));
            }
        }
        if !alive.contains(&self.id) {
            return Err(self.refuse("this client is not among the survivors"));
        }
        let threshold = self.params().threshold;
        if alive.len() < threshold {
            return Err(self.refuse(format!(
                "only {} survivors, the threshold is {threshold}: nothing is revealed",
                alive.len()
            )));
        }
        let mut key_shares = Vec::new();
        let mut seed_shares = Vec::new();
        for (&whose, (key, seed)) in &self.held {
            if alive.contains(&whose) {
                seed_shares.push((whose, *seed));
            } else if self.reached_shares.contains(&whose) {
                key_shares.push((whose, *key));
            }
        }
        self.step = Step::Finished;
        Ok(ClientMsg::Unmask {
            from: self.id,
            key_shares,
            seed_shares,
        })
    }
}
