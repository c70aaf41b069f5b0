//! Secure aggregation: the server learns the sum of the clients' vectors and nothing else,
//! even when clients drop out. SecAgg (Bonawitz et al. 2017), and SecAgg+ (Bell et al. 2020),
//! where each client shares its secrets with `k` neighbours on a random ring instead of with
//! everyone, as pure state machines: [`SecAggClient::handle`] and [`SecAggServer::receive`] /
//! [`SecAggServer::close_stage`] take messages and return messages, with no I/O, so the
//! simulation drives them in memory and a network coordinator can drive them over HTTP.
//!
//! One round has four stages. Each stage ends when the server closes it (its deadline);
//! whoever has not answered by then has dropped out.
//!
//! 1. **Keys**: every client advertises two X25519 public keys, one to encrypt shares and one
//!    to agree pairwise masks.
//! 2. **Shares**: every client Shamir-shares (threshold t) its mask secret key and a fresh
//!    self-mask seed among its neighbours and itself, each share encrypted (ChaCha20-Poly1305,
//!    HKDF-derived key) for its holder; the server only routes them.
//! 3. **Masked**: every client sends `x + PRG(b) + Σ ±PRG(s_uv)` mod 2^bits, the pairwise masks
//!    agreed with every neighbour that reached stage 2.
//! 4. **Unmask**: for each survivor, the holders reveal their share of its self-mask seed; for
//!    each client that dropped after stage 2, their share of its mask key. The server rebuilds
//!    the seeds and keys (checking them against commitments and public keys), removes the
//!    masks, and is left with the exact sum of the survivors' vectors.
//!
//! A malformed or inconsistent message drops its sender (never the round, never a panic);
//! the round aborts with [`SecAggError::TooFewSurvivors`] when fewer than t clients remain.
//! The threat model is an honest-but-curious server (no consistency-check round with
//! signatures); a transport that authenticates client ids is assumed.
//!
//! [`Quantizer`] turns clipped float updates into ring elements and back.

mod client;
mod crypto;
mod local;
mod mean;
mod quantize;
mod server;
pub mod shamir;

pub use client::SecAggClient;
pub use local::{run_round, run_round_honest, run_round_threads};
pub use mean::{secure_mean, SecAggConfig, SecAggMode, SecureMean, SecureUpdate};
pub use quantize::Quantizer;
pub use server::{SecAggOutput, SecAggServer, ServerStep};

/// A participant's id in one SecAgg round (its index among the round's clients).
pub type ParticipantId = u32;

/// The protocol parameters of one round, chosen by the server and sent to every client.
#[derive(Debug, Clone, PartialEq)]
pub struct SecAggParams {
    /// Random session id; every key and ciphertext is bound to it.
    pub session: [u8; 32],
    /// Shares needed to rebuild a secret, and the fewest clients a round may end with.
    pub threshold: usize,
    /// `None`: SecAgg, everyone is everyone's neighbour. `Some(k)`: SecAgg+, `k` neighbours
    /// on a random ring (rounded up to even).
    pub neighbours: Option<usize>,
    /// Length of every client's vector.
    pub vector_len: usize,
    /// The ring is ℤ/2^`modulus_bits`.
    pub modulus_bits: u32,
}

/// The two public keys a client advertises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKeys {
    /// X25519 key the shares sent to this client are encrypted under.
    pub cipher: [u8; 32],
    /// X25519 key pairwise masks are agreed with.
    pub mask: [u8; 32],
}

/// A message from the server to one client.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMsg {
    /// Starts a round: advertise your keys.
    Setup {
        /// The round's parameters.
        params: SecAggParams,
    },
    /// The keys of your neighbours that advertised theirs.
    Keys {
        /// Neighbour id and keys, not including yourself.
        neighbours: Vec<(ParticipantId, PublicKeys)>,
    },
    /// The encrypted shares addressed to you, from every neighbour (and yourself) that reached
    /// stage 2: these are the neighbours your masks must cover.
    Shares {
        /// Sender and ciphertext.
        ciphertexts: Vec<(ParticipantId, Vec<u8>)>,
    },
    /// Which of your neighbours' masked vectors arrived: reveal seed shares for these, and
    /// mask-key shares for the others that reached stage 2.
    Unmask {
        /// Your neighbours (and you) whose masked vectors arrived.
        survivors: Vec<ParticipantId>,
    },
}

/// A message from a client to the server.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMsg {
    /// Stage 1: the client's public keys.
    Keys {
        /// Sender.
        from: ParticipantId,
        /// Its keys.
        keys: PublicKeys,
    },
    /// Stage 2: encrypted shares for each neighbour and itself, and a commitment to its
    /// self-mask seed.
    Shares {
        /// Sender.
        from: ParticipantId,
        /// SHA-256 commitment to the self-mask seed.
        commitment: [u8; 32],
        /// Recipient and ciphertext.
        ciphertexts: Vec<(ParticipantId, Vec<u8>)>,
    },
    /// Stage 3: the masked vector.
    Masked {
        /// Sender.
        from: ParticipantId,
        /// `x + masks` mod 2^bits.
        vector: Vec<u64>,
        /// Neighbours whose share for this client did not open: the server drops them (their
        /// secrets are then rebuilt from the other holders' shares, never their inputs).
        complaints: Vec<ParticipantId>,
    },
    /// Stage 4: the shares the server asked for.
    Unmask {
        /// Sender.
        from: ParticipantId,
        /// Shares of dropped clients' mask keys: whose, and the share's values.
        key_shares: Vec<(ParticipantId, [u64; shamir::SHARE_LEN])>,
        /// Shares of survivors' self-mask seeds: whose, and the share's values.
        seed_shares: Vec<(ParticipantId, [u64; shamir::SHARE_LEN])>,
    },
}

impl ClientMsg {
    /// The sender.
    pub fn from(&self) -> ParticipantId {
        match self {
            ClientMsg::Keys { from, .. }
            | ClientMsg::Shares { from, .. }
            | ClientMsg::Masked { from, .. }
            | ClientMsg::Unmask { from, .. } => *from,
        }
    }

    fn stage(&self) -> Stage {
        match self {
            ClientMsg::Keys { .. } => Stage::Keys,
            ClientMsg::Shares { .. } => Stage::Shares,
            ClientMsg::Masked { .. } => Stage::Masked,
            ClientMsg::Unmask { .. } => Stage::Unmask,
        }
    }
}

/// The stages of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Advertising keys.
    Keys,
    /// Sharing secrets.
    Shares,
    /// Collecting masked vectors.
    Masked,
    /// Collecting shares to unmask.
    Unmask,
    /// The sum is out.
    Done,
    /// The round was aborted.
    Aborted,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Keys => "keys",
            Stage::Shares => "shares",
            Stage::Masked => "masked input",
            Stage::Unmask => "unmasking",
            Stage::Done => "done",
            Stage::Aborted => "aborted",
        })
    }
}

/// Why a round (or one client's part in it) cannot go on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SecAggError {
    /// Parameters that cannot work.
    #[error("invalid secure aggregation setup: {0}")]
    Config(String),
    /// Too few clients left to go on.
    #[error("secure aggregation aborted at the {stage} stage: {survivors} clients left, the threshold is {threshold}")]
    TooFewSurvivors {
        /// The stage that ended with too few clients.
        stage: Stage,
        /// Clients left.
        survivors: usize,
        /// The threshold t.
        threshold: usize,
    },
    /// A secret needed to unmask could not be rebuilt from the shares that arrived.
    #[error("secure aggregation aborted: cannot rebuild the {secret} of client {client} from {shares} shares (threshold {threshold})")]
    Unrecoverable {
        /// Whose secret.
        client: ParticipantId,
        /// Which secret: "self-mask seed" or "mask key".
        secret: &'static str,
        /// Shares that arrived.
        shares: usize,
        /// The threshold t.
        threshold: usize,
    },
    /// A call in the wrong stage.
    #[error("the round is at the {current} stage; {action} is not possible now")]
    WrongStage {
        /// The current stage.
        current: Stage,
        /// What was attempted.
        action: &'static str,
    },
    /// A client refused what the server sent (the client then drops out).
    #[error("client {client} refuses the server's message: {reason}")]
    Refused {
        /// The client.
        client: ParticipantId,
        /// Why.
        reason: String,
    },
}

/// A message the server rejected; its sender is dropped from the round (or, at the unmask
/// stage, its shares are ignored).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("message from client {client} rejected: {reason}")]
pub struct Rejected {
    /// The sender.
    pub client: ParticipantId,
    /// Why.
    pub reason: String,
}

fn share_label(from: ParticipantId, to: ParticipantId) -> Vec<u8> {
    let mut l = b"edge-ml secagg share ".to_vec();
    l.extend(from.to_le_bytes());
    l.extend(to.to_le_bytes());
    l
}

fn mask_label(a: ParticipantId, b: ParticipantId) -> Vec<u8> {
    let mut l = b"edge-ml secagg mask ".to_vec();
    l.extend(a.min(b).to_le_bytes());
    l.extend(a.max(b).to_le_bytes());
    l
}

/// Shamir evaluation point of a holder.
fn point(holder: ParticipantId) -> u64 {
    holder as u64 + 1
}

/// Plaintext of one share ciphertext: from, to, the mask-key share, the seed share.
const SHARE_PLAINTEXT_LEN: usize = 4 + 4 + 2 * 8 * shamir::SHARE_LEN;
/// Length of every share ciphertext.
pub const SHARE_CIPHERTEXT_LEN: usize = SHARE_PLAINTEXT_LEN + crypto::TAG_LEN;
