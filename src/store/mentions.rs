//! Every account, name and mailbox a request mentions, one folded term a row (issue 17,
//! migration 0142), so that the requests page finds a request by any of them with one index
//! lookup: the sender, the shared mailbox, the requester and the account acted on, and the
//! addresses and names among the fields postroom understood. Addresses are kept in lower
//! case; names as their folded words (`name_keys::name_words`: "Zoë Ångström" is found as
//! `zoe angstrom`, `zoe` or `angstrom`). Written with the request, rewritten with a staff
//! decision; requests older than the migration are indexed by [`index_pending`].

use super::{Conn, StoreError, placeholders};
use crate::name_keys::name_words;
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet};

/// Fields that hold a person's name rather than an address.
const NAME_FIELDS: [&str; 3] = ["name", "first_name", "last_name"];
/// The longest term kept (longer text is not an address or a name).
const MAX_TERM: usize = 200;

/// What the staff typed, as the term it is stored under; `None` when nothing is left.
pub fn search_term(typed: &str) -> Option<String> {
    let t = typed.trim();
    if t.contains('@') {
        return Some(t.to_lowercase()).filter(|t| t.len() <= MAX_TERM);
    }
    let words = name_words(t);
    (!words.is_empty()).then(|| words.join(" "))
}

fn add_value(terms: &mut BTreeSet<String>, value: &str, as_name: bool) {
    let v = value.trim();
    if v.is_empty() {
        return;
    }
    if v.contains('@') && !as_name {
        if v.len() <= MAX_TERM {
            terms.insert(v.to_lowercase());
        }
        return;
    }
    let words = name_words(v);
    if words.is_empty() {
        return;
    }
    terms.insert(words.join(" "));
    for w in words.into_iter().filter(|w| w.len() >= 2) {
        terms.insert(w);
    }
}

/// The terms a request is found by. Pure.
pub fn terms(
    addresses: &[Option<&str>],
    fields: &BTreeMap<String, serde_json::Value>,
) -> BTreeSet<String> {
    let mut terms = BTreeSet::new();
    for a in addresses.iter().flatten() {
        add_value(&mut terms, a, false);
    }
    for (key, value) in fields {
        let Some(v) = value.as_str() else { continue };
        if NAME_FIELDS.contains(&key.as_str()) {
            add_value(&mut terms, v, true);
        } else if v.contains('@') {
            add_value(&mut terms, v, false);
        }
    }
    if let (Some(first), Some(last)) = (
        fields.get("first_name").and_then(|v| v.as_str()),
        fields.get("last_name").and_then(|v| v.as_str()),
    ) {
        add_value(&mut terms, &format!("{first} {last}"), true);
    }
    terms
}

/// Write request `id`'s terms from its row as stored now; `again`: replace those it has
/// (a new request has none, and is spared the delete).
pub async fn index(conn: &mut Conn, id: i64, again: bool) -> Result<(), StoreError> {
    let row = sqlx::query(
        "SELECT r.mailbox, r.requester, r.target, r.fields, m.from_address FROM requests r \
         JOIN messages m ON m.id = r.message_id WHERE r.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    if again {
        sqlx::query("DELETE FROM request_mentions WHERE request_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    let Some(row) = row else { return Ok(()) };
    let mailbox: Option<String> = row.try_get("mailbox")?;
    let requester: Option<String> = row.try_get("requester")?;
    let target: Option<String> = row.try_get("target")?;
    let from: Option<String> = row.try_get("from_address")?;
    let fields: String = row.try_get("fields")?;
    index_new(
        conn,
        id,
        &[
            mailbox.as_deref(),
            requester.as_deref(),
            target.as_deref(),
            from.as_deref(),
        ],
        &fields,
    )
    .await
}

/// The terms of a request about to be inserted, from what the insert writes (its mailbox,
/// requester, target, the message's sender, and its fields as JSON): no read back, since
/// every new request pays for its terms inside the pipeline's transaction.
pub fn new_terms(addresses: &[Option<&str>], fields_json: &str) -> BTreeSet<String> {
    let fields: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(fields_json).unwrap_or_default();
    terms(addresses, &fields)
}

/// Write the terms of request `id` (see [`new_terms`]), in one statement.
async fn index_new(
    conn: &mut Conn,
    id: i64,
    addresses: &[Option<&str>],
    fields_json: &str,
) -> Result<(), StoreError> {
    let terms = new_terms(addresses, fields_json);
    if terms.is_empty() {
        return Ok(());
    }
    // A row of two placeholders per term, every value bound.
    let rows: Vec<String> = (0..terms.len())
        .map(|i| format!("({})", placeholders(2 * i + 1, 2)))
        .collect();
    let sql = format!(
        "INSERT INTO request_mentions (term, request_id) VALUES {}",
        rows.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for t in &terms {
        q = q.bind(t.as_str()).bind(id);
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

/// Index up to `batch` requests recorded before migration 0142; how many were.
pub async fn index_pending(conn: &mut Conn, batch: i64) -> Result<usize, StoreError> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT request_id FROM request_mentions_pending ORDER BY request_id LIMIT $1",
    )
    .bind(batch)
    .fetch_all(&mut *conn)
    .await?;
    for id in &ids {
        index(conn, *id, true).await?;
        sqlx::query("DELETE FROM request_mentions_pending WHERE request_id = $1")
            .bind(*id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(ids.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names_become_terms() {
        let fields: BTreeMap<String, serde_json::Value> = serde_json::from_str(
            r#"{"name":"Zoë Ångström","job_title":"Carer","requested_by":"Jane.Doe@nhs.example","role":"member"}"#,
        )
        .unwrap();
        let t = terms(&[Some("Rosehill.Care@nhs.example"), None], &fields);
        let t: Vec<&str> = t.iter().map(String::as_str).collect();
        assert_eq!(
            t,
            vec![
                "angstrom",
                "jane.doe@nhs.example",
                "rosehill.care@nhs.example",
                "zoe",
                "zoe angstrom"
            ]
        );
        assert_eq!(search_term("  Zoe  ANGSTRÖM "), Some("zoe angstrom".into()));
        assert_eq!(
            search_term("Jane.Doe@NHS.example"),
            Some("jane.doe@nhs.example".into())
        );
        assert_eq!(search_term(" - "), None);
    }
}
