//! Consent (SPEC §5): asked once per user, client and API, and again only for more scope,
//! for `prompt=consent`, and never for a first-party client.

use super::pending::Pending;
use crate::core::Core;
use crate::domain::{ScopeSet, UnixTime};
use crate::store::{Consent, StoreError, User};

/// Whether the person must be asked: always with `prompt=consent`; otherwise never for a
/// first-party client, and not when an earlier consent covers every scope asked for now.
pub async fn needs_consent(
    core: &Core,
    pending: &Pending,
    user: &User,
) -> Result<bool, StoreError> {
    if pending.request.prompt.consent {
        return Ok(true);
    }
    if pending.client.first_party {
        return Ok(false);
    }
    let asked = pending.request.consented_scope();
    let given = core
        .store
        .consent(
            &user.id,
            &pending.client.client_id,
            &pending.request.audience,
        )
        .await?;
    Ok(!given.is_some_and(|given| asked.iter().all(|s| given.contains(s))))
}

/// Remember what the person allowed, on top of what they allowed before.
pub async fn save_consent(
    core: &Core,
    pending: &Pending,
    user: &User,
    now: UnixTime,
) -> Result<(), StoreError> {
    let client_id = &pending.client.client_id;
    let audience = &pending.request.audience;
    let earlier = core
        .store
        .consent(&user.id, client_id, audience)
        .await?
        .unwrap_or_default();
    let scope = ScopeSet::from_tokens(
        earlier
            .iter()
            .chain(pending.request.consented_scope().iter())
            .map(str::to_owned),
    );
    core.store
        .save_consent(
            &Consent {
                user_id: user.id.clone(),
                client_id: client_id.clone(),
                audience: audience.clone(),
                scope,
            },
            now,
        )
        .await
}
