//! The closed sets as columns: a kind, an outcome, an audit action, a role, a status is stored
//! as its text and read back as its enum, by name, with `row.try_get("kind")` or in a
//! `#[derive(sqlx::FromRow)]` row. A text this build does not know is an error naming the
//! column and the value (sqlx's `ColumnDecode`, a [`super::StoreError::Db`]), never a silent
//! default: a wrong row is a fault to see, not a request to misfile.
//!
//! Only decoding is provided: writes bind the enum's `as_str()`, which is the stored text.

use crate::accounts::AccountStatus;
use crate::action::AuditAction;
use crate::outcome::Outcome;
use crate::request::{RequestKind, Role};
use crate::store::outbox::OutboxStatus;
use crate::store::presence::PresenceState;
use crate::store::staff::StaffRole;
use sqlx::any::{AnyTypeInfo, AnyValueRef};
use sqlx::error::BoxDynError;
use sqlx::{Any, Decode, Type};

/// `Type` and `Decode` for the `Any` driver, through the type's `FromStr` (whose error names
/// the value).
macro_rules! stored_as_text {
    ($($t:ty),* $(,)?) => {$(
        impl Type<Any> for $t {
            fn type_info() -> AnyTypeInfo {
                <str as Type<Any>>::type_info()
            }
        }

        impl<'r> Decode<'r, Any> for $t {
            fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<'r, Any>>::decode(value)?;
                Ok(text.parse::<$t>()?)
            }
        }
    )*};
}

stored_as_text!(
    RequestKind,
    Outcome,
    AuditAction,
    Role,
    AccountStatus,
    OutboxStatus,
    StaffRole,
    PresenceState,
);

#[cfg(test)]
mod tests {
    use crate::outcome::Outcome;
    use crate::request::RequestKind;
    use crate::store::{DatabaseConfig, Store};
    use sqlx::Row;
    use std::time::Duration;

    #[tokio::test]
    async fn a_closed_set_reads_back_as_its_enum_and_an_unknown_value_is_named() {
        let store = Store::connect(&DatabaseConfig {
            url: "sqlite::memory:".into(),
            max_connections: 1,
            acquire_timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
        let mut c = store.read().await.unwrap();
        let row = sqlx::query("SELECT 'leaver' AS kind, 'applied' AS outcome, NULL AS other")
            .fetch_one(&mut *c)
            .await
            .unwrap();
        assert_eq!(
            row.try_get::<RequestKind, _>("kind").unwrap(),
            RequestKind::Leaver
        );
        assert_eq!(
            row.try_get::<Outcome, _>("outcome").unwrap(),
            Outcome::Applied
        );
        assert_eq!(row.try_get::<Option<Outcome>, _>("other").unwrap(), None);
        let e = row.try_get::<Outcome, _>("kind").unwrap_err().to_string();
        assert!(e.contains("kind") && e.contains("`leaver`"), "{e}");
    }
}
