//! Why the access API refuses a call: one enum, each variant with its HTTP status and stable
//! code, chosen in one place ([`ApiError::status`], [`ApiError::code`]).

use meshgate_core::access::Refusal;

use super::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// No `Authorization: Bearer` header.
    #[error("a bearer token is required")]
    MissingToken,
    /// The token did not verify; `code` is the filter's deny code (`token_expired`, …).
    #[error("the token was refused: {reason}")]
    BadToken { code: &'static str, reason: String },
    /// The token verified but names no catalog user.
    #[error("the token names no user in the catalog")]
    UnknownCaller,
    #[error("`{field}` is invalid: {detail}")]
    BadRequest { field: String, detail: String },
    #[error("the body must not name the requester: identity comes from the token")]
    RequesterInBody,
    #[error("the body is over {max} bytes")]
    TooLarge { max: usize },
    #[error("no {what} `{id}`")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Refused(Refusal),
    #[error("only an admin of the access policy may do this")]
    AdminOnly,
    #[error("only the requester may cancel a request")]
    NotRequester,
    #[error("the request is already {state}")]
    AlreadyDecided { state: &'static str },
    #[error("the grant is already revoked")]
    AlreadyRevoked,
    #[error("the access store is unavailable: {cause}")]
    StoreUnavailable { cause: String },
    #[error("no catalog snapshot yet: the first sync has not succeeded")]
    NoCatalog,
    #[error("this endpoint accepts {allowed}")]
    MethodNotAllowed { allowed: &'static str },
    #[error("internal error: {detail}")]
    Internal { detail: String },
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::MissingToken | ApiError::BadToken { .. } => 401,
            ApiError::UnknownCaller
            | ApiError::AdminOnly
            | ApiError::NotRequester
            | ApiError::Refused(
                Refusal::UnknownRequester { .. }
                | Refusal::RequesterNotAllowed { .. }
                | Refusal::SelfReview { .. }
                | Refusal::NotAnApprover { .. }
                | Refusal::NotAllowedToRevoke { .. },
            ) => 403,
            ApiError::BadRequest { .. } | ApiError::RequesterInBody => 400,
            ApiError::Refused(
                Refusal::InvalidUser { .. }
                | Refusal::InvalidTarget { .. }
                | Refusal::ReasonInvalid { .. }
                | Refusal::DurationInvalid
                | Refusal::DurationOverMaximum { .. }
                | Refusal::ReasonRequired { .. }
                | Refusal::NotRequestable { .. },
            ) => 400,
            ApiError::Refused(Refusal::UnknownTarget { .. } | Refusal::NoApprovers { .. }) => 422,
            ApiError::Refused(
                Refusal::AlreadyHasAccess { .. }
                | Refusal::AlreadyDecided { .. }
                | Refusal::AlreadyReviewed { .. }
                | Refusal::UnknownEntry { .. },
            )
            | ApiError::AlreadyDecided { .. }
            | ApiError::AlreadyRevoked => 409,
            ApiError::TooLarge { .. } => 413,
            ApiError::NotFound { .. } => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::StoreUnavailable { .. } | ApiError::NoCatalog => 503,
            ApiError::Internal { .. } => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingToken => "token_missing",
            ApiError::BadToken { code, .. } => code,
            ApiError::UnknownCaller => "unknown_caller",
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::RequesterInBody => "requester_in_body",
            ApiError::TooLarge { .. } => "body_too_large",
            ApiError::NotFound { .. } => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Refused(refusal) => refusal.code(),
            ApiError::AdminOnly => "admin_only",
            ApiError::NotRequester => "not_requester",
            ApiError::AlreadyDecided { .. } => "already_decided",
            ApiError::AlreadyRevoked => "already_revoked",
            ApiError::StoreUnavailable { .. } => "store_unavailable",
            ApiError::NoCatalog => "no_catalog_yet",
            ApiError::Internal { .. } => "internal",
        }
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code(), "message": self.to_string()}})
    }

    pub(crate) fn bad(field: impl Into<String>, detail: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> ApiError {
        ApiError::Refused(refusal)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::NotFound { id } => ApiError::NotFound {
                what: "request or grant",
                id,
            },
            StoreError::AlreadyDecided { state } => ApiError::AlreadyDecided {
                state: state.as_str(),
            },
            StoreError::Conflict { what } => ApiError::BadRequest {
                field: String::from("(state)"),
                detail: what,
            },
            StoreError::Unavailable { cause } => ApiError::StoreUnavailable { cause },
            StoreError::Corrupt { what } => ApiError::Internal { detail: what },
            error @ StoreError::SchemaTooNew { .. } => ApiError::StoreUnavailable {
                cause: error.to_string(),
            },
        }
    }
}
