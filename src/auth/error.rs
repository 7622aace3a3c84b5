//! The auth role's errors, with Better Auth's codes, messages and statuses (spec §1), so its
//! client's `error.code` and `error.status` read the same as before.

use crate::db::DbError;
use crate::platform::error::render;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

macro_rules! codes {
    ($($variant:ident => $code:literal, $message:literal;)*) => {
        /// Better Auth's error codes (`BASE_ERROR_CODES` and the inline ones we use).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code { $($variant),* }

        impl Code {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $code),* }
            }

            pub fn message(self) -> &'static str {
                match self { $(Self::$variant => $message),* }
            }
        }
    };
}

codes! {
    UserNotFound => "USER_NOT_FOUND", "User not found";
    InvalidPassword => "INVALID_PASSWORD", "Invalid password";
    InvalidEmail => "INVALID_EMAIL", "Invalid email";
    InvalidEmailOrPassword => "INVALID_EMAIL_OR_PASSWORD", "Invalid email or password";
    InvalidToken => "INVALID_TOKEN", "Invalid token";
    TokenExpired => "TOKEN_EXPIRED", "Token expired";
    InvalidUser => "INVALID_USER", "Invalid user";
    EmailAlreadyVerified => "EMAIL_ALREADY_VERIFIED", "Email is already verified";
    EmailMismatch => "EMAIL_MISMATCH", "Email mismatch";
    ResetPasswordDisabled => "RESET_PASSWORD_DISABLED", "Reset password isn't enabled";
    EmailNotVerified => "EMAIL_NOT_VERIFIED", "Email not verified";
    PasswordTooShort => "PASSWORD_TOO_SHORT", "Password too short";
    PasswordTooLong => "PASSWORD_TOO_LONG", "Password too long";
    UserAlreadyExistsUseAnotherEmail => "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL", "User already exists. Use another email.";
    ProviderNotFound => "PROVIDER_NOT_FOUND", "Provider not found";
    IdTokenNotSupported => "ID_TOKEN_NOT_SUPPORTED", "id_token not supported";
    FailedToUnlinkLastAccount => "FAILED_TO_UNLINK_LAST_ACCOUNT", "You can't unlink your last account";
    AccountNotFound => "ACCOUNT_NOT_FOUND", "Account not found";
    EmailCanNotBeUpdated => "EMAIL_CAN_NOT_BE_UPDATED", "Email can not be updated";
    ChangeEmailDisabled => "CHANGE_EMAIL_DISABLED", "Change email is disabled";
    CredentialAccountNotFound => "CREDENTIAL_ACCOUNT_NOT_FOUND", "Credential account not found";
    SessionExpired => "SESSION_EXPIRED", "Session expired. Re-authenticate to perform this action.";
    CrossSiteNavigationLoginBlocked => "CROSS_SITE_NAVIGATION_LOGIN_BLOCKED", "Cross-site navigation login blocked. This request appears to be a CSRF attack.";
    VerificationEmailNotEnabled => "VERIFICATION_EMAIL_NOT_ENABLED", "Verification email isn't enabled";
    SessionNotFresh => "SESSION_NOT_FRESH", "Session is not fresh";
    InvalidOrigin => "INVALID_ORIGIN", "Invalid origin";
    InvalidCallbackUrl => "INVALID_CALLBACK_URL", "Invalid callbackURL";
    InvalidRedirectUrl => "INVALID_REDIRECT_URL", "Invalid redirectURL";
    InvalidErrorCallbackUrl => "INVALID_ERROR_CALLBACK_URL", "Invalid errorCallbackURL";
    InvalidNewUserCallbackUrl => "INVALID_NEW_USER_CALLBACK_URL", "Invalid newUserCallbackURL";
    MissingOrNullOrigin => "MISSING_OR_NULL_ORIGIN", "Missing or null Origin";
    ValidationError => "VALIDATION_ERROR", "Validation Error";
    MethodNotAllowedDeferSessionRequired => "METHOD_NOT_ALLOWED_DEFER_SESSION_REQUIRED", "POST method requires deferSessionRefresh to be enabled in session config";
    BodyMustBeAnObject => "BODY_MUST_BE_AN_OBJECT", "Body must be an object";
    Unauthorized => "UNAUTHORIZED", "Unauthorized";
    EmailPasswordDisabled => "EMAIL_PASSWORD_DISABLED", "Email and password is not enabled";
    EmailPasswordSignUpDisabled => "EMAIL_PASSWORD_SIGN_UP_DISABLED", "Email and password sign up is not enabled";
    NoFieldsToUpdate => "NO_FIELDS_TO_UPDATE", "No fields to update";
    EmailIsTheSame => "EMAIL_IS_THE_SAME", "Email is the same";
    UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE", "Content-Type is not allowed. Allowed types: application/json";
    BadRequest => "BAD_REQUEST", "Invalid JSON in request body";
    NotFound => "NOT_FOUND", "Not found";
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A Better Auth error: its status, code and message.
    #[error("{}", .1.message())]
    Api(StatusCode, Code),
    /// `VALIDATION_ERROR` with Better Auth's `[body.field] message` text.
    #[error("{0}")]
    Validation(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Password(#[from] crate::auth::password::PasswordError),
    #[error(transparent)]
    Jwt(#[from] crate::auth::jwt::JwtError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AuthError {
    pub fn bad_request(code: Code) -> Self {
        Self::Api(StatusCode::BAD_REQUEST, code)
    }
    pub fn unauthorized(code: Code) -> Self {
        Self::Api(StatusCode::UNAUTHORIZED, code)
    }
    pub fn forbidden(code: Code) -> Self {
        Self::Api(StatusCode::FORBIDDEN, code)
    }
    pub fn unprocessable(code: Code) -> Self {
        Self::Api(StatusCode::UNPROCESSABLE_ENTITY, code)
    }
    pub fn not_found(code: Code) -> Self {
        Self::Api(StatusCode::NOT_FOUND, code)
    }
    pub fn validation(location: &str, message: impl std::fmt::Display) -> Self {
        Self::Validation(format!("[{location}] {message}"))
    }
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Api(status, _) => *status,
            Self::Validation(_) => StatusCode::BAD_REQUEST,
            Self::Db(e) => e.status_code(),
            Self::Jwt(e) => e.status_code(),
            Self::Password(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Api(status, code) => render(*status, code.as_str(), code.message()),
            Self::Validation(message) => render(
                StatusCode::BAD_REQUEST,
                Code::ValidationError.as_str(),
                message,
            ),
            Self::Db(e) => e.error_response(),
            Self::Jwt(e) => e.error_response(),
            other => {
                // The detail goes to the log (with the request id from the span), never to the client.
                tracing::error!(error = %other, "unexpected error in the auth role");
                render(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL_SERVER_ERROR",
                    "Internal server error",
                )
            }
        }
    }
}

pub type AuthResult<T> = Result<T, AuthError>;
