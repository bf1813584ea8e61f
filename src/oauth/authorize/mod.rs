//! The authorization endpoint's protocol half (RFC 6749 §3.1, §4.1.1, §4.2.1; RFC 7636 §4.3;
//! RFC 9207; OpenID Connect Core §3.1.2), by stage: what a request is (`request`), checking
//! it (`validate`), keeping it while the person signs in (`pending`), asking for consent
//! (`consent`), and answering the client (`finish`). How it can fail is in `rejection`. A
//! request may also arrive pushed beforehand (`pushed`, RFC 9126).

mod consent;
mod finish;
mod pending;
pub mod pushed;
mod rejection;
mod request;
mod validate;

pub use consent::{needs_consent, save_consent};
pub use finish::{answer_device, approve, deny, refuse};
pub use pending::{Pending, create_pending, load_pending, record_sign_in};
pub use rejection::{AuthorizeError, AuthorizeRejection, Rejection};
pub use request::{AuthorizationRequest, ResponseType};
pub use validate::validate;
