//! The access-token deny list, asked once for every request in flight.
//!
//! Introspection and UserInfo must see a revocation at once, on every replica (RFC 7009 §2),
//! so the check cannot come from a cache; but one store round trip per request is what bounded
//! them (on SQLite each query is a hand-off to the connection's thread and back). Here each
//! request queues its `jti`, and one task asks the store about everything queued since its
//! last query. Every check still reads the store after its request arrived, so a revocation
//! committed before that is seen; under load, up to [`MAX_BATCH`] requests share one round
//! trip, and a lone request waits for nothing.

use tokio::sync::{mpsc, oneshot};

use super::{SharedStore, StoreError, sql};

/// The most ids one round asks about: as many as the deny-list statement takes, so a round
/// is one query.
pub const MAX_BATCH: usize = sql::REVOKED_AMONG_SIZE;
/// Checks waiting for their round; beyond this, requests wait to queue (memory stays bounded).
const QUEUE: usize = 4096;

type Reply = oneshot::Sender<Result<bool, StoreError>>;

#[derive(Clone)]
pub struct RevocationChecks {
    queue: mpsc::Sender<(String, Reply)>,
}

impl RevocationChecks {
    /// Starts the task that asks the store; it ends when the last handle is dropped.
    pub fn start(store: SharedStore) -> Self {
        let (queue, mut waiting) = mpsc::channel::<(String, Reply)>(QUEUE);
        tokio::spawn(async move {
            let mut round = Vec::with_capacity(MAX_BATCH);
            while waiting.recv_many(&mut round, MAX_BATCH).await > 0 {
                let jtis: Vec<&str> = round.iter().map(|(jti, _)| jti.as_str()).collect();
                let answer = store.revoked_access_tokens(&jtis).await;
                for (jti, reply) in round.drain(..) {
                    // A caller that gave up (its request timed out) is no one to answer.
                    let _ = reply.send(match &answer {
                        Ok(revoked) => Ok(revoked.contains(&jti)),
                        Err(e) => Err(e.clone()),
                    });
                }
            }
        });
        Self { queue }
    }

    /// Whether the access token `jti` is on the deny list now.
    pub async fn revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the revocation check stopped".into());
        self.queue
            .send((jti.to_owned(), reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}
